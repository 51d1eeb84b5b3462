"""Scores the pending 32 ms windows of every call in one batched Silero run per tick.

Ingest only appends a frame's bytes to its stream (:meth:`VadStream.push`); once per tick the batcher turns
each stream's new audio into 16 kHz float samples (upsampling 8 kHz legs), cuts whole 512-sample windows,
and runs them through the model: round 1 holds the first pending window of every stream, round 2 the second
window of the streams that have one (a stream's windows must be scored in order: each needs the state the
previous one left). So a window waits at most one tick plus the run. The run happens on one executor
thread (onnxruntime releases the GIL) so frames keep arriving meanwhile; the state table and the window
buffers are only touched by that thread while a run is in flight, and slots are freed between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
import numpy.typing as npt

from media_worker.resample import Upsampler
from media_worker.vad.model import CONTEXT, STATE_SIZE, WINDOW, BatchedVadModel

__all__ = ["TickStats", "VadBatcher", "VadListener", "VadStream"]

F32 = npt.NDArray[np.float32]
_SCALE = np.float32(1.0 / 32768.0)
_ROW = CONTEXT + WINDOW


class VadListener(Protocol):
    """What a stream's owner hears from the batcher (on the event loop)."""

    def on_audio(self, pcm: bytes) -> None:
        """New 16 kHz L16 audio, in order, as it is prepared for scoring."""

    def on_window(self, prob: float, level_db: float, end: int) -> None:
        """A decision for the window ending at stream sample ``end`` (16 kHz)."""


class VadStream:
    """One call's audio on its way to the model."""

    __slots__ = (
        "_upsampler",
        "arrivals",
        "batched",
        "buf",
        "dropped",
        "fill",
        "listener",
        "max_pending",
        "pending",
        "received",
        "scored",
        "slot",
    )

    def __init__(self, rate: int, listener: VadListener, max_backlog_s: float = 1.0) -> None:
        self.listener = listener
        self.pending = bytearray()
        self.max_pending = int(rate * max_backlog_s) * 2
        self._upsampler = Upsampler() if rate == 8000 else None
        self.buf: F32 = np.zeros(_ROW + 4 * WINDOW, dtype=np.float32)
        self.fill = CONTEXT  # starts with 64 samples of silent context
        self.received = 0  # 16 kHz samples pushed so far (the stream clock)
        self.scored = 0
        self.arrivals: deque[tuple[int, float]] = deque()
        self.slot = -1
        self.dropped = 0  # frames discarded because scoring fell more than max_backlog_s behind
        self.batched = 0  # windows in the run in flight

    def push(self, frame: bytes, now: float) -> bool:
        """Queue one L16 frame (already checked to be whole samples); False when it had to be dropped."""
        if len(self.pending) + len(frame) > self.max_pending:
            self.dropped += 1
            return False
        self.pending += frame
        samples = len(frame) >> 1
        self.received += samples if self._upsampler is None else samples << 1
        self.arrivals.append((self.received, now))
        return True

    def _prepare(self) -> bytes:
        """Move the pending audio into the window buffer; returns it as 16 kHz L16."""
        pcm = bytes(self.pending)
        self.pending.clear()
        raw = np.frombuffer(pcm, dtype="<i2").astype(np.float32) * _SCALE
        chunk = raw
        if self._upsampler is not None:
            chunk = self._upsampler.process(raw)
            pcm = np.clip(chunk * 32768.0, -32768, 32767).astype("<i2").tobytes()
        need = self.fill + len(chunk)
        if need > len(self.buf):
            grown = np.zeros(max(need, 2 * len(self.buf)), dtype=np.float32)
            grown[: self.fill] = self.buf[: self.fill]
            self.buf = grown
        self.buf[self.fill : need] = chunk
        self.fill = need
        return pcm

    def _ready(self) -> int:
        return (self.fill - CONTEXT) // WINDOW

    def _consume(self, windows: int) -> None:
        used = windows * WINDOW
        keep = self.fill - used
        self.buf[:keep] = self.buf[used : self.fill]
        self.fill = keep

    def arrival_of(self, end: int) -> float | None:
        """When the frame that completed sample ``end`` arrived (older arrivals are forgotten)."""
        arrivals = self.arrivals
        while arrivals and arrivals[0][0] < end:
            arrivals.popleft()
        return arrivals[0][1] if arrivals else None


_Round = tuple[list[VadStream], npt.NDArray[np.intp], F32]  # streams, their state rows, their windows


class TickStats(Protocol):
    """Where the batcher reports its work (metrics)."""

    def observe_batch(self, size: int, seconds: float) -> None:
        """One model run of ``size`` windows."""

    def observe_lag(self, seconds: float) -> None:
        """Frame arrival to decision for one window."""


class VadBatcher:
    """The per-process VAD scheduler; ``async with`` runs its tick loop."""

    def __init__(
        self,
        model: BatchedVadModel,
        tick_s: float,
        stats: TickStats,
        max_batch: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._tick_s = tick_s
        self._stats = stats
        self._max_batch = max_batch
        self._clock = clock
        self._streams: dict[int, VadStream] = {}
        self._states: F32 = np.zeros((2, 64, STATE_SIZE), dtype=np.float32)
        self._free = list(range(63, -1, -1))
        self._released: list[int] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> VadBatcher:
        self._task = asyncio.create_task(self._run(), name="vad-batcher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    def add(self, stream: VadStream) -> None:
        """Start scoring ``stream`` from the next tick."""
        self._streams[id(stream)] = stream

    def remove(self, stream: VadStream) -> None:
        """Stop scoring ``stream``; its state row is reused after the current run."""
        if self._streams.pop(id(stream), None) is not None and stream.slot >= 0:
            self._released.append(stream.slot)
            stream.slot = -1

    @property
    def streams(self) -> int:
        """Streams being scored."""
        return len(self._streams)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += self._tick_s
            delay = next_tick - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_tick = loop.time()  # behind: do not try to catch up with a burst of ticks
            await self.tick()

    async def tick(self) -> None:
        """Prepare every stream's audio, score all whole windows, deliver the decisions."""
        self._free.extend(self._released)
        self._released.clear()
        scoring, rounds = self._plan()
        if not rounds:
            return
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._executor, self._infer, rounds)
        now = self._clock()
        for (streams, _, _), (probs, levels) in zip(rounds, results, strict=True):
            for i, stream in enumerate(streams):
                if stream.slot < 0:
                    continue  # removed while the run was in flight
                stream.scored += WINDOW
                end = stream.scored
                arrived = stream.arrival_of(end)
                if arrived is not None:
                    self._stats.observe_lag(now - arrived)
                stream.listener.on_window(float(probs[i]), float(levels[i]), end)
        for stream in scoring:
            stream._consume(stream.batched)

    def _plan(self) -> tuple[list[VadStream], list[_Round]]:
        ready: list[VadStream] = []
        for stream in self._streams.values():
            if stream.pending:
                stream.listener.on_audio(stream._prepare())
            stream.batched = stream._ready()
            if stream.batched > 0:
                if stream.slot < 0:
                    stream.slot = self._allocate()
                ready.append(stream)
        scoring = ready
        rounds: list[_Round] = []
        depth = 0
        while ready:
            for start in range(0, len(ready), self._max_batch):
                part = ready[start : start + self._max_batch]
                rows = np.empty((len(part), CONTEXT + WINDOW), dtype=np.float32)
                offset = depth * WINDOW
                for i, stream in enumerate(part):
                    rows[i] = stream.buf[offset : offset + CONTEXT + WINDOW]
                slots = np.fromiter((s.slot for s in part), dtype=np.intp, count=len(part))
                rounds.append((part, slots, rows))
            depth += 1
            ready = [s for s in ready if s.batched > depth]
        return scoring, rounds

    def _allocate(self) -> int:
        if not self._free:
            size = self._states.shape[1]
            grown = np.zeros((2, size * 2, STATE_SIZE), dtype=np.float32)
            grown[:, :size] = self._states
            self._states = grown
            self._free = list(range(size * 2 - 1, size - 1, -1))
        slot = self._free.pop()
        self._states[:, slot] = 0.0
        return slot

    def _infer(self, rounds: list[_Round]) -> list[tuple[F32, F32]]:
        """Executor thread: run each round with its streams' state rows; returns (probs, levels dBFS)."""
        results = []
        for _, slots, rows in rounds:
            started = time.perf_counter()
            state = self._states[:, slots]
            probs, new_state = self._model.score(rows, state)
            self._states[:, slots] = new_state
            self._stats.observe_batch(len(slots), time.perf_counter() - started)
            energy = np.einsum("ij,ij->i", rows[:, CONTEXT:], rows[:, CONTEXT:]) / WINDOW
            levels: F32 = (10.0 * np.log10(energy + 1e-10)).astype(np.float32)
            results.append((probs, levels))
        return results
