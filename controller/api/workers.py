"""``/v1/workers``: media workers heartbeat here (``POST …/heartbeat``) and operators list them (``GET``).

Both need a bearer token from ``api.tokens``; a missing or wrong token is 401, a bad body 422 naming the
field and the reason.
"""

from __future__ import annotations

import hmac
import json

from aiohttp import web
from pydantic import SecretStr, ValidationError

from controller.workers.pool import Heartbeat, WorkerPool

__all__ = ["POOL", "TOKENS", "add_worker_routes", "require_token"]

POOL = web.AppKey("pool", WorkerPool)
TOKENS = web.AppKey("tokens", tuple)


def require_token(request: web.Request) -> None:
    """Raise 401 unless the request carries one of the configured bearer tokens."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    tokens: tuple[SecretStr, ...] = request.app[TOKENS]
    if scheme.lower() != "bearer" or not any(
        hmac.compare_digest(token.encode(), t.get_secret_value().encode()) for t in tokens
    ):
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "unauthorized", "reason": "missing or wrong bearer token"}),
            content_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _error(status: type[web.HTTPError], field: str, reason: str) -> web.HTTPError:
    body = json.dumps({"error": "invalid request", "field": field, "reason": reason})
    return status(text=body, content_type="application/json")


async def heartbeat(request: web.Request) -> web.Response:
    """A worker's heartbeat: register or refresh it."""
    require_token(request)
    try:
        beat = Heartbeat.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise _error(web.HTTPUnprocessableEntity, field, first["msg"]) from exc
    info = request.app[POOL].heartbeat(beat)
    return web.json_response({"worker_id": info.worker_id, "accepted": True})


async def list_workers(request: web.Request) -> web.Response:
    """Every known worker with its health."""
    require_token(request)
    return web.json_response({"workers": request.app[POOL].snapshot()})


def add_worker_routes(app: web.Application, pool: WorkerPool, tokens: tuple[SecretStr, ...]) -> None:
    """Mount the worker routes on ``app``."""
    app[POOL] = pool
    app[TOKENS] = tokens
    app.router.add_post("/v1/workers/heartbeat", heartbeat)
    app.router.add_get("/v1/workers", list_workers)
