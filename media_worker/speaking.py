"""What the caller is hearing of the agent, from the controller's playback messages.

Each ``streamAudio`` the worker sends becomes FreeSWITCH's file ``<uuid>_<n>.tmp.r16`` (n counts the
messages of the stream, audio_stream_wire.txt section 5); the controller plays it with ``uuid_broadcast`` and
reports PLAYBACK_START/STOP of that file back as ``{"type":"playback","event":"start|stop","file":…}``.
So the worker knows which of its chunks is audible and how loud it is, which sets the echo gate: while the
agent is heard, caller speech must be louder than the agent's level minus the assumed echo return loss
(a phone leg sends part of the agent's voice back; the gate keeps it from barging in on itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from media_worker.vad.model import RATE, WINDOW

__all__ = ["AgentSpeech", "peak_level_db"]

_TAIL = RATE * 3 // 10  # echo may still arrive 300 ms after a file stops
_SLACK_S = 1.5  # queued chunks nobody reported are taken as played this long after they would have ended


def peak_level_db(pcm: bytes) -> float:
    """The loudest 32 ms window of L16 audio, as RMS in dBFS (echo of it is the loudest echo)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if len(x) == 0:
        return -100.0
    n = len(x) // WINDOW
    frames = x[: n * WINDOW].reshape(n, WINDOW) if n else x[None, :]
    energy = np.mean(frames * frames, axis=1)
    return float(10.0 * np.log10(float(energy.max()) + 1e-10))


@dataclass
class AgentSpeech:
    """Chunks sent, which of them play, and the echo gate they imply."""

    echo_return_loss_db: float
    sent: int = 0
    levels: dict[int, float] = field(default_factory=dict)
    playing: dict[int, float] = field(default_factory=dict)
    finished: int = 0
    gate_until: int = -1
    gate_db: float = -200.0
    clock: Callable[[], float] = time.monotonic
    _queue_ends: float = 0.0

    def chunk_sent(self, pcm: bytes) -> int:
        """Record a chunk about to be sent; returns its file index."""
        index = self.sent
        self.levels[index] = peak_level_db(pcm)
        self.sent += 1
        now = self.clock()
        self._queue_ends = max(self._queue_ends, now) + len(pcm) / (2 * RATE)
        return index

    def started(self, index: int | None) -> None:
        """PLAYBACK_START of chunk ``index`` (None: a file that is not ours, e.g. a prompt)."""
        key = -1 if index is None else index
        self.playing[key] = self.levels.get(key, max(self.levels.values(), default=-20.0))

    def stopped(self, index: int | None, now: int) -> None:
        """PLAYBACK_STOP; the gate stays up for the echo tail."""
        key = -1 if index is None else index
        level = self.playing.pop(key, None)
        if level is not None:
            self.gate_db = max(self.gate_db if now < self.gate_until else -200.0, level)
            self.gate_until = now + _TAIL
        if index is not None:
            self.levels.pop(index, None)
            self.finished += 1

    @property
    def audible(self) -> bool:
        """A chunk of the agent is playing right now."""
        return bool(self.playing)

    @property
    def outstanding(self) -> bool:
        """Chunks were sent that have not finished playing (queued or playing).

        Without playback reports (no controller relaying them) sent chunks count as played once they
        would have ended, plus some slack, so a later turn is not taken for a barge-in.
        """
        if self.audible:
            return True
        return self.finished < self.sent and self.clock() < self._queue_ends + _SLACK_S

    def echo_floor_db(self, now: int) -> float:
        """The level caller speech must reach at stream sample ``now`` (-200 when nothing is heard)."""
        loudest = max(self.playing.values(), default=-200.0)
        if now < self.gate_until:
            loudest = max(loudest, self.gate_db)
        return loudest - self.echo_return_loss_db if loudest > -200.0 else -200.0

    def flushed(self) -> None:
        """Barge-in: the controller breaks the playback and drops the queue."""
        self.playing.clear()
        self.levels.clear()
        self.finished = self.sent
