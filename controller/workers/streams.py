"""Per-call audio streams to media workers: start with failover, and move a call when its worker dies.

Facts from audio_stream_wire.txt (section 6) this follows:

* ``uuid_audio_stream … start`` answers ``+OK`` before connecting; success is ``::connect`` about 20 ms
  later, failure ``::error`` (the bug is then removed) — so a start waits for one of them, with a deadline;
* after the worker closes the socket (``::disconnect``) the media bug stays attached and a new start fails
  until ``stop``; there is no reconnect. So on a failed start or a lost worker: ``stop`` first, then start on
  the next worker; a lost worker's call also hears a short apology prompt meanwhile instead of silence.

Exceptions::

    NoWorkerAvailable   no healthy worker accepted the stream (the caller decides the fallback)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.calls.changes import AudioStreamChanged, CallChange, ChannelRemoved
from controller.calls.channel import AudioStreamState
from controller.calls.playback import RunCommand
from controller.freeswitch.protocol import EslError
from controller.workers.pool import WorkerInfo, WorkerPool

if TYPE_CHECKING:
    from controller.settings import WorkerPoolSettings

__all__ = ["AgentStreams", "NoWorkerAvailable", "StreamRequest"]

log = logging.getLogger("switchyard.streams")


# The worker closed the socket (::disconnect) or the connection failed under way (::error).
_LOST = (AudioStreamState.DISCONNECTED, AudioStreamState.FAILED)


class NoWorkerAvailable(Exception):
    """Every healthy worker was tried (or there was none)."""


@dataclass(frozen=True)
class StreamRequest:
    """What to stream: the leg, the call id in the worker URL, the rate to ask for, the metadata JSON."""

    node: str
    uuid: str
    call_id: str
    rate: int  # 8000 for narrowband legs (16k on a 30 ms leg drops audio), 16000 for wideband
    metadata: str  # compact JSON (spaces are allowed: it is the last argument)


@dataclass
class _Stream:
    request: StreamRequest
    worker: WorkerInfo | None = None
    waiter: asyncio.Future[AudioStreamState] | None = None
    failover: asyncio.Task[None] | None = None
    moves: int = 0
    tried: set[str] = field(default_factory=set)


class AgentStreams:
    """Starts, supervises and moves the audio streams of calls; feed it the call model's changes."""

    def __init__(self, pool: WorkerPool, run: RunCommand, settings: WorkerPoolSettings) -> None:
        self._pool = pool
        self._run = run
        self._connect_timeout = settings.connect_timeout
        self._apology = settings.apology_prompt
        self._max_attempts = settings.max_attempts
        self._wait_s = settings.wait_s
        self._streams: dict[str, _Stream] = {}

    def worker_of(self, uuid: str) -> str | None:
        """The worker currently streaming ``uuid``."""
        stream = self._streams.get(uuid)
        return None if stream is None or stream.worker is None else stream.worker.worker_id

    def attempts_of(self, uuid: str) -> int:
        """Workers tried for ``uuid``'s stream so far."""
        stream = self._streams.get(uuid)
        return 0 if stream is None else len(stream.tried)

    async def start(self, request: StreamRequest) -> WorkerInfo:
        """Stream the leg to the least-loaded healthy worker, failing over on ``::error`` or timeout.

        Raises:
            NoWorkerAvailable: no worker connected within ``max_attempts`` tries.
        """
        stream = self._streams.setdefault(request.uuid, _Stream(request))
        return await self._connect(stream)

    async def stop(self, uuid: str) -> None:
        """Stop supervising and stop the stream (FreeSWITCH removes the worker's files)."""
        stream = self._streams.pop(uuid, None)
        if stream is None:
            return
        if stream.failover is not None:
            stream.failover.cancel()
        await self._command(stream.request.node, f"uuid_audio_stream {uuid} stop")

    def apply(self, node: str, change: CallChange) -> None:
        """Resolve a pending start, or move the call when its worker went away."""
        if isinstance(change, ChannelRemoved):
            stream = self._streams.pop(change.uuid, None)
            if stream is not None and stream.failover is not None:
                stream.failover.cancel()
            return
        if not isinstance(change, AudioStreamChanged):
            return
        stream = self._streams.get(change.uuid)
        if stream is None:
            return
        if stream.waiter is not None:
            # A start ends in ::connect or ::error only; MEDIA_BUG_STOP of an earlier stop is not an answer.
            if (
                change.state in (AudioStreamState.CONNECTED, AudioStreamState.FAILED)
                and not stream.waiter.done()
            ):
                stream.waiter.set_result(change.state)
        elif change.state in _LOST and stream.failover is None and stream.worker is not None:
            worker = stream.worker.worker_id if stream.worker else "?"
            log.warning(
                "%s: worker %s closed the stream (%s %s)", change.uuid, worker, change.code, change.reason
            )
            stream.failover = asyncio.create_task(self._move(stream), name=f"move stream {change.uuid}")

    async def _connect(self, stream: _Stream) -> WorkerInfo:
        request = stream.request
        loop = asyncio.get_running_loop()
        for _ in range(self._max_attempts):
            # Only a first pick waits: a failover moves on to the next worker or gives up at once.
            wait_s = 0.0 if stream.tried else self._wait_s
            worker = await self._pool.wait_pick(wait_s, exclude=stream.tried)
            if worker is None:
                break
            stream.tried.add(worker.worker_id)
            stream.waiter = loop.create_future()
            rate = "16k" if request.rate == 16000 else "8k"
            command = (
                f"uuid_audio_stream {request.uuid} start {worker.stream_url(request.call_id)} mono {rate}"
            )
            state = await self._attempt(request.node, f"{command} {request.metadata}", stream.waiter)
            if state is AudioStreamState.CONNECTED:
                stream.worker, stream.waiter = worker, None
                return worker
            log.warning("%s: worker %s did not take the stream (%s)", request.uuid, worker.worker_id, state)
            self._pool.suspect(worker.worker_id)
            await self._command(request.node, f"uuid_audio_stream {request.uuid} stop")
        stream.waiter = None
        raise NoWorkerAvailable(
            f"{request.uuid}: no worker accepted the stream (tried {sorted(stream.tried)})"
        )

    async def _attempt(
        self, node: str, command: str, waiter: asyncio.Future[AudioStreamState]
    ) -> AudioStreamState | str:
        try:
            await self._run(node, command)
        except EslError as exc:
            return f"start refused: {exc}"
        try:
            async with asyncio.timeout(self._connect_timeout):
                return await waiter
        except TimeoutError:
            return "no ::connect within the deadline"

    async def _move(self, stream: _Stream) -> None:
        request = stream.request
        if self._apology:
            await self._command(request.node, f"uuid_broadcast {request.uuid} {self._apology} aleg")
        await self._command(request.node, f"uuid_audio_stream {request.uuid} stop")
        if stream.worker is not None:
            self._pool.suspect(stream.worker.worker_id)
        stream.tried = {stream.worker.worker_id} if stream.worker else set()
        stream.worker = None
        try:
            worker = await self._connect(stream)
        except NoWorkerAvailable as exc:
            log.error("%s", exc)
            return
        finally:
            stream.failover = None
        stream.moves += 1
        log.info("%s: stream moved to worker %s", request.uuid, worker.worker_id)

    async def _command(self, node: str, command: str) -> None:
        try:
            await self._run(node, command)
        except EslError as exc:  # e.g. stop after ::error: the bug is already gone
            log.debug("%s: %s", command.split(" ", 2)[:2], exc)

    async def aclose(self) -> None:
        """Cancel pending moves (bounded wait)."""
        tasks = [s.failover for s in self._streams.values() if s.failover is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        self._streams.clear()
