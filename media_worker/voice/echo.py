"""The built-in ``echo`` agent: says the caller's utterance back, so the loop is testable end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator

from media_worker.voice.base import Utterance, VoicePipeline

__all__ = ["EchoPipeline"]


class EchoPipeline(VoicePipeline):
    """Answers each turn with its own audio."""

    async def respond(self, utterance: Utterance) -> AsyncIterator[bytes]:
        """Yield the utterance as one chunk (the session splits it into streamAudio messages)."""
        yield utterance.audio
