"""Per-call speech detection from Silero's window probabilities: hysteresis, minimum durations, noise floor.

A window is speech when its probability reaches the threshold **and** its level stands ``snr_db`` above the
call's noise floor (and above any extra floor the caller of :meth:`SpeechDetector.window` sets, which is how
the agent's own voice coming back is kept from counting, see ``media_worker.turns``). Speech starts after
``min_speech_ms`` of such windows and is dated at the first of them; it ends after ``min_silence_ms`` of
windows below ``threshold - release`` (or under the level floor) and is dated at the first silent one.

The threshold adapts to the call: it rises by up to ``noise_adapt`` as the noise floor climbs from
-70 dBFS (a quiet digital line) to -30 dBFS (a loud room or a bad mobile leg).
"""

from __future__ import annotations

from dataclasses import dataclass

from media_worker.settings import TurnProfile
from media_worker.vad.model import RATE, WINDOW

__all__ = ["NoiseFloor", "SpeechDetector", "SpeechEnded", "SpeechStarted", "VadEvent"]

_QUIET_DB = -70.0
_LOUD_DB = -30.0


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech began at stream sample ``at`` (16 kHz); confirmed at sample ``confirmed``."""

    at: int
    confirmed: int


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """Speech that began at ``started`` ended at stream sample ``at`` (16 kHz)."""

    at: int
    started: int


VadEvent = SpeechStarted | SpeechEnded


class NoiseFloor:
    """A floor that follows quiet windows down quickly and rises slowly (about 8 dB per second).

    Only windows judged not to be speech are folded in, so speech itself does not lift the floor.
    """

    __slots__ = ("db",)

    def __init__(self, initial_db: float = _QUIET_DB) -> None:
        self.db = initial_db

    def update(self, level_db: float) -> None:
        """Fold in the level of a window judged not to be speech."""
        if level_db < self.db:
            self.db += 0.5 * (level_db - self.db)
        else:
            self.db += min(level_db - self.db, 0.25)  # 0.25 dB per 32 ms window


class SpeechDetector:
    """Speech start/end for one call; feed it each window's decision in order."""

    __slots__ = (
        "_candidate",
        "_min_silence",
        "_min_speech",
        "_profile",
        "_run",
        "_silent_since",
        "floor",
        "speaking",
        "speech_start",
    )

    def __init__(self, profile: TurnProfile) -> None:
        self._profile = profile
        self._min_speech = _windows(profile.min_speech_ms)
        self._min_silence = _windows(profile.min_silence_ms)
        self.floor = NoiseFloor()
        self.speaking = False
        self.speech_start = 0
        self._candidate = -1  # first sample of a possible start
        self._run = 0  # consecutive windows of the current candidate or silence
        self._silent_since = -1

    @property
    def threshold(self) -> float:
        """The speech threshold at the current noise floor."""
        p = self._profile
        loudness = min(1.0, max(0.0, (self.floor.db - _QUIET_DB) / (_LOUD_DB - _QUIET_DB)))
        return min(0.95, p.threshold + p.noise_adapt * loudness)

    def window(self, prob: float, level_db: float, end: int, min_level_db: float = -200.0) -> VadEvent | None:
        """Take the decision for the window that ends at sample ``end``.

        Args:
            prob: Silero's speech probability.
            level_db: the window's RMS level in dBFS.
            end: stream sample (16 kHz) just after the window.
            min_level_db: speech must also be at least this loud (the echo gate).
        """
        threshold = self.threshold
        loud_enough = level_db >= max(self.floor.db + self._profile.snr_db, min_level_db)
        if not self.speaking:
            if prob >= threshold and loud_enough:
                return self._maybe_start(end)
            self._candidate, self._run = -1, 0
            if prob < threshold - self._profile.release:
                self.floor.update(level_db)
            return None
        if prob >= threshold - self._profile.release and loud_enough:
            self._silent_since, self._run = -1, 0
            return None
        if self._silent_since < 0:
            self._silent_since, self._run = end - WINDOW, 0
        self._run += 1
        if self._run < self._min_silence:
            return None
        self.speaking = False
        ended = SpeechEnded(self._silent_since, self.speech_start)
        self._silent_since, self._run = -1, 0
        return ended

    def _maybe_start(self, end: int) -> SpeechStarted | None:
        if self._candidate < 0:
            self._candidate, self._run = end - WINDOW, 0
        self._run += 1
        if self._run < self._min_speech:
            return None
        self.speaking = True
        self.speech_start = self._candidate
        self._candidate, self._run, self._silent_since = -1, 0, -1
        return SpeechStarted(self.speech_start, end)


def _windows(ms: int) -> int:
    return max(1, -(-ms * RATE // (1000 * WINDOW)))
