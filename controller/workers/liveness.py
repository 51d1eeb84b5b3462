"""Whether a call's worker still has it: the controller's half of media liveness.

FreeSWITCH cannot tell a half-open worker from a quiet one: mod_audio_stream's libwsc sends a PING every
``STREAM_HEART_BEAT`` seconds but only logs the PONGs (WebSocketContext.cpp ``onRxPong``: no pong
timeout), and a frozen worker's kernel keeps the TCP connection open and acknowledges what is sent. The
worker's heartbeats are what the controller sees instead; a call moves when:

* its worker fell silent: no beat for ``silence_s`` (¾ of ``worker_pool.liveness_s``, and never less than
  two of the worker's own beat periods, so a slow-beating worker is not taken for a frozen one);
* its worker dropped it: two beats, received after the stream connected, that list other calls but not
  this one (the first beat after a connect may have left the worker before the stream's metadata
  arrived; a worker that lists nothing, ``calls: None``, is only held to its beats).

``StreamWatch.verdict`` is checked every ``tick_s`` (⅛ of ``liveness_s``), so a frozen worker's calls start
moving within ``silence_s + tick_s`` (1.75 s of the default 2 s) after its last beat. Pure logic on the
pool's state; ``controller.workers.streams`` runs the ticks and the moves.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.workers.pool import WorkerInfo, WorkerPool

__all__ = ["LivenessCheck", "StreamWatch"]

DROPPED_BEATS = 2
"""Beats without the call that mean the worker dropped it."""


@dataclass
class StreamWatch:
    """One stream as the liveness check follows it."""

    worker: WorkerInfo
    call_id: str
    judged: int  # the worker's beats already looked at (its count when the stream connected)
    misses: int = 0  # beats in a row that left the call out


class LivenessCheck:
    """The rules above for one pool and one ``liveness_s``."""

    def __init__(self, pool: WorkerPool, liveness_s: float) -> None:
        self._pool = pool
        self.tick_s = liveness_s / 8
        self.silence_s = liveness_s * 3 / 4

    def watch(self, worker: WorkerInfo, call_id: str) -> StreamWatch:
        """Start following a stream that just connected to ``worker``."""
        return StreamWatch(worker, call_id, worker.beats)

    def verdict(self, watch: StreamWatch) -> str | None:
        """Why the stream must move to another worker, or ``None`` while its worker has it."""
        worker = watch.worker
        silent = self._pool.silent_s(worker)
        if silent > max(self.silence_s, 2 * worker.heartbeat_s):
            return f"worker {worker.worker_id} silent for {silent:.2f} s"
        if worker.beats > watch.judged:  # a new beat (two between ticks count once: the latest one)
            watch.judged = worker.beats
            listed = worker.calls is None or watch.call_id in worker.calls
            watch.misses = 0 if listed else watch.misses + 1
        if watch.misses >= DROPPED_BEATS:
            return f"worker {worker.worker_id} left the call out of {watch.misses} beats"
        return None
