"""The controller's aiohttp application: every operation, and ``/openapi.json`` generated from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from controller.api.calls import add_call_routes
from controller.api.janus_events import add_janus_event_routes
from controller.api.phone import add_phone_routes
from controller.api.spec import ApiSpec
from controller.api.system import add_system_routes
from controller.api.webrtc import add_webrtc_routes
from controller.api.workers import add_worker_routes
from controller.janus.metrics import JanusMetrics

if TYPE_CHECKING:
    from controller.app import Controller

__all__ = ["API_VERSION", "SPEC", "build_app"]

API_VERSION = "1.0.0"
SPEC = web.AppKey("spec", ApiSpec)


def build_app(c: Controller) -> web.Application:
    """The API application of controller ``c`` (client body size capped at 64 KiB)."""
    app = web.Application(client_max_size=64 * 1024)
    api = c.settings.api
    spec = ApiSpec("Switchyard controller", API_VERSION, api.tokens, api.worker_tokens)
    app[SPEC] = spec
    add_system_routes(app, spec, c)
    add_call_routes(app, spec, c)
    add_worker_routes(app, spec, c.pool)
    add_phone_routes(app, c.settings.janus)  # the browser demo page (no auth; it asks for a token)
    events = c.settings.janus.events
    if events.enabled:
        # Janus's event handler (basic auth, not in the OpenAPI document: see controller/api/janus_events.py).
        metrics = JanusMetrics(c.metrics.registry)
        add_janus_event_routes(app, metrics, events.user, events.secret(), c.webrtc_links.apply)
    if c.janus is not None and c.settings.janus.directory.enabled:
        add_webrtc_routes(app, spec, c, c.janus)  # browser identities, FreeSWITCH's directory lookups of them
    document = spec.document()

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", openapi)
    return app
