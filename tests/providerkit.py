"""Loopback servers that speak the network voice providers' APIs, for the provider tests.

:class:`ScriptedServer` answers each HTTP request with the next scripted :data:`Reply` and records what it
received (OpenAI-compatible ``/chat/completions``, ``/audio/transcriptions``, ``/audio/speech`` all go
through it); :class:`DeepgramServer` is a Deepgram-shaped live-transcription WebSocket. Both listen on
127.0.0.1, port 0. A reply that stalls waits on ``released``, which is set when the server stops, so
shutting down never hangs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web
from multidict import CIMultiDictProxy

from tests.appkit import served

Reply = Callable[[web.Request, "ScriptedServer"], Awaitable[web.StreamResponse]]
STALL_LIMIT_S = 10.0  # a stalled reply gives up after this, whatever the test does


@asynccontextmanager
async def serving(app: web.Application, released: asyncio.Event) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (ephemeral port); yield its ``http://host:port`` base."""
    async with served(app, handler_cancellation=True, shutdown_timeout=1.0) as port:
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            released.set()


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    form: dict[str, Any] = field(default_factory=dict)  # multipart fields: str, or (filename, type, bytes)


@dataclass
class ScriptedServer:
    """Answers the n-th request with ``replies[n]`` (the last one repeats) and records every request."""

    replies: list[Reply]
    received: list[Received] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # a streamed reply wrote its last byte

    @asynccontextmanager
    async def run(self) -> AsyncIterator[str]:
        """Serve; yield the base URL (``…/v1``)."""
        app = web.Application()
        app.router.add_post("/v1/{tail:.*}", self._handle)
        async with serving(app, self.released) as base:
            yield f"{base}/v1"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        form: dict[str, Any] = {}
        if request.content_type.startswith("multipart/"):
            body = b""
            async for part in await request.multipart():
                assert isinstance(part, BodyPartReader)
                data = bytes(await part.read())
                if part.filename:
                    form[part.name or ""] = (part.filename, part.headers.get("Content-Type"), data)
                else:
                    form[part.name or ""] = data.decode()
        else:
            body = await request.read()
        self.received.append(Received(request.path, request.headers, body, form))
        reply = self.replies[min(len(self.received), len(self.replies)) - 1]
        return await reply(request, self)


# ---- replies ------------------------------------------------------------------------------------------


def status(code: int, body: Any) -> Reply:
    """An HTTP error (or any status) with a JSON body."""

    async def reply(request: web.Request, server: ScriptedServer) -> web.StreamResponse:
        return web.json_response(body, status=code)

    return reply


def json_reply(body: Any) -> Reply:
    """200 with a JSON body."""
    return status(200, body)


def stall() -> Reply:
    """Never answers (until the server stops)."""

    async def reply(request: web.Request, server: ScriptedServer) -> web.StreamResponse:
        async with asyncio.timeout(STALL_LIMIT_S):
            await server.released.wait()
        return web.Response(status=503)

    return reply


def streamed(
    pieces: list[bytes],
    content_type: str,
    *,
    gate: asyncio.Event | None = None,
    then: str = "end",
) -> Reply:
    """200, the body written piece by piece (chunked); with ``gate``, the pieces after the first wait
    for it. ``then``: ``end`` (a clean end), ``stall`` (hold the connection open), ``drop`` (cut it)."""

    async def reply(request: web.Request, server: ScriptedServer) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        for index, piece in enumerate(pieces):
            if gate is not None and index == 1:
                async with asyncio.timeout(STALL_LIMIT_S):
                    await gate.wait()
            await response.write(piece)
            await asyncio.sleep(0)
        if then == "stall":
            async with asyncio.timeout(STALL_LIMIT_S):
                await server.released.wait()
        elif then == "drop":
            assert request.transport is not None
            request.transport.close()
            return response
        server.finished.set()
        await response.write_eof()
        return response

    return reply


def split(data: bytes, size: int) -> list[bytes]:
    """``data`` in pieces of ``size`` bytes."""
    return [data[i : i + size] for i in range(0, len(data), size)]


# ---- chat completions ---------------------------------------------------------------------------------


def chunk(
    content: str | None = None, tool_calls: list[dict[str, Any]] | None = None, finish: str | None = None
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` as OpenAI streams it."""
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def tool_call(index: int, name: str | None = None, arguments: str = "") -> dict[str, Any]:
    """A tool-call fragment: the first of a call has ``id`` and ``name``, later ones argument pieces."""
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if name is not None:
        fragment.update(id=f"call_{index}", type="function")
        fragment["function"]["name"] = name
    return fragment


def sse(*chunks: dict[str, Any] | str, done: bool = True) -> bytes:
    """An event-stream body: one ``data:`` event per chunk (a str goes as it is), then ``[DONE]``."""
    events = [c if isinstance(c, str) else json.dumps(c) for c in chunks]
    if done:
        events.append("[DONE]")
    return b"".join(f"data: {event}\n\n".encode() for event in events)


# ---- Deepgram -----------------------------------------------------------------------------------------


def results(
    text: str, start: float, end: float, *, is_final: bool, from_finalize: bool = False
) -> dict[str, Any]:
    """A Deepgram ``Results`` message; words spread evenly over ``[start, end]``."""
    words = text.split()
    step = (end - start) / max(len(words), 1)
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": end - start,
        "start": start,
        "is_final": is_final,
        "speech_final": is_final,
        "from_finalize": from_finalize,
        "channel": {
            "alternatives": [
                {
                    "transcript": text,
                    "confidence": 0.98,
                    "words": [
                        {
                            "word": word.lower().strip(",.?"),
                            "punctuated_word": word,
                            "start": start + i * step,
                            "end": start + (i + 1) * step,
                            "confidence": 0.98,
                        }
                        for i, word in enumerate(words)
                    ],
                }
            ]
        },
        "metadata": {"request_id": "test", "model_info": {"name": "general-nova-2"}},
    }


@dataclass
class DeepgramServer:
    """A Deepgram-shaped ``/v1/listen`` WebSocket.

    It "recognises" ``words`` in the audio: an interim result after the first audio, on Finalize the
    final result (``from_finalize``) — or, per ``finalize``: ``split`` (a final piece with the first half
    before, the rest from_finalize), ``covered`` (a plain final piece covering all audio, no
    from_finalize), ``ignore`` (no answer at all). CloseStream → Metadata and a normal close.
    """

    key: str = "dg-secret"
    words: str = "I would like to pay my bill."
    finalize: str = "answer"
    close_code: int | None = None  # close with this code on the first audio instead
    handshakes: int = 0
    queries: list[dict[str, str]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    binary_sizes: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    _text_came: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for_texts(self, count: int) -> None:
        """Until ``count`` text messages came (the caller bounds the wait)."""
        async with self._text_came:
            await self._text_came.wait_for(lambda: len(self.texts) >= count)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[str]:
        """Serve; yield the ``ws://…/v1/listen`` URL."""
        app = web.Application()
        app.router.add_get("/v1/listen", self._handle)
        async with serving(app, self.released) as base:
            yield base.replace("http://", "ws://") + "/v1/listen"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.handshakes += 1
        self.queries.append(dict(request.query))
        if request.headers.get("Authorization") != f"Token {self.key}":
            body = {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}
            return web.json_response(body, status=401, headers={"dg-error": json.dumps(body)})
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "SpeechStarted", "channel": [0], "timestamp": 0.0})
        async with asyncio.timeout(STALL_LIMIT_S):
            async for message in ws:
                if message.type is WSMsgType.BINARY:
                    await self._on_audio(ws, message.data)
                elif message.type is WSMsgType.TEXT:
                    self.texts.append(message.data)
                    async with self._text_came:
                        self._text_came.notify_all()
                    if not await self._on_control(ws, json.loads(message.data)["type"]):
                        break
        return ws

    def _seconds(self) -> float:
        return len(self.audio) / 32000

    async def _on_audio(self, ws: web.WebSocketResponse, data: bytes) -> None:
        if self.close_code is not None:
            await ws.close(code=self.close_code, message=b"NET-0001")
            return
        first = not self.audio
        self.audio += data
        self.binary_sizes.append(len(data))
        if first:
            await ws.send_json(results(self.words.split()[0], 0.0, 0.1, is_final=False))

    async def _on_control(self, ws: web.WebSocketResponse, kind: str) -> bool:
        end = self._seconds()
        words = self.words.split()
        if kind == "Finalize" and self.finalize == "answer":
            await ws.send_json(results(self.words, 0.0, end, is_final=True, from_finalize=True))
        elif kind == "Finalize" and self.finalize == "split":
            half = len(words) // 2
            await ws.send_json(results(" ".join(words[:half]), 0.0, end / 2, is_final=True))
            await ws.send_json({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": end / 2})
            await ws.send_json(
                results(" ".join(words[half:]), end / 2, end, is_final=True, from_finalize=True)
            )
        elif kind == "Finalize" and self.finalize == "covered":
            await ws.send_json(results(self.words, 0.0, end, is_final=True))
        elif kind == "CloseStream":
            await ws.send_json({"type": "Metadata", "request_id": "test", "duration": end, "channels": 1})
            await ws.close()
            return False
        return True
