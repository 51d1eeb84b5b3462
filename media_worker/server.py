"""The worker's aiohttp app: ``/stream/{call_id}`` (mod_audio_stream connects here), health and metrics.

A stream is refused with HTTP 503 before the upgrade when the worker is full or holds ``max_connections``
sockets (mod_audio_stream then fires ``::error`` and the controller tries the next worker). The metadata
must carry the controller's token for this call id and this worker (:mod:`switchyard.streamauth`); a
stream is closed (1008) when no frame came for ``idle_timeout_s`` or it has been open ``max_stream_s``.
Liveness: PINGs are answered here (not by aiohttp's autoping, which hides them) and count as frames; once
the peer has pinged (mod_audio_stream with ``STREAM_HEART_BEAT``, every second whether audio flows or not:
libwsc's persistent ping timer), ``liveness_s`` without a frame or ping closes the stream — FreeSWITCH's
side is gone, and the worker's next heartbeats stop listing the call.
After the upgrade the first text frame must be the metadata, within ``metadata_timeout_s`` (audio frames
that race ahead of it are kept for the call); any frame that breaks the protocol closes that one socket with
the code and reason from
:mod:`switchyard.wire` and is logged; other sessions never notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import WSMessage, WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from media_worker.metrics import WorkerMetrics
from media_worker.session import CallSession
from media_worker.settings import WorkerSettings
from media_worker.vad.batcher import VadBatcher
from media_worker.vad.model import BatchedVadModel
from media_worker.voice.base import VoicePipeline
from media_worker.voice.providers import ProviderRegistry
from switchyard.messages import parse_control
from switchyard.streamauth import verify
from switchyard.wire import (
    CLOSE_BAD_DATA,
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    WireError,
    check_audio_frame,
    parse_metadata,
)

__all__ = ["WORKER", "Worker", "build_app"]

log = logging.getLogger("switchyard.worker")

# Audio frames kept when they arrive before the metadata (1 s of 20 ms frames); one more closes the stream.
EARLY_FRAMES: Final = 50
_Early = tuple[bytes, float]  # a frame and when it arrived (time.monotonic)
MAX_BODY_BYTES: Final = 1024


@dataclass
class Worker:
    """What the app's handlers share: settings, model, batcher, pipelines, metrics and the open sessions."""

    settings: WorkerSettings
    model: BatchedVadModel
    pipelines: dict[str, VoicePipeline]  # by agent name
    metrics: WorkerMetrics
    default: VoicePipeline | None = None  # for agents not in ``pipelines`` (None: refuse the stream)
    providers: ProviderRegistry | None = None  # closed when the app stops
    batcher: VadBatcher | None = None
    sessions: dict[str, CallSession] = field(default_factory=dict)
    sockets: dict[str, web.WebSocketResponse] = field(default_factory=dict)
    draining: bool = False
    connections: int = 0  # stream sockets being served, with a session or still before their metadata
    wall_clock: Callable[[], float] = time.time  # tokens' expiry is Unix time
    key: bytes | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.key = self.settings.stream_key()

    def health(self) -> dict[str, object]:
        """Load report for ``/healthz`` and the controller's pool."""
        lags = self.metrics.lag_percentiles()
        return {
            "worker_id": self.settings.worker_id,
            "status": "draining" if self.draining else "ok",
            "streams": len(self.sessions),
            "capacity": self.settings.capacity,
            "load": round(len(self.sessions) / self.settings.capacity, 4),
            "vad_lag_p50_ms": None if lags is None else round(lags[0] * 1000, 2),
            "vad_lag_p99_ms": None if lags is None else round(lags[1] * 1000, 2),
            "dropped_frames": int(
                self.metrics.registry.get_sample_value("switchyard_worker_dropped_frames_total") or 0
            ),
        }


WORKER = web.AppKey("worker", Worker)


async def _batcher_ctx(app: web.Application) -> AsyncIterator[None]:
    worker = app[WORKER]
    tick = worker.settings.vad.tick_ms / 1000
    for pipeline in worker.pipelines.values():
        await pipeline.start()
    async with VadBatcher(worker.model, tick, worker.metrics, worker.settings.vad.max_batch) as batcher:
        worker.batcher = batcher
        yield
        worker.draining = True
        for ws in list(worker.sockets.values()):
            await ws.close(code=CLOSE_GOING_AWAY, message=b"worker shutting down")
    for pipeline in worker.pipelines.values():
        await pipeline.aclose()
    if worker.providers is not None:
        await worker.providers.aclose()


def build_app(worker: Worker) -> web.Application:
    """The worker's aiohttp application (the batcher runs while the app runs); its handlers read no
    request body, so ``client_max_size`` is small (served by ``switchyard.httpserver.HttpServer``)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[WORKER] = worker
    app.cleanup_ctx.append(_batcher_ctx)
    app.router.add_get("/stream/{call_id}", _stream)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    return app


async def _healthz(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    return web.json_response(worker.health(), status=503 if worker.draining else 200)


async def _metrics(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    worker.metrics.active_streams.set(len(worker.sessions))
    body = generate_latest(worker.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _stream(request: web.Request) -> web.StreamResponse:
    worker = request.app[WORKER]
    call_id = request.match_info["call_id"]
    full = len(worker.sessions) >= worker.settings.capacity
    if worker.draining or full or worker.connections >= worker.settings.max_connections:
        log.warning("stream %s refused: worker full or draining", call_id)
        worker.metrics.closed.labels("full").inc()
        raise web.HTTPServiceUnavailable(text="worker full\n")
    if worker.batcher is None:
        raise web.HTTPServiceUnavailable(text="worker starting\n")
    if call_id in worker.sessions:
        raise web.HTTPConflict(text=f"stream {call_id} is already open\n")
    ws = web.WebSocketResponse(max_msg_size=worker.settings.max_frame_bytes, autoping=False)
    worker.connections += 1
    try:
        await ws.prepare(request)
        await _serve(worker, ws, call_id)
    except WireError as exc:
        log.warning("stream %s closed: %s %s", call_id, exc.code, exc.reason)
        worker.metrics.closed.labels("protocol").inc()
        await ws.close(code=exc.code, message=exc.reason.encode())
    finally:
        worker.connections -= 1
    return ws


async def _first_text(worker: Worker, ws: web.WebSocketResponse) -> tuple[str | None, list[_Early]]:
    """The metadata text (``None``: the peer closed first) and the audio frames that came before it.

    mod_audio_stream ec2a781 may send audio before its metadata (seen on FreeSWITCH 1.10.12): libwsc's open
    callback marks the socket connected and then, from its own thread, locates the session to send the
    metadata (audio_streamer_glue.cpp ``setOpenCallback`` → ``eventCallback(CONNECT_SUCCESS)`` →
    ``send_initial_metadata``), while the media bug's read callback already writes frames (``writeBinary``
    checks only ``isConnected()``). Up to ``EARLY_FRAMES`` such frames are kept, in order, for the call.
    """
    early: list[_Early] = []
    max_bytes = worker.settings.max_frame_bytes
    try:
        async with asyncio.timeout(worker.settings.metadata_timeout_s):
            msg = await _receive_one(ws, None)
            while msg.type is WSMsgType.BINARY or msg.type in _PING_PONG:
                if msg.type is WSMsgType.BINARY:
                    check_audio_frame(msg.data, max_bytes)
                    if len(early) == EARLY_FRAMES:
                        raise WireError(
                            CLOSE_POLICY, f"metadata: none before {EARLY_FRAMES + 1} audio frames"
                        )
                    early.append((msg.data, time.monotonic()))
                msg = await _receive_one(ws, None)
    except TimeoutError:
        raise WireError(CLOSE_POLICY, "metadata: none within the deadline") from None
    if msg.type is WSMsgType.TEXT:
        return str(msg.data), early
    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
        return None, early
    raise WireError(CLOSE_POLICY, "metadata: the first text frame must be the metadata")


async def _serve(worker: Worker, ws: web.WebSocketResponse, call_id: str) -> None:
    text, early = await _first_text(worker, ws)
    if text is None:
        return
    meta = parse_metadata(text, call_id)
    verify(worker.key, meta.token, call_id, worker.settings.worker_id, worker.wall_clock())
    if call_id in worker.sessions:  # two sockets raced past the check before the upgrade
        raise WireError(CLOSE_POLICY, "metadata.call_id: this call is already streaming here")
    batcher = worker.batcher
    assert batcher is not None
    pipeline = worker.pipelines.get(meta.agent, worker.default)
    if pipeline is None:
        raise WireError(CLOSE_POLICY, f"metadata.agent: no agent named {meta.agent!r} on this worker"[:120])
    session = CallSession(meta, worker.settings, pipeline.open(meta), worker.metrics, ws.send_str)
    worker.sessions[call_id] = session
    worker.sockets[call_id] = ws
    worker.metrics.active_streams.set(len(worker.sessions))
    batcher.add(session.stream)
    for data, arrived in early:
        session.stream.push(data, arrived)
    worker.metrics.frames.inc(len(early))
    worker.metrics.bytes_in.inc(sum(len(data) for data, _ in early))
    session.start()
    log.info(
        "stream %s: %s %s -> %s, %d Hz", call_id, meta.call_type, meta.caller, meta.callee, meta.sample_rate
    )
    try:
        reason = await _receive(worker, ws, session)
        worker.metrics.closed.labels(reason).inc()
    finally:
        batcher.remove(session.stream)
        del worker.sessions[call_id]
        del worker.sockets[call_id]
        worker.metrics.active_streams.set(len(worker.sessions))
        await session.aclose()


_PING_PONG: Final = (WSMsgType.PING, WSMsgType.PONG)


async def _receive_one(ws: web.WebSocketResponse, timeout: float | None) -> WSMessage:
    """The next message, a PING answered with its PONG first (``autoping`` is off so pings are seen)."""
    msg = await ws.receive(timeout=timeout)
    if msg.type is WSMsgType.PING:
        with contextlib.suppress(ConnectionResetError):  # closing: the next receive says so
            await ws.pong(msg.data)
    return msg


async def _receive(worker: Worker, ws: web.WebSocketResponse, session: CallSession) -> str:
    """Read frames until the socket closes; returns why it ended."""
    stream = session.stream
    max_bytes = worker.settings.max_frame_bytes
    metrics = worker.metrics
    frames = 0
    received = 0
    clock = time.monotonic
    idle = worker.settings.idle_timeout_s
    end = clock() + worker.settings.max_stream_s
    try:
        while True:
            left = end - clock()
            try:
                msg = await _receive_one(ws, min(idle, left))
            except TimeoutError:
                why = "open too long" if left <= idle else f"no frame for {idle:g} s"
                raise WireError(CLOSE_POLICY, f"stream: {why}") from None
            if msg.type is WSMsgType.PING:
                idle = min(idle, worker.settings.liveness_s)  # the peer pings: hold it to liveness_s
            elif msg.type is WSMsgType.PONG:
                pass
            elif msg.type is WSMsgType.BINARY:
                data = msg.data
                check_audio_frame(data, max_bytes)
                frames += 1
                received += len(data)
                if not stream.push(data, clock()):
                    metrics.dropped_frames.inc()
                if frames == 256:  # counters are flushed in batches: cheaper than one inc per frame
                    metrics.frames.inc(frames)
                    metrics.bytes_in.inc(received)
                    frames = received = 0
            elif msg.type is WSMsgType.TEXT:
                control = parse_control(msg.data)
                if control is not None:
                    session.control(control)
            elif msg.type is WSMsgType.ERROR:
                raise WireError(CLOSE_BAD_DATA, f"bad frame: {ws.exception()}"[:120])
            else:
                return "closed"
    finally:
        metrics.frames.inc(frames)
        metrics.bytes_in.inc(received)
