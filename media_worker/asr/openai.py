"""Recognition by an OpenAI-compatible ``/audio/transcriptions`` endpoint (one request per utterance).

Protocol (OpenAI API reference, "Create transcription"; faster-whisper-server, LocalAI and whisper.cpp's
server take the same form): ``POST {base_url}/audio/transcriptions`` as ``multipart/form-data`` with

- ``file``: the utterance as a WAV file (``audio.wav``, ``audio/wav``; 16 kHz mono 16-bit PCM),
- ``model``, ``language`` (ISO-639-1, the first two letters of ours),
- ``response_format=verbose_json`` and ``timestamp_granularities[]=word``.

The ``verbose_json`` reply is ``{"text", "duration", "segments": [{"start", "end", "text", …}],
"words": [{"word", "start", "end"}]}`` (some servers put ``words`` inside each segment instead); many
compatible servers answer just ``{"text": …}``, which is accepted too (no timings then).

Errors::

    ProviderReplyError   HTTP 4xx, a reply that is not such JSON
    ProviderUnavailable  connection failures, HTTP 5xx/429 (after the retries)
    ProviderTimeout      no complete reply within timeout_s (per attempt)
"""

from __future__ import annotations

import asyncio
import io
import wave
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import Field, HttpUrl

from media_worker.asr.base import ASR, RATE, Transcript, Word
from media_worker.errors import ProviderReplyError
from media_worker.netretry import LazySession, NetworkSettings, check_status, mapped_errors, with_retries
from media_worker.registry import Provider

__all__ = ["PROVIDER", "OpenAiASR", "OpenAiAsrSettings", "parse_transcription", "wav_file"]

NAME = "openai-asr"


class OpenAiAsrSettings(NetworkSettings):
    """An OpenAI-compatible ``POST {base_url}/audio/transcriptions``."""

    provider: Literal["openai"]
    base_url: HttpUrl = Field(description="e.g. https://api.openai.com/v1")
    model: str = "whisper-1"


def wav_file(pcm: bytes) -> bytes:
    """``pcm`` (16 kHz mono L16) as the bytes of a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm[: len(pcm) - len(pcm) % 2])
    return out.getvalue()


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProviderReplyError(NAME, f"{what} is not a number")
    return float(value)


def _words(items: object) -> list[Word]:
    if not isinstance(items, list):
        raise ProviderReplyError(NAME, "words is not a list")
    words: list[Word] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("word"), str):
            raise ProviderReplyError(NAME, "a word is not {word, start, end}")
        words.append(
            Word(item["word"].strip(), _number(item.get("start"), "start"), _number(item.get("end"), "end"))
        )
    return words


def _segments(reply: dict[str, Any]) -> list[dict[str, Any]]:
    segments = reply.get("segments") or []
    if not isinstance(segments, list) or not all(isinstance(s, dict) for s in segments):
        raise ProviderReplyError(NAME, "segments is not a list of objects")
    return segments


def parse_transcription(body: bytes) -> Transcript:
    """The final transcript in a ``verbose_json`` (or plain ``{"text": …}``) reply.

    Raises:
        ProviderReplyError: the body is not such JSON.
    """
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProviderReplyError(NAME, f"the reply is not JSON: {body[:80]!r}") from exc
    if not isinstance(reply, dict) or not isinstance(reply.get("text"), str):
        raise ProviderReplyError(NAME, "the reply has no text")
    segments = _segments(reply)
    if "words" in reply:
        words = _words(reply["words"])
    else:
        words = [word for segment in segments for word in _words(segment.get("words") or [])]
    if words:
        start_s, end_s = words[0].start_s, words[-1].end_s
    elif segments:
        start_s = _number(segments[0].get("start"), "segment start")
        end_s = _number(segments[-1].get("end"), "segment end")
    else:
        start_s, end_s = 0.0, _number(reply.get("duration", 0.0), "duration")
    return Transcript(reply["text"].strip(), True, start_s, end_s, tuple(words))


class OpenAiASR(ASR):
    """Transcription by an OpenAI-compatible server, one request per utterance.

    Args:
        settings: where the server is, the model, deadlines and retries.
    """

    name = NAME

    def __init__(self, settings: OpenAiAsrSettings) -> None:
        self.settings = settings
        self._url = f"{str(settings.base_url).rstrip('/')}/audio/transcriptions"
        self._headers: dict[str, str] = {}
        if settings.api_key is not None:
            self._headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self._session = LazySession(settings.connect_timeout_s)

    async def transcribe(self, audio: bytes, language: str) -> Transcript:
        """The final transcript of one utterance (16 kHz L16), with word timings when the server has them.

        Raises:
            ProviderError: see the module docstring.
        """
        wav = wav_file(audio)
        return await with_retries(self.settings.retry, lambda: self._attempt(wav, language[:2].lower()))

    async def _attempt(self, wav: bytes, language: str) -> Transcript:
        form = aiohttp.FormData()  # one per attempt: a form is consumed by sending it
        form.add_field("file", wav, filename="audio.wav", content_type="audio/wav")
        form.add_field("model", self.settings.model)
        form.add_field("language", language)
        form.add_field("response_format", "verbose_json")
        form.add_field("timestamp_granularities[]", "word")
        with mapped_errors(NAME, "POST /audio/transcriptions"):
            async with (
                asyncio.timeout(self.settings.timeout_s),
                self._session.get().post(self._url, data=form, headers=self._headers) as response,
            ):
                await check_status(NAME, response)
                body = await response.read()
        return parse_transcription(body)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._session.aclose()


PROVIDER = Provider(OpenAiAsrSettings, lambda settings, _executor: OpenAiASR(settings))
