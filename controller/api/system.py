"""Health, readiness, metrics, FreeSWITCH nodes and registrations, routes, the event feed and the CDRs.

``/healthz`` and ``/metrics`` need no token (probes and Prometheus); everything else does. ``/readyz`` is
200 only when every configured node is connected, CDR writes land (``controller.calls.cdr_writer``) and,
when ``janus.enabled``, the Janus adapter is healthy; else 503 naming what is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from aiohttp import WSCloseCode, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from controller.api.ports import ApiPorts
from controller.api.spec import ACCESS_SUBJECT, ApiError, ApiSpec, Operation, Request
from controller.feed import CallerScope
from controller.janus.admin import JanusError
from controller.settings import Scope, SettingsError
from controller.store import CdrPage, CdrQuery, CdrRecord, CdrStatus, Disposition, InvalidCursor, cdrs_to_csv

__all__ = ["add_system_routes"]

log = logging.getLogger("switchyard.api")


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"] = "ok"


class JanusHealth(BaseModel):
    """The Janus instance as its adapter sees it."""

    name: str = Field(description="janus.server_name")
    healthy: bool = Field(description="the controller's Janus session is up and answers keepalives")
    error: str | None = Field(None, description="why it is not healthy (the last failure)")


class CdrWrites(BaseModel):
    """CDR writes that keep failing (retried until they land)."""

    pending: int = Field(description="writes not done yet")
    error: str | None = Field(description="the last failure")


class Readiness(BaseModel):
    """Readiness: every configured FreeSWITCH node connected, CDR writes landing, and Janus healthy when
    enabled."""

    ready: bool
    nodes: dict[str, bool] = Field(description="node name -> connected")
    janus: JanusHealth | None = Field(None, description="the Janus instance (absent unless janus.enabled)")
    cdr_writes: CdrWrites | None = Field(None, description="failing CDR writes (absent while they land)")


class NodeView(BaseModel):
    """A FreeSWITCH node and its health."""

    name: str
    host: str
    port: int
    connected: bool
    connects: int = Field(description="successful connections since start")
    overflows: int = Field(description="times the event backlog filled and reading paused until it drained")
    channels: int = Field(description="live channels of the node in the call model")


class JanusView(JanusHealth):
    """A Janus instance and its sessions."""

    sessions: int | None = Field(description="sessions Janus holds (Admin API); null when it cannot be asked")
    connects: int = Field(description="sessions the controller created (reconnects + 1)")


class NodeList(BaseModel):
    """The configured nodes."""

    items: list[NodeView]
    janus: list[JanusView] = Field(default_factory=list, description="the Janus instances (when enabled)")


class Registration(BaseModel):
    """A SIP registration, as ``show registrations`` lists it."""

    node: str
    user: str
    realm: str
    url: str
    expires: str
    network_ip: str
    network_port: str
    network_proto: str
    user_agent: str


class RegistrationList(BaseModel):
    """SIP registrations of every connected node."""

    items: list[Registration]
    unreachable: list[str] = Field(description="nodes that could not be asked")


class RouteList(BaseModel):
    """The route table in use."""

    routes: list[dict[str, str | None]]


class CdrListQuery(BaseModel):
    """Filters and paging of ``GET /v1/cdrs``."""

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = Field(None, description="calls created at or after (ISO 8601 with zone)")
    until: datetime | None = Field(None, description="calls created before (ISO 8601 with zone)")
    number: str | None = Field(None, max_length=64, description="caller or callee equal to this")
    disposition: Disposition | None = None
    status: CdrStatus | None = None
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=2048, description="next_cursor of the previous page")
    format: Literal["json", "csv"] = Field("json", description="csv: the page as CSV")


class _System:
    def __init__(self, ports: ApiPorts) -> None:
        self.p = ports

    async def healthz(self, req: Request) -> Health:
        return Health()

    async def readyz(self, req: Request) -> web.StreamResponse:
        nodes = {name: node.connected for name, node in self.p.nodes.items()}
        janus = self._janus_health()
        writes = self.p.cdr_writes() if self.p.cdr_writes is not None else None
        failing = (
            None if writes is None or writes.ok else CdrWrites(pending=writes.pending, error=writes.error)
        )
        ready = bool(nodes) and all(nodes.values()) and (janus is None or janus.healthy) and failing is None
        body = Readiness(ready=ready, nodes=nodes, janus=janus, cdr_writes=failing)
        absent = {name for name, value in (("janus", janus), ("cdr_writes", failing)) if value is None}
        text = body.model_dump_json(exclude=absent or None)  # absent unless enabled / failing
        return web.Response(status=200 if body.ready else 503, text=text, content_type="application/json")

    def _janus_health(self) -> JanusHealth | None:
        adapter = self.p.janus
        if adapter is None:
            return None
        error = None if adapter.healthy else (adapter.last_error or "not connected yet")
        return JanusHealth(name=adapter.name, healthy=adapter.healthy, error=error)

    async def _janus_views(self) -> list[JanusView]:
        health, adapter = self._janus_health(), self.p.janus
        if health is None or adapter is None:
            return []
        try:
            sessions: int | None = len(await adapter.admin.list_sessions())
        except JanusError as exc:
            log.warning("janus %s: list_sessions: %s", adapter.name, exc)
            sessions = None
        return [JanusView(**health.model_dump(), sessions=sessions, connects=adapter.connects)]

    async def metrics(self, req: Request) -> web.StreamResponse:
        data = generate_latest(self.p.metrics)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def nodes(self, req: Request) -> NodeList:
        counts = self.p.channels_per_node()
        return NodeList(
            items=[
                NodeView(
                    name=n.name,
                    host=n.settings.host,
                    port=n.settings.port,
                    connected=n.connected,
                    connects=n.connects,
                    overflows=n.overflows,
                    channels=counts.get(n.name, 0),
                )
                for n in self.p.nodes.values()
            ],
            janus=await self._janus_views(),
        )

    async def registrations(self, req: Request) -> RegistrationList:
        table = await self.p.registrations.table()
        return RegistrationList(
            items=[_registration(node, row) for node, row in table.rows], unreachable=list(table.unreachable)
        )

    async def routes(self, req: Request) -> RouteList:
        return RouteList(routes=[r.model_dump() for r in self.p.routes.route_table().routes])

    async def reload(self, req: Request) -> RouteList:
        try:
            self.p.routes.reload_routes()
        except SettingsError as exc:
            raise ApiError(422, f"routes not reloaded, the old table stays: {exc}", "routes") from exc
        return await self.routes(req)

    async def cdrs(self, req: Request) -> web.StreamResponse | CdrPage:
        q: CdrListQuery = req.query
        query = CdrQuery(**q.model_dump(exclude={"format"}))
        try:
            page = await self.p.cdrs.query(query)
        except InvalidCursor as exc:
            raise ApiError(422, str(exc), "cursor") from exc
        if q.format == "csv":
            headers = {"Content-Disposition": 'attachment; filename="cdrs.csv"'}
            if page.next_cursor:
                headers["X-Next-Cursor"] = page.next_cursor
            return web.Response(text=cdrs_to_csv(page.items), content_type="text/csv", headers=headers)
        return page

    async def cdr(self, req: Request) -> CdrRecord:
        record = await self.p.cdrs.get(req.path["id"])
        if record is None:
            raise ApiError(404, f"no CDR {req.path['id']}", "id")
        return record

    async def events(self, req: Request) -> web.StreamResponse:
        if self.p.feed.full:  # before the upgrade: idle sockets cannot pile up (issue 17 item 6)
            raise ApiError(
                503, f"the event feed has {self.p.feed.subscribers} subscribers, the most allowed", ""
            )
        ws = web.WebSocketResponse(heartbeat=30.0)
        await ws.prepare(req.http)
        subject = req.http.get(ACCESS_SUBJECT)  # a browser's feed token: its own calls only
        sub = self.p.feed.subscribe(None if subject is None else CallerScope(self.p.calls.model, subject))
        closed = asyncio.create_task(_until_closed(ws), name="events reader")
        try:
            while True:
                getter = asyncio.create_task(sub.queue.get())
                await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                data = getter.result()
                if not data:
                    await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too far behind")
                    break
                try:
                    await ws.send_str(data.decode())
                except ConnectionResetError:
                    break
        finally:
            self.p.feed.unsubscribe(sub)
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closed
        return ws


async def _until_closed(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the subscriber sends until it closes."""
    async for _ in ws:
        pass


def _registration(node: str, row: Mapping[str, str]) -> Registration:
    get = row.get
    return Registration(
        node=node,
        user=get("reg_user", ""),
        realm=get("realm", ""),
        url=get("url", ""),
        expires=get("expires", ""),
        network_ip=get("network_ip", ""),
        network_port=get("network_port", ""),
        network_proto=get("network_proto", ""),
        user_agent=get("metadata", ""),
    )


def add_system_routes(app: web.Application, spec: ApiSpec, ports: ApiPorts) -> None:
    """Mount health, metrics, nodes, registrations, routes, events and CDR routes."""
    h = _System(ports)

    def make(method: str, path: str, summary: str, handler: Any, tag: str, **kw: Any) -> Operation:
        return Operation(method, path, summary, handler, tag=tag, auth=tag != "health", **kw)

    csv = ("application/json", "text/csv")
    read: Scope = "calls:read"
    ops = [
        make("GET", "/healthz", "Liveness", h.healthz, "health", response=Health),
        make("GET", "/readyz", "Readiness: all nodes connected", h.readyz, "health", response=Readiness),
        make("GET", "/metrics", "Prometheus metrics", h.metrics, "health"),
        make(
            "GET", "/v1/nodes", "FreeSWITCH and Janus nodes", h.nodes, "nodes", response=NodeList, scope=read
        ),
        make(
            "GET",
            "/v1/registrations",
            "SIP registrations",
            h.registrations,
            "nodes",
            response=RegistrationList,
            scope="admin",
        ),
        make("GET", "/v1/routes", "The route table", h.routes, "routes", response=RouteList, scope=read),
        make(
            "POST",
            "/v1/routes/reload",
            "Reload the routes",
            h.reload,
            "routes",
            response=RouteList,
            errors=(422,),
            scope="admin",
        ),
        make(
            "GET",
            "/v1/cdrs",
            "CDRs, newest first",
            h.cdrs,
            "cdrs",
            query=CdrListQuery,
            response=CdrPage,
            media_types=csv,
            scope="cdrs:read",
        ),
        make(
            "GET",
            "/v1/cdrs/{id}",
            "Get a CDR",
            h.cdr,
            "cdrs",
            response=CdrRecord,
            errors=(404,),
            scope="cdrs:read",
        ),
        make(
            "GET",
            "/v1/events",
            "WebSocket feed of call events",
            h.events,
            "events",
            query_token=True,
            scope=read,
            errors=(503,),
        ),
    ]
    for op in ops:
        spec.add(app, op)
