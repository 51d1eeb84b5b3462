"""``/v1/workers``: media workers heartbeat here (``POST …/heartbeat``) and operators list them (``GET``).

Both need a bearer token from ``api.tokens``; errors follow ``controller.api.spec``. A beat that would take
over a live worker's id or URL is refused with 409 (``controller.workers.pool.WorkerConflict``).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from controller.api.ports import Workers
from controller.api.spec import ApiError, ApiSpec, Operation, Request
from controller.workers.pool import Heartbeat, WorkerConflict

__all__ = ["HeartbeatAccepted", "WorkerList", "WorkerView", "add_worker_routes"]


class HeartbeatAccepted(BaseModel):
    """The worker is registered (or refreshed)."""

    worker_id: str
    accepted: bool = True


class WorkerView(BaseModel):
    """A worker and its health."""

    worker_id: str
    url: str
    capacity: int
    streams: int
    assigned: int
    load: float
    vad_lag_p99_ms: float | None
    healthy: bool
    alive: bool
    draining: bool
    suspect: bool = Field(description="a stream start failed on it recently")


class WorkerList(BaseModel):
    """Every known worker."""

    workers: list[WorkerView]


def add_worker_routes(app: web.Application, spec: ApiSpec, pool: Workers) -> None:
    """Mount the worker routes on ``app``."""

    async def heartbeat(req: Request) -> HeartbeatAccepted:
        try:
            info = pool.heartbeat(req.body)
        except WorkerConflict as exc:
            raise ApiError(409, str(exc), "url") from exc
        return HeartbeatAccepted(worker_id=info.worker_id)

    async def list_workers(req: Request) -> WorkerList:
        return WorkerList(workers=[WorkerView.model_validate(w) for w in pool.snapshot()])

    spec.add(
        app,
        Operation(
            "POST",
            "/v1/workers/heartbeat",
            "A media worker's heartbeat",
            heartbeat,
            body=Heartbeat,
            response=HeartbeatAccepted,
            tag="workers",
            worker_token=True,
            errors=(409,),
            scope="admin",
        ),
    )
    spec.add(
        app,
        Operation("GET", "/v1/workers", "Media workers", list_workers, response=WorkerList, tag="workers"),
    )
