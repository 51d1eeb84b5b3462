"""A WebSocket server standing in for the capture rig's worker (aiohttp, 127.0.0.1, port 0).

Query parameters as in the captures: ``play=<seconds>`` sends, after 1 s, a transcript JSON and a streamAudio
message carrying ``play`` seconds of a 660 Hz tone at ``rate``; ``close=<seconds>`` closes with 1000
"server done" after that many seconds. Everything received is recorded with its arrival time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web


@dataclass
class WsConnection:
    """What one client sent (text and binary frames, times relative to the upgrade)."""

    path: str
    headers: list[tuple[str, str]]
    started: float = field(default_factory=time.monotonic)
    texts: list[tuple[float, str]] = field(default_factory=list)
    binaries: list[tuple[float, int]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    close_code: int | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)


def tone_pcm(seconds: float, rate: int, freq: float = 660.0, amplitude: int = 8000) -> bytes:
    """A sine as raw L16 little-endian."""
    t = np.arange(int(seconds * rate)) / rate
    return np.round(amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


class WsPeer:
    """The test WebSocket server; ``async with WsPeer() as ws: ws.url("/stream?play=1.0")``."""

    def __init__(self) -> None:
        self.connections: list[WsConnection] = []
        self.raw_requests: list[bytes] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> WsPeer:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        """ws:// URL of this server."""
        return f"ws://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = WsConnection(
            request.path_qs,
            [(k.decode(), v.decode()) for k, v in request.raw_headers],
        )
        self.connections.append(conn)
        play = float(request.query.get("play", "0"))
        rate = int(request.query.get("rate", "16000"))
        close_after = float(request.query.get("close", "0"))
        if play:
            self._spawn(self._send_audio(ws, play, rate))
        if close_after:
            self._spawn(self._close_later(ws, close_after))
        async for msg in ws:
            now = time.monotonic() - conn.started
            if msg.type == WSMsgType.TEXT:
                conn.texts.append((now, msg.data))
            elif msg.type == WSMsgType.BINARY:
                conn.binaries.append((now, len(msg.data)))
                conn.audio += msg.data
        conn.close_code = ws.close_code
        conn.closed.set()
        return ws

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_audio(self, ws: web.WebSocketResponse, seconds: float, rate: int) -> None:
        await asyncio.sleep(1.0)
        if ws.closed:
            return
        await ws.send_str(json.dumps({"type": "transcript", "text": "hello from ws server"}))
        data = base64.b64encode(tone_pcm(seconds, rate)).decode()
        body = {
            "type": "streamAudio",
            "data": {"audioDataType": "raw", "sampleRate": rate, "audioData": data},
        }
        await ws.send_str(json.dumps(body))

    async def _close_later(self, ws: web.WebSocketResponse, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await ws.close(code=1000, message=b"server done")
