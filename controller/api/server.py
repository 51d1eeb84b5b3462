"""The controller's aiohttp application: every operation, and ``/openapi.json`` generated from them.

``build_app`` mounts the routes on the ports the controller hands it (``controller.api.ports``); it builds
no service of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from controller.api.calls import add_call_routes
from controller.api.idempotency import IdempotencyKeys
from controller.api.idemstore import SqliteKeyStore
from controller.api.janus_events import add_janus_event_routes
from controller.api.phone import add_phone_routes
from controller.api.ports import PORTS, ApiPorts
from controller.api.signin import BrowserSignin, add_signin_routes
from controller.api.spec import ApiSpec
from controller.api.system import add_system_routes
from controller.api.webrtc import add_webrtc_routes
from controller.api.workers import add_worker_routes
from controller.calls.contexts import DialingContexts
from controller.janus.settings import JanusSettings
from controller.render.settings import SipUser
from controller.settings import ApiSettings, CallSettings

__all__ = ["API_VERSION", "SPEC", "build_app"]

API_VERSION = "1.0.0"
SPEC = web.AppKey("spec", ApiSpec)


def build_app(
    ports: ApiPorts,
    api: ApiSettings,
    calls: CallSettings,
    janus: JanusSettings,
    users: Sequence[SipUser] = (),
    *,
    idempotency_path: Path | None = None,
) -> web.Application:
    """The API application on ``ports`` (client body size capped at 64 KiB).

    Janus's event handler is mounted when ``ports.janus_events`` is given, the browser identities,
    FreeSWITCH's directory lookups of them and the sign-in of ``users`` (the directory users) when
    ``ports.browsers`` is. ``Idempotency-Key`` entries are kept in ``idempotency_path`` (restored when the
    app starts), or in memory only without one.
    """
    app = web.Application(client_max_size=64 * 1024)
    spec = ApiSpec("Switchyard controller", API_VERSION, api.tokens, api.worker_tokens)
    keys = api.idempotency
    store = None if idempotency_path is None else SqliteKeyStore(idempotency_path)
    spec.idempotency = IdempotencyKeys(keys.ttl_s, keys.max_keys, keys.wait_s, store=store)
    app[SPEC] = spec
    app[PORTS] = ports
    add_system_routes(app, spec, ports)
    add_call_routes(app, spec, ports.calls, ports.streams, calls)
    add_worker_routes(app, spec, ports.workers)
    add_phone_routes(app, janus)  # the browser demo page (no auth; it signs in as a directory user)
    if ports.janus_events is not None:
        # Janus's event handler (basic auth, not in the OpenAPI document: see controller/api/janus_events.py).
        events = janus.events
        sink = ports.janus_events
        add_janus_event_routes(app, sink.metrics, events.user, events.secret(), sink.apply)
    if ports.browsers is not None:
        add_webrtc_routes(
            app,
            spec,
            ports.browsers,
            ports.routes,
            janus=janus,
            context=DialingContexts(calls.context).browser,
        )
        signin = BrowserSignin({u.extension: u for u in users}, api.signin, janus.session_ttl_s)
        add_signin_routes(app, spec, signin)
    document = spec.document()

    async def close_keys(app: web.Application) -> None:
        if spec.idempotency is not None:
            await spec.idempotency.aclose()

    async def restore_keys(app: web.Application) -> None:
        if spec.idempotency is not None:
            await spec.idempotency.restore()

    app.on_startup.append(restore_keys)
    app.on_cleanup.append(close_keys)

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", openapi)
    return app
