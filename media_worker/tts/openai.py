"""Speech by an OpenAI-compatible ``/audio/speech`` endpoint, streamed as it is made.

Protocol (OpenAI API reference, "Create speech"; Kokoro-FastAPI, LocalAI and openedai-speech take the
same form): ``POST {base_url}/audio/speech`` with JSON ``{"model", "input", "voice",
"response_format": "pcm"}``. The ``pcm`` format is raw 24 kHz, 16-bit little-endian, mono samples, no
header; the server sends them chunked while it synthesises. Each piece of the body goes through
:class:`media_worker.tts.rate.ToRate16k` and on to the caller at once (a piece may end mid-sample; the
converter keeps the odd byte), so the first words play before the last are made.

Errors::

    ProviderReplyError   HTTP 4xx
    ProviderUnavailable  connection failures, HTTP 5xx/429 (after the retries), a body cut short
    ProviderTimeout      waiting on the server for more than timeout_s, or chunk_timeout_s between pieces

A failed request is tried again (:mod:`media_worker.netretry`) only while no audio went to the caller.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Literal

import orjson
from pydantic import HttpUrl

from media_worker.netretry import LazySession, NetworkSettings, WaitBudget, posted, stream_with_retries
from media_worker.registry import Provider
from media_worker.tts.base import TTS
from media_worker.tts.rate import ToRate16k

__all__ = ["PCM_RATE", "PROVIDER", "OpenAiTTS", "OpenAiTtsSettings"]

NAME = "openai-tts"
PCM_RATE = 24000  # OpenAI's response_format=pcm


class OpenAiTtsSettings(NetworkSettings):
    """An OpenAI-compatible ``POST {base_url}/audio/speech`` (``response_format=pcm``: 24 kHz L16)."""

    provider: Literal["openai"]
    base_url: HttpUrl
    model: str = "tts-1"
    voice: str = "alloy"


class OpenAiTTS(TTS):
    """Synthesis by an OpenAI-compatible server, streamed and converted to 16 kHz.

    Args:
        settings: where the server is, model, default voice, deadlines and retries.
        chunk_timeout_s: the longest wait for the next piece of audio once the response started.
    """

    name = NAME

    def __init__(self, settings: OpenAiTtsSettings, *, chunk_timeout_s: float = 5.0) -> None:
        self.settings = settings
        self.chunk_timeout_s = chunk_timeout_s
        self._url = f"{str(settings.base_url).rstrip('/')}/audio/speech"
        self._headers = {"Content-Type": "application/json"}
        if settings.api_key is not None:
            self._headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self._session = LazySession(settings.connect_timeout_s)

    def synthesize(self, text: str, voice: str | None = None) -> AsyncIterator[bytes]:
        """Yield ``text`` spoken as 16 kHz L16 chunks (even byte counts) as the server makes them.

        Raises:
            ProviderError: see the module docstring.
        """
        body = orjson.dumps(
            {
                "model": self.settings.model,
                "input": text,
                "voice": voice or self.settings.voice,
                "response_format": "pcm",
            }
        )
        return stream_with_retries(self.settings.retry, lambda: self._attempt(body, bool(text.strip())))

    async def _attempt(self, body: bytes, anything: bool) -> AsyncGenerator[bytes, None]:
        if not anything:
            return
        budget = WaitBudget(self.settings.timeout_s)
        rate = ToRate16k(PCM_RATE)
        request = self._session.get().post(self._url, data=body, headers=self._headers)
        async with posted(NAME, "POST /audio/speech", request, budget) as response:
            while piece := await budget.wait(response.content.readany(), self.chunk_timeout_s):
                if audio := rate.convert(piece):
                    yield audio
        if tail := rate.finish():
            yield tail

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._session.aclose()


PROVIDER = Provider(OpenAiTtsSettings, lambda settings, _executor: OpenAiTTS(settings))
