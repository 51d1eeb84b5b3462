"""Per-call audio streams to media workers: start with failover, and move a call when its worker dies.

Facts from audio_stream_wire.txt (section 6) this follows:

* ``uuid_audio_stream … start`` answers ``+OK`` before connecting; success is ``::connect`` about 20 ms
  later, failure ``::error`` (the bug is then removed) — so a start waits for one of them, with a deadline;
* after the worker closes the socket (``::disconnect``) the media bug stays attached and a new start fails
  until ``stop``; there is no reconnect. So on a failed start or a lost worker: ``stop`` first, then start on
  the next worker; a lost worker's call also hears a short apology prompt meanwhile instead of silence.

Liveness (``controller.workers.liveness``): before its first start a leg gets ``STREAM_HEART_BEAT=1``, so
mod_audio_stream pings the worker every second and the worker closes a stream whose FreeSWITCH side went
quiet; here a watchdog, ticking from the first start on, moves a call whose worker's heartbeats stopped or
stopped listing it (a frozen worker never closes its socket, so no ``::disconnect`` comes). A tick that
comes late (the controller's own loop stalled, holding the beats unread) judges nothing: the next one does,
once the held beats are in.

Restarts: once a worker took a stream, its id goes onto the leg (``switchyard_worker``, set with
``uuid_setvar_multi``); a restarted controller that finds the leg still carrying the bug adopts the stream
(``adopt``: no new start) and supervises it as its own, so a worker that later closes it is failed over.

Commands go through ``CommandSender``, and a start's ``::connect`` / ``::error`` is awaited with its
waiters (``CommandSender.expect``) like every other confirmation. A leg that hangs up while its start waits
ends the start (``CallConflict``): it is not the worker's fault, so no worker is marked suspect for it.

Exceptions::

    NoWorkerAvailable   no healthy worker accepted the stream (the caller decides the fallback)
    CallConflict        the leg was removed while its stream started (``controller.calls.sender``)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.calls.changes import AudioStreamChanged, CallChange, ChannelRemoved
from controller.calls.channel import AudioStreamState
from controller.calls.control import stream_answered
from controller.calls.sender import CallConflict, CallError, CommandSender
from controller.calls.snapshot import WORKER_VARIABLE
from controller.calls.waiters import ChannelGone
from controller.freeswitch import commands as fc
from controller.freeswitch.commands import Command, InvalidCommand
from controller.workers.liveness import LivenessCheck, StreamWatch
from controller.workers.pool import WorkerInfo, WorkerPool
from switchyard.streamauth import sign
from switchyard.tasks import cancel_all

if TYPE_CHECKING:
    from controller.settings import WorkerPoolSettings

__all__ = ["AgentStreams", "NoWorkerAvailable", "StreamRequest"]

log = logging.getLogger("switchyard.streams")


# The worker closed the socket (::disconnect) or the connection failed under way (::error).
_LOST = (AudioStreamState.DISCONNECTED, AudioStreamState.FAILED)
PING_S = 1
"""``STREAM_HEART_BEAT``: libwsc's smallest ping interval (whole seconds); media_worker.liveness_s is 1.5."""


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
    failover: asyncio.Task[None] | None = None
    moves: int = 0
    tried: set[str] = field(default_factory=set)
    watch: StreamWatch | None = None  # while connected to ``worker``
    adopted_at: float | None = None  # pool clock, for a stream an earlier controller started
    starts: int = 0  # stream starts sent, over every move


class AgentStreams:
    """Starts, supervises and moves the audio streams of calls; feed it the call model's changes."""

    def __init__(
        self,
        pool: WorkerPool,
        sender: CommandSender,
        settings: WorkerPoolSettings,
        key: bytes | None = None,
        wall_clock: Callable[[], float] = time.time,
        *,
        on_moved: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self._pool = pool
        self._on_moved = on_moved  # told (uuid, new worker, stream starts so far) after each move: the CDR
        self._key = key  # media_worker.stream_secret: each start carries a token (switchyard.streamauth)
        self._token_ttl_s = settings.token_ttl_s
        self._wall_clock = wall_clock
        self._sender = sender
        self._connect_timeout = settings.connect_timeout
        self._apology = settings.apology_prompt
        self._max_attempts = settings.max_attempts
        self._wait_s = settings.wait_s
        self._streams: dict[str, _Stream] = {}
        self._liveness = LivenessCheck(pool, settings.liveness_s)
        self._adopt_grace_s = settings.adopt_grace_s
        self._watchdog: asyncio.Task[None] | None = None

    def worker_of(self, uuid: str) -> str | None:
        """The worker currently streaming ``uuid``."""
        stream = self._streams.get(uuid)
        return None if stream is None or stream.worker is None else stream.worker.worker_id

    def attempts_of(self, uuid: str) -> int:
        """Stream starts tried for ``uuid`` so far (one per worker tried, moves included)."""
        stream = self._streams.get(uuid)
        return 0 if stream is None else stream.starts

    async def start(self, request: StreamRequest) -> WorkerInfo:
        """Stream the leg to the least-loaded healthy worker, failing over on ``::error`` or timeout.

        Raises:
            NoWorkerAvailable: no worker connected within ``max_attempts`` tries.
            CallConflict: the leg was removed meanwhile.
        """
        stream = self._streams.setdefault(request.uuid, _Stream(request))
        self._ensure_watchdog()
        await self._command(request.node, fc.stream_heartbeat(request.uuid, PING_S))
        return await self._connect(stream)

    def adopt(self, request: StreamRequest, worker_id: str) -> None:
        """Supervise a stream an earlier controller started (found on the leg by the resync): no start.

        A worker not heard from yet (its beats resume after the controller's restart) is watched from its
        first beat; one that never beats within ``adopt_grace_s`` is taken for gone and the call moves.
        """
        if request.uuid in self._streams:
            return
        known = self._pool.get(worker_id) if worker_id else None
        # Until it beats, the id is all a failover needs of the worker.
        placeholder = WorkerInfo(worker_id, "", 1, 0, draining=False, heartbeat_s=1.0, seen_at=float("-inf"))
        worker = known or (placeholder if worker_id else None)
        stream = _Stream(request, worker, adopted_at=self._pool.now())
        if worker is not None:
            stream.tried.add(worker.worker_id)
        if known is not None:
            stream.watch = self._liveness.watch(known, request.call_id)
        self._streams[request.uuid] = stream
        self._ensure_watchdog()

    async def stop(self, uuid: str) -> None:
        """Stop supervising and stop the stream (FreeSWITCH removes the worker's files)."""
        stream = self._streams.pop(uuid, None)
        if stream is None:
            return
        if stream.failover is not None:
            stream.failover.cancel()
        await self._command(stream.request.node, fc.stream_stop(uuid))

    def apply(self, node: str, change: CallChange) -> None:
        """Move the call when its worker went away (a start in progress has no worker yet)."""
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
        if change.state in _LOST and stream.failover is None and stream.worker is not None:
            worker = stream.worker.worker_id if stream.worker else "?"
            log.warning(
                "%s: worker %s closed the stream (%s %s)", change.uuid, worker, change.code, change.reason
            )
            self._start_move(stream)

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(), name="stream liveness")

    def _start_move(self, stream: _Stream) -> None:
        stream.watch = None
        uuid = stream.request.uuid
        stream.failover = asyncio.create_task(self._move(stream), name=f"move stream {uuid}")

    async def _watch(self) -> None:
        """Every ``tick_s``: move the calls whose workers froze or dropped them (see the liveness module)."""
        loop = asyncio.get_running_loop()
        tick = self._liveness.tick_s
        while True:
            due = loop.time() + tick
            await asyncio.sleep(tick)
            if loop.time() - due > tick:
                log.info("stream liveness: tick %.2f s late, not judged", loop.time() - due)
                continue
            for stream in list(self._streams.values()):
                why = self._judge(stream)
                if why is not None:
                    log.warning("%s: %s: moving the call", stream.request.uuid, why)
                    self._start_move(stream)

    def _judge(self, stream: _Stream) -> str | None:
        """Why ``stream`` must move now (liveness), or None; an adopted stream is watched from its worker's
        first beat."""
        if stream.failover is not None:
            return None
        if stream.watch is None and stream.adopted_at is not None and stream.worker is not None:
            known = self._pool.get(stream.worker.worker_id)
            if known is not None:
                stream.worker, stream.watch = known, self._liveness.watch(known, stream.request.call_id)
            elif self._pool.now() - stream.adopted_at > self._adopt_grace_s:
                return f"adopted worker {stream.worker.worker_id} never beat"
        return None if stream.watch is None else self._liveness.verdict(stream.watch)

    async def _connect(self, stream: _Stream) -> WorkerInfo:
        request = stream.request
        for _ in range(self._max_attempts):
            if self._streams.get(request.uuid) is not stream:
                raise CallConflict(f"{request.uuid}: the leg ended or its stream was stopped meanwhile")
            # Only a first pick waits: a failover moves on to the next worker or gives up at once.
            wait_s = 0.0 if stream.tried else self._wait_s
            worker = await self._pool.wait_pick(wait_s, exclude=stream.tried)
            if worker is None:
                break
            stream.tried.add(worker.worker_id)
            stream.starts += 1
            url = worker.stream_url(request.call_id)
            metadata = self._signed(request, worker.worker_id)
            state = await self._attempt(request, fc.stream_start(request.uuid, url, request.rate, metadata))
            if state is AudioStreamState.CONNECTED:
                stream.worker = worker
                stream.watch = self._liveness.watch(worker, request.call_id)
                await self._command(
                    request.node, fc.setvars(request.uuid, {WORKER_VARIABLE: worker.worker_id})
                )
                return worker
            log.warning("%s: worker %s did not take the stream (%s)", request.uuid, worker.worker_id, state)
            self._pool.suspect(worker.worker_id)
            await self._command(request.node, fc.stream_stop(request.uuid))
        raise NoWorkerAvailable(
            f"{request.uuid}: no worker accepted the stream (tried {sorted(stream.tried)})"
        )

    def _signed(self, request: StreamRequest, worker_id: str) -> str:
        """The request's metadata with a token for this attempt's worker (unchanged without a key)."""
        if self._key is None:
            return request.metadata
        expiry = int(self._wall_clock() + self._token_ttl_s)
        token = sign(self._key, request.call_id, worker_id, expiry)
        # The metadata is one compact JSON object (StreamMetadata.model_dump_json): add the last member.
        return f'{request.metadata.rstrip().removesuffix("}")},"token":"{token}"}}'

    async def _attempt(self, request: StreamRequest, command: Command) -> AudioStreamState | str:
        """Start, then wait for ``::connect`` / ``::error``; the reason as text when neither came."""
        answered = self._sender.expect(request.uuid, stream_answered)
        try:
            try:
                await self._sender.run(request.node, command)
            except CallError as exc:
                if not await self._leg_exists(request):
                    raise CallConflict(f"{request.uuid}: the leg is gone (start refused)") from exc
                return f"start refused: {exc}"
            async with asyncio.timeout(self._connect_timeout):
                change = await answered
        except TimeoutError:
            return "no ::connect within the deadline"
        except ChannelGone as exc:
            raise CallConflict(f"{request.uuid}: {exc} while its stream started") from exc
        finally:
            answered.cancel()
        return change.state if isinstance(change, AudioStreamChanged) else f"unexpected {change}"

    async def _leg_exists(self, request: StreamRequest) -> bool:
        """Whether FreeSWITCH still has the leg: a start refused for a leg that is gone is not the
        worker's fault (e.g. a channel a resync listed after it hung up: the core database lags)."""
        try:
            return (await self._sender.run(request.node, fc.exists(request.uuid))).strip() == "true"
        except CallError:
            return True  # cannot tell: keep the old behaviour

    async def _move(self, stream: _Stream) -> None:
        request = stream.request
        if self._apology:
            await self._command(request.node, self._apology_command(request.uuid))
        await self._command(request.node, fc.stream_stop(request.uuid))
        if stream.worker is not None:
            self._pool.suspect(stream.worker.worker_id)
        stream.tried = {stream.worker.worker_id} if stream.worker else set()
        stream.worker = None
        try:
            worker = await self._connect(stream)
        except (NoWorkerAvailable, CallConflict) as exc:
            log.error("%s", exc)
            return
        finally:
            stream.failover = None
        stream.moves += 1
        log.info("%s: stream moved to worker %s", request.uuid, worker.worker_id)
        if self._on_moved is not None:
            self._on_moved(request.uuid, worker.worker_id, stream.starts)

    def _apology_command(self, uuid: str) -> Command | None:
        try:
            return fc.broadcast(uuid, self._apology or "")
        except InvalidCommand as exc:
            log.warning("%s: apology prompt not played: %s", uuid, exc)
            return None

    async def _command(self, node: str, command: Command | None) -> None:
        if command is None:
            return
        try:
            await self._sender.run(node, command)
        except CallError as exc:  # e.g. stop after ::error: the bug is already gone
            log.debug("%s: %s", command.args[:2], exc)

    async def aclose(self) -> None:
        """Cancel pending moves and the watchdog (bounded wait)."""
        watchdog, self._watchdog = self._watchdog, None
        tasks = [s.failover for s in self._streams.values() if s.failover is not None]
        await cancel_all([*tasks, *([watchdog] if watchdog is not None else [])])
        self._streams.clear()
