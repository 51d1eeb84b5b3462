"""The registry of media workers, fed by their heartbeats; picks the least-loaded healthy one per call.

Workers announce themselves (``media_worker.announce``): each ``POST /v1/workers/heartbeat`` carries the
worker's stream URL, capacity, open streams and VAD lag. A worker is healthy while its beats keep coming
(``missed_beats`` times its interval), it is not draining, not marked suspect (a failed start) and has room.
Streams handed out since its last beat count as load, so a burst of calls spreads over the workers.
A beat also lists the call ids of the worker's open streams (:mod:`switchyard.liveness`; ``None``: not
said), numbered (``WorkerInfo.beats``) so ``controller.workers.liveness`` can count the beats that left a
call out.

Worker tokens are shared by all workers, so a beat proves no identity: while a worker is alive its id keeps
its URL and its URL its id (:class:`WorkerConflict`); only a lost worker's id or URL may be taken over (a
restarted worker on a new address beats again once the old one's beats have stopped).

Exceptions::

    WorkerConflict       a beat would move a live worker's id to another URL, or claim its URL
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from switchyard.liveness import CALL_ID_PATTERN, MAX_LISTED_CALLS

__all__ = ["WORKER_STATES", "Heartbeat", "WorkerConflict", "WorkerInfo", "WorkerPool"]

CallId = Annotated[str, StringConstraints(pattern=CALL_ID_PATTERN)]

WORKER_STATES: Final = ("healthy", "suspect", "draining", "lost")
"""What ``WorkerPool.state_of`` says about a worker."""


class WorkerConflict(Exception):
    """A heartbeat claims a live worker's id with another URL, or its URL with another id."""


class Heartbeat(BaseModel):
    """One heartbeat body (see ``media_worker.announce.heartbeat_body``); strict, so ``true`` is no number."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    worker_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(pattern=r"^wss?://[A-Za-z0-9.\-\[\]:]+(:\d+)?/?$", description="ws:// base of /stream")
    capacity: int = Field(ge=1)
    streams: int = Field(ge=0)
    status: str = "ok"
    heartbeat_s: float = Field(2.0, gt=0, le=60)
    vad_lag_p99_ms: float | None = None
    calls: list[CallId] | None = Field(
        None, max_length=MAX_LISTED_CALLS, description="call ids of the open streams (none: not said)"
    )


@dataclass
class WorkerInfo:
    """What the controller knows about one worker."""

    worker_id: str
    url: str
    capacity: int
    streams: int
    draining: bool
    heartbeat_s: float
    seen_at: float
    lag_p99_ms: float | None = None
    assigned: int = 0  # streams handed out since the last beat
    suspect_until: float = 0.0
    calls: frozenset[str] | None = None  # the last beat's open streams (None: not listed)
    beats: int = 0  # beats received (at this URL)

    @property
    def load(self) -> float:
        """Share of the capacity in use, counting streams handed out since the last beat."""
        return (self.streams + self.assigned) / self.capacity

    def stream_url(self, call_id: str) -> str:
        """Where mod_audio_stream connects for ``call_id``."""
        return f"{self.url.rstrip('/')}/stream/{call_id}"


class WorkerPool:
    """Workers by id; all methods are synchronous and cheap (called from handlers and call control)."""

    def __init__(
        self, missed_beats: int = 3, suspect_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._workers: dict[str, WorkerInfo] = {}
        self._beat = asyncio.Event()  # set by every heartbeat, for ``wait_pick``
        self._missed = missed_beats
        self._suspect_s = suspect_s
        self._clock = clock

    def heartbeat(self, beat: Heartbeat) -> WorkerInfo:
        """Register or refresh a worker.

        Raises:
            WorkerConflict: ``beat`` names a live worker's id at another URL, or a live worker's URL.
        """
        now = self._clock()
        info = self._workers.get(beat.worker_id)
        url = beat.url.rstrip("/")
        if info is not None and info.url.rstrip("/") != url and self.alive(info):
            raise WorkerConflict(f"worker {beat.worker_id} is alive at another URL")
        for other in self._workers.values():
            if other.worker_id != beat.worker_id and other.url.rstrip("/") == url and self.alive(other):
                raise WorkerConflict(f"{url} belongs to live worker {other.worker_id}")
        if info is None or info.url != beat.url:
            info = WorkerInfo(
                beat.worker_id, beat.url, beat.capacity, beat.streams, False, beat.heartbeat_s, now
            )
            self._workers[beat.worker_id] = info
        info.capacity, info.streams, info.heartbeat_s = beat.capacity, beat.streams, beat.heartbeat_s
        info.draining = beat.status != "ok"
        info.lag_p99_ms = beat.vad_lag_p99_ms
        info.seen_at, info.assigned = now, 0
        info.calls = None if beat.calls is None else frozenset(beat.calls)
        info.beats += 1
        self._beat.set()
        return info

    def get(self, worker_id: str) -> WorkerInfo | None:
        """The worker ``worker_id``, if known."""
        return self._workers.get(worker_id)

    def alive(self, info: WorkerInfo) -> bool:
        """Beats still arriving."""
        return self._clock() - info.seen_at <= self._missed * info.heartbeat_s

    def now(self) -> float:
        """The pool's clock (monotonic seconds)."""
        return self._clock()

    def silent_s(self, info: WorkerInfo) -> float:
        """Seconds since the worker's last beat."""
        return self._clock() - info.seen_at

    def healthy(self, info: WorkerInfo) -> bool:
        """Alive, not draining, not suspect, and with room for one more stream."""
        now = self._clock()
        room = info.streams + info.assigned < info.capacity
        return self.alive(info) and not info.draining and now >= info.suspect_until and room

    def pick(self, exclude: Iterable[str] = ()) -> WorkerInfo | None:
        """The least-loaded healthy worker (lower VAD lag breaks ties); counts the stream as assigned."""
        skip = set(exclude)
        candidates = [w for w in self._workers.values() if w.worker_id not in skip and self.healthy(w)]
        if not candidates:
            return None
        best = min(candidates, key=lambda w: (w.load, w.lag_p99_ms or 0.0, w.worker_id))
        best.assigned += 1
        return best

    async def wait_pick(self, timeout: float, exclude: Iterable[str] = ()) -> WorkerInfo | None:
        """``pick``, waiting up to ``timeout`` seconds for heartbeats to bring a healthy worker (a restarted
        controller knows no worker until their next beats; a full pool frees up as streams end)."""
        skip = set(exclude)
        try:
            async with asyncio.timeout(timeout):
                while (worker := self.pick(skip)) is None:
                    self._beat.clear()
                    await self._beat.wait()
                return worker
        except TimeoutError:
            return None

    def suspect(self, worker_id: str) -> None:
        """A start on this worker failed: skip it for a while (its next beats do not clear this)."""
        info = self._workers.get(worker_id)
        if info is not None:
            info.suspect_until = self._clock() + self._suspect_s

    def forget_expired(self) -> list[str]:
        """Drop workers whose beats stopped long ago (10 times the missed-beat limit); returns their ids."""
        now = self._clock()
        gone = [w for w, i in self._workers.items() if now - i.seen_at > 10 * self._missed * i.heartbeat_s]
        for worker_id in gone:
            del self._workers[worker_id]
        return gone

    def state_of(self, info: WorkerInfo) -> str:
        """One of ``WORKER_STATES``: ``lost`` (beats stopped; not yet forgotten), else ``draining``, else
        ``suspect`` (a start failed recently), else ``healthy``. A full worker counts as healthy: being busy
        is load, not ill health (``healthy()`` also asks for room, to pick)."""
        if not self.alive(info):
            return "lost"
        if info.draining:
            return "draining"
        if self._clock() < info.suspect_until:
            return "suspect"
        return "healthy"

    def count_by_state(self) -> dict[str, int]:
        """How many known workers are in each of ``WORKER_STATES`` (every state present, 0 when none)."""
        counts = dict.fromkeys(WORKER_STATES, 0)
        for info in self._workers.values():
            counts[self.state_of(info)] += 1
        return counts

    def snapshot(self) -> list[dict[str, object]]:
        """Every known worker and its health, for the API."""
        return [
            {
                "worker_id": w.worker_id,
                "url": w.url,
                "capacity": w.capacity,
                "streams": w.streams,
                "assigned": w.assigned,
                "load": round(w.load, 4),
                "vad_lag_p99_ms": w.lag_p99_ms,
                "healthy": self.healthy(w),
                "alive": self.alive(w),
                "draining": w.draining,
                "suspect": self._clock() < w.suspect_until,
            }
            for w in self._workers.values()
        ]
