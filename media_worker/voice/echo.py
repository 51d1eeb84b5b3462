"""The ``echo`` pipeline: says each caller turn back, so the loop is testable without any model."""

from __future__ import annotations

from collections.abc import AsyncIterator

from media_worker.voice.base import Dialog, Output, Utterance, VoicePipeline
from switchyard.wire import StreamMetadata

__all__ = ["EchoPipeline"]


class _EchoDialog(Dialog):
    async def respond(self, utterance: Utterance) -> AsyncIterator[Output]:
        yield utterance.audio


class EchoPipeline(VoicePipeline):
    """Answers each turn with its own audio."""

    def open(self, call: StreamMetadata) -> Dialog:
        """A dialog that echoes."""
        return _EchoDialog()
