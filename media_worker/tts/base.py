"""The TTS interface: text → 16 kHz L16 audio, streamed as it is made.

``synthesize`` returns an async iterator of chunks; the first chunk should come as soon as the provider has
any audio (the pipeline sends each one on at once). Closing the iterator early (``aclose``; barge-in) must
stop the work behind it. Failures raise :class:`media_worker.errors.ProviderError` subclasses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from media_worker.registry import Catalog

__all__ = ["PROVIDERS", "RATE", "TTS"]

RATE = 16000  # every provider yields 16 kHz mono L16


class TTS(ABC):
    """A speech synthesiser; one instance per process and configuration, shared by every call."""

    name: str = "tts"

    @abstractmethod
    def synthesize(self, text: str, voice: str | None = None) -> AsyncIterator[bytes]:
        """Yield ``text`` spoken as 16 kHz L16 chunks (even byte counts); ``voice`` overrides the default."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the provider holds (sessions, processes)."""


PROVIDERS: Catalog[TTS] = Catalog("tts", "media_worker.tts")
"""The TTS providers: the modules of ``media_worker/tts/`` with a ``PROVIDER``."""
