"""The small interface between turn-taking and whatever answers the caller.

The turn-taker hands over each finished caller turn as an :class:`Utterance`; a :class:`VoicePipeline`
answers with 16 kHz L16 speech, as a stream of chunks, so the worker can send the first sentence while
the rest is still being made. Cancelling the iteration (barge-in) must stop all work behind it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from media_worker.wire import StreamMetadata

__all__ = ["Utterance", "VoicePipeline"]


@dataclass(frozen=True, slots=True)
class Utterance:
    """One caller turn: 16 kHz L16 audio and where it lies in the stream (milliseconds)."""

    call: StreamMetadata
    audio: bytes
    start_ms: int
    end_ms: int
    cut: bool = False  # True when the turn hit max_turn_ms rather than a pause


class VoicePipeline(ABC):
    """Turns a caller utterance into the agent's spoken answer."""

    @abstractmethod
    def respond(self, utterance: Utterance) -> AsyncIterator[bytes]:
        """Yield the answer as 16 kHz L16 chunks; stop (and stop all work) when the iteration is closed."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the pipeline holds (models, connections)."""
