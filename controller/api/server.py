"""The controller's aiohttp application: every operation, and ``/openapi.json`` generated from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from controller.api.calls import add_call_routes
from controller.api.janus_events import add_janus_event_routes
from controller.api.spec import ApiSpec
from controller.api.system import add_system_routes
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
    spec = ApiSpec("Switchyard controller", API_VERSION, c.settings.api.tokens)
    app[SPEC] = spec
    add_system_routes(app, spec, c)
    add_call_routes(app, spec, c)
    add_worker_routes(app, spec, c.pool)
    events = c.settings.janus.events
    if events.enabled:
        # Janus's event handler (basic auth, not in the OpenAPI document: see controller/api/janus_events.py).
        add_janus_event_routes(app, JanusMetrics(c.metrics.registry), events.user, events.secret())
    document = spec.document()

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", openapi)
    return app
