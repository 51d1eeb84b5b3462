"""``POST /v1/webrtc/session``: a short-lived browser identity (Janus token, SIP user, feed token).

Mounted when ``janus.enabled`` and ``janus.directory.enabled`` (FreeSWITCH must be able to look the SIP user
up: ``controller.api.directory``). The identity lives ``janus.session_ttl_s`` seconds
(``controller.janus.browsers``). ``extensions`` lists the agent routes a browser can dial: routes whose
action is ``agent <name>``, whose destination is a literal number and that do not restrict the caller or
come from another context than the internal profile's.

The identities (``BrowserIdentities``) are the controller's: it builds them, runs their expiry timer and
flushes an expired user's registrations on the nodes (``SipRegistrations.flush``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from controller.api.directory import add_directory_routes
from controller.api.ports import BrowserIdentities, Routes
from controller.api.spec import PRINCIPAL, ApiError, ApiSpec, Operation, Request
from controller.calls.routes import RouteTable, parse_action
from controller.janus.admin import JanusError
from controller.janus.settings import JanusSettings

__all__ = ["AgentExtension", "SipIdentity", "WebrtcSession", "WebrtcSessionBody", "add_webrtc_routes"]

_LITERAL: Final = re.compile(r"[A-Za-z0-9_]{1,32}")


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

    janus_url: str = Field(description="ws://host:port of Janus's WebSocket API (wss:// with janus.tls)")
    janus_token: str = Field(description="token for every Janus request (token_auth)")
    sip: SipIdentity
    feed_token: str = Field(description="GET /v1/events?access_token=<feed_token> (read-only)")
    extensions: list[AgentExtension]
    expires_at: datetime = Field(description="when the identity and its tokens stop working (UTC)")


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
    def __init__(self, users: BrowserIdentities, routes: Routes, janus: JanusSettings, context: str) -> None:
        self.users, self.routes, self.janus, self.context = users, routes, janus, context

    async def create(self, req: Request) -> WebrtcSession:
        body: WebrtcSessionBody = req.body
        principal = req.http.get(PRINCIPAL)
        signed_in = None if principal is None else principal.user
        try:
            user = await self.users.create(body.display_name, caller_id_number=signed_in)
        except JanusError as exc:
            raise ApiError(503, f"Janus did not add the token: {exc}", "janus") from exc
        domain = self.users.domain
        return WebrtcSession(
            janus_url=self.janus.browser_url,
            janus_token=user.janus_token,
            sip=SipIdentity(
                username=user.username,
                password=user.password,
                proxy=f"sip:{self.janus.sip_proxy}",
                identity=f"sip:{user.username}@{domain}",
                domain=domain,
            ),
            feed_token=user.feed_token,
            extensions=agent_extensions(self.routes.route_table(), self.context),
            expires_at=datetime.fromtimestamp(user.expires_at, UTC),
        )


def add_webrtc_routes(
    app: web.Application,
    spec: ApiSpec,
    users: BrowserIdentities,
    routes: Routes,
    *,
    janus: JanusSettings,
    context: str,
) -> None:
    """Mount ``POST /v1/webrtc/session`` and ``POST /freeswitch/directory``; feed tokens open ``/v1/events``.

    ``context`` is the dialplan context of browser users (``calls.context``).
    """
    h = _Sessions(users, routes, janus, context)
    spec.query_token_check = users.feed_subject
    add_directory_routes(app, users, janus.directory.user, janus.directory.secret(), context)
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
            scope="webrtc",
        ),
    )
