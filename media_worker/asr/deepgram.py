"""Streaming recognition over Deepgram's live WebSocket API.

Protocol (Deepgram API reference "Live Audio" ``/v1/listen``, and the docs of its control messages
"Finalize", "CloseStream", "KeepAlive"):

- connect ``{url}?model=…&language=…&encoding=linear16&sample_rate=16000&channels=1&interim_results=true
  &punctuate=true`` with ``Authorization: Token <api_key>``; a refused key fails the handshake (HTTP 401/403,
  the reason in a ``dg-error`` header);
- client → server: binary messages of raw audio (we send at most 100 ms per message); text
  ``{"type": "Finalize"}`` to flush, ``{"type": "KeepAlive"}`` while no audio flows (the server drops a
  stream idle for about 10 s), ``{"type": "CloseStream"}`` to end: the server sends what is left, then
  closes;
- server → client: JSON text messages. ``"type": "Results"`` carries ``is_final``, ``from_finalize``,
  ``start``, ``duration`` (seconds since the stream began) and ``channel.alternatives[0]`` with
  ``transcript`` and ``words[]`` (``word``, ``punctuated_word``, ``start``, ``end``). ``Metadata``,
  ``SpeechStarted`` and ``UtteranceEnd`` are of no use here and skipped. Errors come as a close frame: an
  RFC 6455 code and a reason such as ``DATA-0000`` (1008: audio it cannot decode) or ``NET-0001`` (1011).

Our :class:`~media_worker.asr.base.RecognizeStream` promises partials, then **one** final per flush.
Deepgram finalises a long utterance in several ``is_final`` pieces, so the pieces since the last flush are
gathered: each interim result is sent on as a partial (pieces so far + the interim text), and the flush is
answered with all the pieces as one final transcript when (a) the ``from_finalize`` result comes, (b) a
final piece reaches the end of the audio pushed before the flush (nothing is left to finalise), or (c)
``finalize_timeout_s`` passed since the Finalize went out: the docs say the ``from_finalize`` answer "is
not guaranteed if there is no significant amount of audio data to process".

Errors::

    ProviderReplyError   handshake refused (401/403, other 4xx), a malformed message, close code 1008
    ProviderUnavailable  connect failures, handshake 5xx/429, the server closing the stream early
    ProviderTimeout      no handshake within timeout_s, a send stuck for timeout_s, no heartbeat answer
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Final, Literal

import aiohttp
from pydantic import Field
from yarl import URL

from media_worker.asr.base import ASR, RATE, RecognizeStream, Transcript
from media_worker.asr.deepgram_messages import (
    NAME,
    DeepgramResult,
    UtteranceGatherer,
    parse_message,
    reply_error,
)
from media_worker.errors import ProviderError, ProviderUnavailable
from media_worker.netretry import LazySession, NetworkSettings, error_for_status, mapped_errors, with_retries
from media_worker.registry import Provider

__all__ = [
    "PROVIDER",
    "DeepgramASR",
    "DeepgramAsrSettings",
    "DeepgramResult",
    "DeepgramStream",
    "UtteranceGatherer",
    "parse_message",
]

FINALIZE: Final = '{"type":"Finalize"}'
KEEPALIVE: Final = '{"type":"KeepAlive"}'
CLOSE_STREAM: Final = '{"type":"CloseStream"}'
FRAME_BYTES: Final = RATE * 2 // 10  # 100 ms of audio per binary message
_COVERED_S: Final = 0.1  # a final piece ending this close to the flush point has covered the utterance
_POLICY_CLOSE: Final = 1008  # RFC 6455: the server refused what we sent (e.g. Deepgram's DATA-0000)


class DeepgramAsrSettings(NetworkSettings):
    """Deepgram's streaming API shape: ``{url}?encoding=linear16&sample_rate=16000…`` over WebSocket."""

    provider: Literal["deepgram"]
    url: str = Field(pattern=r"^wss?://", description="e.g. wss://api.deepgram.com/v1/listen")
    model: str = "nova-2"


@dataclass(slots=True)
class _Flush:
    """A flush: where the audio stood, and (once the Finalize went out) until when we wait for it."""

    position_s: float
    deadline: float | None = None


_Inbound = DeepgramResult | _Flush | ProviderError | None


class DeepgramStream(RecognizeStream):
    """One Deepgram WebSocket: frames out, transcripts in. Made by :meth:`DeepgramASR.stream`."""

    def __init__(self, asr: DeepgramASR, language: str) -> None:
        self._asr = asr
        self._language = language
        self._outbox: asyncio.Queue[bytes | str | _Flush] = asyncio.Queue()
        self._inbox: asyncio.Queue[_Inbound] = asyncio.Queue()
        self._flushes: deque[_Flush] = deque()
        self._gatherer = UtteranceGatherer()
        self._pushed_s = 0.0
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="deepgram-stream")

    def push_frame(self, pcm: bytes) -> None:
        """Queue audio for the server (in messages of at most 100 ms)."""
        if self._closing:
            return
        self._start()
        for offset in range(0, len(pcm), FRAME_BYTES):
            self._outbox.put_nowait(pcm[offset : offset + FRAME_BYTES])
        self._pushed_s += len(pcm) / (2 * RATE)

    def flush(self) -> None:
        """Send a Finalize: the final transcript of the audio pushed so far follows."""
        if self._closing:
            return
        self._start()
        flush = _Flush(self._pushed_s)
        self._flushes.append(flush)
        self._outbox.put_nowait(flush)

    async def aclose(self) -> None:
        """Send CloseStream and wait (bounded) for the server to close; cancel the connection if it won't."""
        self._closing = True
        task = self._task
        if task is None:
            self._inbox.put_nowait(None)
            return
        self._outbox.put_nowait(CLOSE_STREAM)
        done, _ = await asyncio.wait({task}, timeout=self._asr.close_timeout_s)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=self._asr.close_timeout_s)
        if task.done() and not task.cancelled():
            task.result()  # a bug in the connection task surfaces here, not as "never retrieved"

    async def __aiter__(self) -> AsyncIterator[Transcript]:
        """Partials as they come, one final per flush; ends after ``aclose``.

        Raises:
            ProviderError: the connection failed or the server misbehaved.
        """
        self._start()
        while True:
            deadline = self._flushes[0].deadline if self._flushes else None
            try:
                async with asyncio.timeout_at(deadline):
                    item = await self._inbox.get()
            except TimeoutError:  # no from_finalize answer: what we have is the final (case c)
                self._flushes.popleft()
                yield self._gatherer.final()
                continue
            if item is None:
                return
            if isinstance(item, ProviderError):
                raise item
            if isinstance(item, DeepgramResult) and (transcript := self._take(item)) is not None:
                yield transcript

    def _take(self, result: DeepgramResult) -> Transcript | None:
        if self._flushes and result.is_final and (result.from_finalize or self._covers_flush(result)):
            self._flushes.popleft()
            return self._gatherer.final(result)
        transcript = self._gatherer.partial(result)
        return transcript if transcript.text else None

    def _covers_flush(self, result: DeepgramResult) -> bool:
        return result.end_s >= self._flushes[0].position_s - _COVERED_S

    async def _run(self) -> None:
        try:
            ws = await with_retries(self._asr.settings.retry, lambda: self._asr.connect(self._language))
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self._send(ws))
                    tasks.create_task(self._receive(ws))
            finally:
                with suppress(TimeoutError, aiohttp.ClientError):  # the peer is gone either way
                    async with asyncio.timeout(self._asr.close_timeout_s):
                        await ws.close()
        except* ProviderError as group:
            self._inbox.put_nowait(_first(group))
        finally:
            self._inbox.put_nowait(None)  # the iteration ends, whatever ended the connection

    async def _send(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(self._asr.keepalive_s):
                    item = await self._outbox.get()
            except TimeoutError:
                item = KEEPALIVE
            with mapped_errors(NAME, "WebSocket send"):
                async with asyncio.timeout(self._asr.settings.timeout_s):
                    if isinstance(item, bytes):
                        await ws.send_bytes(item)
                    else:
                        await ws.send_str(FINALIZE if isinstance(item, _Flush) else item)
            if isinstance(item, _Flush):
                item.deadline = loop.time() + self._asr.finalize_timeout_s
                self._inbox.put_nowait(item)  # wakes the reader to watch the deadline
            elif item == CLOSE_STREAM:
                return

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            message = await ws.receive()  # bounded by the heartbeat: a silent peer is dropped
            if message.type is aiohttp.WSMsgType.TEXT:
                if (result := parse_message(message.data)) is not None:
                    self._inbox.put_nowait(result)
            elif message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                if self._closing:
                    return
                raise _closed_early(ws.close_code, message.extra)
            elif message.type is aiohttp.WSMsgType.ERROR:
                error = ws.exception()
                with mapped_errors(NAME, "WebSocket receive"):
                    if isinstance(error, Exception):
                        raise error
                raise ProviderUnavailable(NAME, f"WebSocket receive: {error!r}")
            # binary messages and pongs: nothing for us


def _closed_early(code: int | None, reason: object) -> ProviderError:
    text = f"the server closed the stream ({code} {reason or ''})".replace(" )", ")")
    return reply_error(text) if code == _POLICY_CLOSE else ProviderUnavailable(NAME, text)


def _first(group: BaseExceptionGroup[ProviderError]) -> ProviderError:
    first = group.exceptions[0]
    return first if isinstance(first, ProviderError) else _first(first)


class DeepgramASR(ASR):
    """Deepgram's streaming recogniser (or a server speaking its API), one WebSocket per stream.

    ``transcribe`` is the base class's: push the utterance, flush, return the final.

    Args:
        settings: the endpoint, model, key, deadlines and retries.
        finalize_timeout_s: how long a flush waits for the ``from_finalize`` answer before it settles
            for the final pieces it has.
        keepalive_s: the longest gap without a message to the server (a KeepAlive fills it).
        heartbeat_s: WebSocket ping interval; a peer not answering within half of it is dropped.
        close_timeout_s: how long ``aclose`` waits for the server to finish and close.
    """

    name = NAME

    def __init__(
        self,
        settings: DeepgramAsrSettings,
        *,
        finalize_timeout_s: float = 1.5,
        keepalive_s: float = 4.0,
        heartbeat_s: float = 5.0,
        close_timeout_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.finalize_timeout_s = finalize_timeout_s
        self.keepalive_s = keepalive_s
        self.heartbeat_s = heartbeat_s
        self.close_timeout_s = close_timeout_s
        self._session = LazySession(settings.connect_timeout_s)

    def stream(self, language: str) -> DeepgramStream:
        """A new stream (its WebSocket opens on first use)."""
        return DeepgramStream(self, language)

    def url(self, language: str) -> URL:
        """The listen URL with our audio format and options."""
        return URL(self.settings.url).update_query(
            model=self.settings.model,
            language=language,
            encoding="linear16",
            sample_rate=str(RATE),
            channels="1",
            interim_results="true",
            punctuate="true",
        )

    async def connect(self, language: str) -> aiohttp.ClientWebSocketResponse:
        """Open one WebSocket (one attempt; the stream retries).

        Raises:
            ProviderError: see the module docstring.
        """
        headers = {}
        if self.settings.api_key is not None:
            headers["Authorization"] = f"Token {self.settings.api_key.get_secret_value()}"
        with mapped_errors(NAME, "WebSocket connect"):
            try:
                async with asyncio.timeout(self.settings.timeout_s):
                    return await self._session.get().ws_connect(
                        self.url(language),
                        headers=headers,
                        heartbeat=self.heartbeat_s,
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.close_timeout_s),
                    )
            except aiohttp.WSServerHandshakeError as exc:  # Deepgram says why in a dg-error header
                reason = exc.headers.get("dg-error", "") if exc.headers is not None else ""
                raise error_for_status(NAME, exc.status, reason or exc.message) from exc

    async def aclose(self) -> None:
        """Close the HTTP session (streams still open lose their connection)."""
        await self._session.aclose()


PROVIDER = Provider(DeepgramAsrSettings, lambda settings, _executor: DeepgramASR(settings))
