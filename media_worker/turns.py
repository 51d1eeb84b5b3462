"""Turn-taking for one call: speech events → caller turns, with the utterance audio kept on a tape.

A turn starts with the first speech start and ends when no speech has been heard for the profile's
``turn_silence_ms`` after the last speech end (SIP/PSTN legs wait longer than WebRTC legs: their codecs
and jitter make short pauses look like ends). A turn longer than ``max_turn_ms`` is handed over as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from media_worker.settings import TurnProfile
from media_worker.vad.detector import SpeechDetector, SpeechEnded, SpeechStarted, VadEvent
from media_worker.vad.model import RATE

__all__ = ["Tape", "TurnEnded", "TurnTaker"]

_PAD = RATE // 10  # 100 ms of audio kept before a turn's start and after its end
_IDLE_KEEP = RATE // 2  # audio kept while nobody speaks


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The caller's turn from sample ``start`` to ``end`` (16 kHz), with its audio (L16, padded)."""

    start: int
    end: int
    audio: bytes
    cut: bool


class Tape:
    """The call's 16 kHz audio as L16 bytes, from sample ``start`` on; old audio is dropped while idle."""

    __slots__ = ("_data", "start")

    def __init__(self) -> None:
        self._data = bytearray()
        self.start = 0

    @property
    def end(self) -> int:
        """The stream sample just after the last one recorded."""
        return self.start + len(self._data) // 2

    def append(self, pcm: bytes) -> None:
        """Record 16 kHz L16 audio."""
        self._data += pcm

    def keep_from(self, sample: int) -> None:
        """Forget everything before ``sample``."""
        drop = min(max(0, sample - self.start), len(self._data) // 2)
        if drop:
            del self._data[: drop * 2]
            self.start += drop

    def slice(self, begin: int, end: int) -> bytes:
        """The recorded audio between two stream samples (clipped to what is on the tape)."""
        lo = max(begin, self.start) - self.start
        hi = max(lo, min(end, self.end) - self.start)
        return bytes(self._data[lo * 2 : hi * 2])


class TurnTaker:
    """Speech detection plus end-of-turn for one call."""

    __slots__ = ("_last_end", "_max_turn", "_silence", "detector", "in_turn", "tape", "turn_start")

    def __init__(self, profile: TurnProfile) -> None:
        self.detector = SpeechDetector(profile)
        self.tape = Tape()
        self._silence = profile.turn_silence_ms * RATE // 1000
        self._max_turn = profile.max_turn_ms * RATE // 1000
        self.in_turn = False
        self.turn_start = 0
        self._last_end = 0

    def audio(self, pcm: bytes) -> None:
        """Record new 16 kHz L16 audio; while nobody speaks only the last half second is kept."""
        self.tape.append(pcm)
        if not self.in_turn and not self.detector.speaking:
            self.tape.keep_from(self.tape.end - _IDLE_KEEP)

    def window(
        self, prob: float, level_db: float, end: int, min_level_db: float
    ) -> tuple[VadEvent | None, TurnEnded | None]:
        """One VAD decision; returns the speech event and the finished turn, if any."""
        event = self.detector.window(prob, level_db, end, min_level_db)
        if isinstance(event, SpeechStarted) and not self.in_turn:
            self.in_turn, self.turn_start = True, event.at
        elif isinstance(event, SpeechEnded):
            self._last_end = event.at
        if not self.in_turn:
            return event, None
        if self.detector.speaking:
            if end - self.turn_start >= self._max_turn:
                return event, self._finish(end, cut=True)
            return event, None
        if end - self._last_end >= self._silence:
            return event, self._finish(self._last_end, cut=False)
        return event, None

    def so_far(self, end: int) -> TurnEnded:
        """The turn in progress as it would be if it ended at ``end`` (what ``window`` returns then)."""
        return TurnEnded(self.turn_start, end, self.tape.slice(self.turn_start - _PAD, end + _PAD), False)

    def _finish(self, end: int, cut: bool) -> TurnEnded:
        turn = TurnEnded(self.turn_start, end, self.tape.slice(self.turn_start - _PAD, end + _PAD), cut)
        self.in_turn = False
        if cut:
            self.in_turn, self.turn_start = True, end  # the caller is still talking: a new turn goes on
        self.tape.keep_from(end)
        return turn
