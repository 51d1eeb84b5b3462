"""The ASR interface: a provider turns a caller's utterance (16 kHz L16) into text with timings.

Two ways in, one contract:

- ``transcribe(audio, language)``: the whole utterance at once (what the pipeline uses at end of turn);
- ``stream(language)``: a :class:`RecognizeStream` fed frame by frame (``push_frame``), closed off with
  ``flush`` (end of utterance), iterated for :class:`Transcript` events (partials, then one final per flush).

A provider implements at least one; the base class builds the other from it (a buffering stream over
``transcribe``, or ``transcribe`` as push-all + flush + first final). Failures raise
:class:`media_worker.errors.ProviderError` subclasses, never library exceptions.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from media_worker.errors import ProviderReplyError
from media_worker.registry import Catalog

__all__ = ["ASR", "PROVIDERS", "BufferedRecognizeStream", "RecognizeStream", "Transcript", "Word"]

RATE = 16000  # every provider takes 16 kHz mono L16


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word and where it lies in the utterance (seconds)."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """Recognised text of (part of) an utterance; ``final`` when the provider will not revise it."""

    text: str
    final: bool
    start_s: float = 0.0
    end_s: float = 0.0
    words: tuple[Word, ...] = ()


class RecognizeStream(ABC):
    """One utterance (or a run of them) fed frame by frame; iterate for transcripts."""

    @abstractmethod
    def push_frame(self, pcm: bytes) -> None:
        """Queue 16 kHz L16 audio (never blocks)."""

    @abstractmethod
    def flush(self) -> None:
        """End of utterance: a final transcript of what was pushed since the last flush follows."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop: cancel work in progress and release the connection (bounded wait)."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[Transcript]:
        """Transcripts as they come; ends after ``aclose`` (or raises ``ProviderError``)."""


class ASR(ABC):  # noqa: B024 - a provider overrides transcribe, stream or both; each default uses the other
    """A speech recogniser; one instance per process and configuration, shared by every call."""

    name: str = "asr"

    async def transcribe(self, audio: bytes, language: str) -> Transcript:
        """The final transcript of one whole utterance (16 kHz L16)."""
        stream = self.stream(language)
        try:
            stream.push_frame(audio)
            stream.flush()
            async for transcript in stream:
                if transcript.final:
                    return transcript
        finally:
            await stream.aclose()
        raise ProviderReplyError(self.name, "the stream ended without a final transcript")

    def stream(self, language: str) -> RecognizeStream:
        """A stream of this recogniser (default: buffer until ``flush``, then ``transcribe``)."""
        return BufferedRecognizeStream(self, language)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the provider holds (HTTP sessions)."""


PROVIDERS: Catalog[ASR] = Catalog("asr", "media_worker.asr")
"""The ASR providers: the modules of ``media_worker/asr/`` with a ``PROVIDER``."""


class BufferedRecognizeStream(RecognizeStream):
    """A stream over ``ASR.transcribe``: audio is kept until ``flush``, then transcribed in one go."""

    def __init__(self, asr: ASR, language: str) -> None:
        self._asr = asr
        self._language = language
        self._audio = bytearray()
        self._pending: asyncio.Queue[bytes | None] = asyncio.Queue()

    def push_frame(self, pcm: bytes) -> None:
        """Keep the audio until the next flush."""
        self._audio += pcm

    def flush(self) -> None:
        """Hand the kept audio to ``transcribe``."""
        self._pending.put_nowait(bytes(self._audio))
        self._audio.clear()

    async def aclose(self) -> None:
        """End the iteration."""
        self._pending.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Transcript]:
        """One final transcript per flush."""
        while (audio := await self._pending.get()) is not None:
            yield await self._asr.transcribe(audio, self._language)
