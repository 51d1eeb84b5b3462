"""A media worker on loopback for tests, and the mod_audio_stream start command that points a call at it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from media_worker.metrics import WorkerMetrics
from media_worker.server import Worker, build_app
from media_worker.settings import WorkerSettings
from media_worker.vad.silero import SileroModel
from media_worker.voice.base import VoicePipeline
from media_worker.voice.echo import EchoPipeline
from switchyard.httpserver import HttpServer
from switchyard.streamauth import sign

STREAM_SECRET = "test-stream-secret-0123456789"
"""``media_worker.stream_secret`` of the test workers and controllers (tests/controllerkit.py)."""


def stream_token(call_id: str, worker_id: str = "worker-1", ttl_s: float = 30.0) -> str:
    """A controller's token for ``call_id`` on ``worker_id`` (switchyard.streamauth), valid ``ttl_s``."""
    return sign(STREAM_SECRET.encode(), call_id, worker_id, int(time.time() + ttl_s))


@dataclass
class RunningWorker:
    """A worker app served on 127.0.0.1 and its shared state."""

    worker: Worker
    port: int
    server: HttpServer
    host: str = "127.0.0.1"

    def url(self, call_id: str) -> str:
        """The stream URL of ``call_id``."""
        return f"ws://{self.host}:{self.port}/stream/{call_id}"

    def start_args(self, uuid: str, call_id: str, rate: int, call_type: str = "sip", **meta: Any) -> str:
        """Arguments of ``uuid_audio_stream`` that stream ``uuid`` to this worker (the controller's form)."""
        token = stream_token(call_id, self.worker.settings.worker_id)
        data = {"call_id": call_id, "sample_rate": rate, "call_type": call_type, "token": token, **meta}
        text = json.dumps(data, separators=(",", ":"))
        return f"{uuid} start {self.url(call_id)} mono {rate // 1000}k {text}"


@asynccontextmanager
async def running_worker(
    model: SileroModel,
    pipelines: dict[str, VoicePipeline] | None = None,
    metrics: WorkerMetrics | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningWorker]:
    """Serve a worker with ``WorkerSettings(**overrides)`` on an ephemeral port of its ``host`` (loopback
    by default), as ``switchyard-worker`` does (``HttpServer``, its limits): the agents' ``pipelines`` when
    given, else the echo agent for every stream."""
    settings = WorkerSettings.model_validate({"port": 0, "stream_secret": STREAM_SECRET, **overrides})
    default = None if pipelines else EchoPipeline()
    worker = Worker(settings, model, pipelines or {}, metrics or WorkerMetrics(), default=default)
    async with HttpServer(build_app(worker), settings.http, name="worker") as server:
        yield RunningWorker(worker, await server.listen(settings.host, 0), server, settings.host)
