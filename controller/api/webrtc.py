"""``POST /v1/webrtc/session``: a short-lived browser identity (Janus token, SIP user, feed token).

Mounted when ``janus.enabled`` and ``janus.directory.enabled`` (FreeSWITCH must be able to look the SIP user
up: ``controller.api.directory``). The identity lives ``janus.session_ttl_s`` seconds
(``controller.janus.browsers``). ``extensions`` lists the agent routes a browser can dial: routes whose
action is ``agent <name>``, whose destination is a literal number and that do not restrict the caller or
come from another context than the internal profile's.

At expiry the user's registrations are flushed on every connected node with ``sofia profile internal
flush_inbound_reg <user>@<domain> reboot`` (mod_sofia/mod_sofia.c ``cmd_profile``: a ``user@domain``
argument selects that user's rows in sofia_reg.c ``sofia_reg_expire_call_id``; ``reboot`` also sends the
client a reboot NOTIFY).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from controller.api.directory import add_directory_routes
from controller.api.spec import ApiError, ApiSpec, Operation, Request
from controller.calls.routes import RouteTable, parse_action
from controller.freeswitch.protocol import EslError
from controller.janus.admin import SIP_PLUGIN, JanusError, JanusUnavailable
from controller.janus.browsers import BrowserUsers

if TYPE_CHECKING:
    from controller.app import Controller
    from controller.janus.adapter import JanusAdapter

__all__ = ["AgentExtension", "SipIdentity", "WebrtcSession", "WebrtcSessionBody", "add_webrtc_routes"]

log = logging.getLogger("switchyard.api.webrtc")

BROWSERS = web.AppKey("browsers", BrowserUsers)
_LITERAL: Final = re.compile(r"[A-Za-z0-9_]{1,32}")
_FLUSH_DEADLINE_S: Final = 5.0


class WebrtcSessionBody(BaseModel):
    """Who the browser says it is (shown as the caller id name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # No quotes, <, &, \ or $ (FreeSWITCH would expand ${...} in a directory variable), no control chars.
    display_name: str | None = Field(
        None, pattern=r"^[^\"'<>&\\$\x00-\x1f\x7f]{1,64}$", description="caller id name of the browser"
    )


class SipIdentity(BaseModel):
    """The SIP account the browser registers through the Janus SIP plugin."""

    username: str = Field(description="SIP user (webrtc- and 12 hex digits)")
    password: str = Field(description="SIP digest password, valid until expires_at")
    proxy: str = Field(description="sip:host[:port] of FreeSWITCH, as the Janus SIP plugin reaches it")
    identity: str = Field(description="sip:<username>@<domain>")
    domain: str = Field(description="SIP domain of the directory")


class AgentExtension(BaseModel):
    """A number the browser can dial to reach a voice agent."""

    destination: str
    agent: str


class WebrtcSession(BaseModel):
    """Everything the browser page needs."""

    janus_url: str = Field(description="ws://host:port of Janus's WebSocket API")
    janus_token: str = Field(description="token for every Janus request (token_auth)")
    sip: SipIdentity
    feed_token: str = Field(description="GET /v1/events?access_token=<feed_token> (read-only)")
    extensions: list[AgentExtension]
    expires_at: datetime = Field(description="when the identity and its tokens stop working (UTC)")


class _AdapterTokens:
    """The adapter's Admin API, looked up at each call: it exists only while the adapter is entered, which
    happens after the API is built. A missing or closed Admin API (aiohttp's ``RuntimeError`` for a closed
    session, at shutdown) is ``JanusUnavailable``."""

    def __init__(self, adapter: JanusAdapter) -> None:
        self._adapter = adapter

    async def add_token(self, token: str, plugins: Sequence[str] = (SIP_PLUGIN,)) -> None:
        try:
            await self._adapter.admin.add_token(token, plugins)
        except RuntimeError as exc:
            raise JanusUnavailable(f"add_token: {exc}") from exc

    async def remove_token(self, token: str) -> None:
        try:
            await self._adapter.admin.remove_token(token)
        except RuntimeError as exc:
            raise JanusUnavailable(f"remove_token: {exc}") from exc


def agent_extensions(table: RouteTable, context: str) -> list[AgentExtension]:
    """The agent routes a browser dialling in ``context`` can reach (literal destination, no caller or
    other context limit)."""
    found: list[AgentExtension] = []
    for route in table.routes:
        if route.caller is not None or route.context not in (None, context):
            continue
        action = parse_action(route.action)
        if action.kind == "agent" and "$" not in action.arg and _LITERAL.fullmatch(route.destination):
            found.append(AgentExtension(destination=route.destination, agent=action.arg))
    return found


class _Sessions:
    def __init__(self, c: Controller, users: BrowserUsers) -> None:
        self.c, self.users = c, users

    async def create(self, req: Request) -> WebrtcSession:
        body: WebrtcSessionBody = req.body
        try:
            user = await self.users.create(body.display_name)
        except JanusError as exc:
            raise ApiError(503, f"Janus did not add the token: {exc}", "janus") from exc
        janus = self.c.settings.janus
        domain = self.users.domain
        return WebrtcSession(
            janus_url=janus.browser_url,
            janus_token=user.janus_token,
            sip=SipIdentity(
                username=user.username,
                password=user.password,
                proxy=f"sip:{janus.sip_proxy}",
                identity=f"sip:{user.username}@{domain}",
                domain=domain,
            ),
            feed_token=user.feed_token,
            extensions=agent_extensions(self.c.router.table, self.c.settings.calls.context),
            expires_at=datetime.fromtimestamp(user.expires_at, UTC),
        )


async def _flush_registrations(c: Controller, user_at_domain: str) -> None:
    """Flush the user's registrations on every connected node (failures are logged)."""
    command = f"sofia profile internal flush_inbound_reg {user_at_domain} reboot"
    for node in c.nodes.values():
        if not node.connected:
            continue
        try:
            await node.api(command, _FLUSH_DEADLINE_S)
        except EslError as exc:
            log.warning("node %s: %s: %s", node.name, command, exc)


def add_webrtc_routes(app: web.Application, spec: ApiSpec, c: Controller, adapter: JanusAdapter) -> None:
    """Mount ``POST /v1/webrtc/session`` and ``POST /freeswitch/directory``; feed tokens open ``/v1/events``.

    The identities' expiry timer runs with the application (``cleanup_ctx``).
    """
    janus = c.settings.janus
    domain = c.settings.calls.sip_domain or c.settings.sip.domain
    users = BrowserUsers(
        _AdapterTokens(adapter), domain, janus.session_ttl_s, unregister=partial(_flush_registrations, c)
    )
    h = _Sessions(c, users)
    app[BROWSERS] = users
    spec.query_token_check = users.feed_subject
    context = c.settings.calls.context
    add_directory_routes(app, users, janus.directory.user, janus.directory.secret(), context)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        users.start()
        yield
        await users.aclose()

    app.cleanup_ctx.append(lifecycle)
    spec.add(
        app,
        Operation(
            "POST",
            "/v1/webrtc/session",
            "Create a short-lived browser identity (Janus token, SIP user, feed token)",
            h.create,
            body=WebrtcSessionBody,
            response=WebrtcSession,
            status=201,
            tag="webrtc",
            errors=(503,),
        ),
    )
