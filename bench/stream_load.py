"""The load generator of ``bench.worker_streams``: many emulated mod_audio_stream clients in one process.

The audio is real speech made once at start (:func:`make_speech`: espeak-ng, then sox to 16 kHz L16).

Built to be cheap, so the generator's core is not what limits the figure: every audio frame is a masked
WebSocket frame built once (one fixed mask key) and shared by all streams; a stream is an asyncio Protocol
whose ``data_received`` drops whatever the worker sends back (streamAudio chunks of the echo agent,
barge_in); one pacing task writes the next frame of every stream on an absolute 20 ms schedule read from
CLOCK_MONOTONIC. The upgrade request is libwsc's, byte for byte (audio_stream_wire.txt section 2: no space
after the colons, that header order, an Origin header) with a fresh Sec-WebSocket-Key, and the 101's
Sec-WebSocket-Accept is checked. The first frame is the metadata TEXT frame, then BINARY L16 frames.

A frame is *dropped* by the generator when its stream's transport already buffers more than
``buffer_limit`` bytes (the worker is not reading). Ticks that start more than one period late are counted
apart: with the process's CPU share they tell whether the generator itself is overloaded.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import os
import random
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

__all__ = [
    "FRAME_BYTES",
    "PERIOD_S",
    "HandshakeError",
    "LoadCounters",
    "LoadGenerator",
    "audio_frames",
    "client_frame",
    "handshake_request",
    "http_get",
    "make_speech",
]

FRAME_BYTES = 640  # 20 ms of 16 kHz mono L16
PERIOD_S = 0.020
MASK_KEY = b"\x5a\x13\xc7\x2e"
OP_TEXT, OP_BINARY, OP_CLOSE = 0x1, 0x2, 0x8
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_MAX_HEAD = 8192
SPEECH = (  # (espeak-ng voice, sentence): ~13 s with the pauses
    ("en-us", "Hello, thanks for calling. How can I help you today?"),
    ("en-gb", "I would like to check the status of my order, please."),
    ("en-us+f3", "It was placed last Tuesday and it should have arrived by now."),
)


def make_speech(workdir: Path) -> bytes:
    """Real speech as 16 kHz L16: espeak-ng sentences, each through sox with 1 s of pause after it.

    A faint noise floor (about -64 dBFS) is added: a phone line is never digitally silent.
    """
    parts = []
    for i, (voice, text) in enumerate(SPEECH):
        wav, raw = workdir / f"s{i}.wav", workdir / f"s{i}.raw"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "175", "-w", str(wav), text], check=True, timeout=60)
        subprocess.run(
            ["sox", str(wav), "-t", "raw", "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer",
             "-L", str(raw), "pad", "0", "1.0"],
            check=True,
            timeout=60,
        )  # fmt: skip
        parts.append(raw.read_bytes())
    pcm = np.frombuffer(b"".join(parts), dtype="<i2").astype(np.float64)
    pcm += np.random.default_rng(7).normal(0.0, 20.0, len(pcm))
    audio = np.clip(np.round(pcm), -32768, 32767).astype("<i2").tobytes()
    (workdir / "speech.raw").write_bytes(audio)
    return audio


class HandshakeError(Exception):
    """The worker did not upgrade the connection as RFC 6455 says."""


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    keystream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes, key: bytes = MASK_KEY) -> bytes:
    """One final, masked client frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + _mask(payload, key)


def audio_frames(pcm: bytes) -> list[bytes]:
    """The whole 640-byte L16 frames of ``pcm``, each as a ready-to-write masked BINARY frame."""
    usable = len(pcm) - len(pcm) % FRAME_BYTES
    return [client_frame(OP_BINARY, pcm[i : i + FRAME_BYTES]) for i in range(0, usable, FRAME_BYTES)]


CLOSE_FRAME = client_frame(OP_CLOSE, struct.pack("!H", 1000) + b"Normal closure")


def handshake_request(host: str, port: int, path: str, key: str) -> bytes:
    """libwsc's upgrade request, as captured in audio_stream_wire.txt section 2."""
    return (
        f"GET {path} HTTP/1.1\r\nHost:{host}:{port}\r\nUpgrade:websocket\r\nConnection:upgrade\r\n"
        f"Sec-WebSocket-Key:{key}\r\nSec-WebSocket-Version:13\r\nOrigin:http://{host}:{port}\r\n\r\n"
    ).encode()


class StreamClient(asyncio.Protocol):
    """One emulated stream: send the upgrade, check the 101, then ignore everything the worker sends."""

    def __init__(self, request: bytes, key: str, pos: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.pos = pos  # index of the next audio frame
        self.lost = False
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._request = request
        self._accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest())
        self._head = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the upgrade request."""
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        """Until the upgrade: collect the response head; afterwards: discard."""
        if self.upgraded.done():
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end >= 0:
            self._check(bytes(self._head[:end]))
        elif len(self._head) > _MAX_HEAD:
            self.upgraded.set_exception(HandshakeError("response head too long"))

    def _check(self, head: bytes) -> None:
        status, *lines = head.split(b"\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if not status.startswith(b"HTTP/1.1 101"):
            self.upgraded.set_exception(HandshakeError(status.decode(errors="replace")))
        elif headers.get(b"sec-websocket-accept") != self._accept:
            self.upgraded.set_exception(HandshakeError("wrong Sec-WebSocket-Accept"))
        else:
            self.upgraded.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        """The worker or we closed the socket."""
        self.lost = True
        if not self.upgraded.done():
            self.upgraded.set_exception(HandshakeError("closed before the upgrade"))


@dataclass
class LoadCounters:
    """What the pacing task did since the last :meth:`LoadGenerator.reset`."""

    ticks: int = 0
    sent: int = 0
    dropped: int = 0  # frames skipped: the stream's transport buffered more than the limit
    late_ticks: int = 0  # ticks that started more than one period late: the generator is overloaded
    max_late_s: float = 0.0


class LoadGenerator:
    """N streams against one worker; ``async with`` runs the pacing task, leaving it closes every stream."""

    def __init__(
        self,
        host: str,
        port: int,
        frames: list[bytes],
        buffer_limit: int = 64 * 1024,
        max_s: float = 120.0,
    ) -> None:
        self.host = host
        self.port = port
        self.streams: list[StreamClient] = []
        self.connect_errors: list[str] = []
        self.counters = LoadCounters()
        self._frames = frames
        self._limit = buffer_limit
        self._max_s = max_s
        self._pacer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoadGenerator:
        self._pacer = asyncio.create_task(self._pace(), name="pacer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pacer is not None:
            self._pacer.cancel()
            await asyncio.gather(self._pacer, return_exceptions=True)
        for stream in self.streams:
            if stream.transport is not None and not stream.transport.is_closing():
                stream.transport.write(CLOSE_FRAME)
                stream.transport.close()

    @property
    def lost(self) -> int:
        """Streams the worker closed under us."""
        return sum(1 for s in self.streams if s.lost)

    def reset(self) -> LoadCounters:
        """Start counting afresh; returns the counters up to now."""
        counters, self.counters = self.counters, LoadCounters()
        return counters

    async def ramp(self, n: int, seconds: float, prefix: str, seed: int = 1) -> None:
        """Open ``n`` streams spread over ``seconds``, each starting at its own offset into the audio."""
        rng = random.Random(seed)
        per_tick = max(1, math.ceil(n * PERIOD_S / seconds))
        tasks: list[asyncio.Task[None]] = []
        for first in range(0, n, per_tick):
            for i in range(first, min(n, first + per_tick)):
                pos = rng.randrange(len(self._frames))
                tasks.append(asyncio.create_task(self._connect(f"{prefix}-{i}", pos)))
            await asyncio.sleep(PERIOD_S)
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                self.connect_errors.append(f"{type(result).__name__}: {result}")

    async def _connect(self, call_id: str, pos: int, timeout: float = 15.0) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        request = handshake_request(self.host, self.port, f"/stream/{call_id}", key)
        client = StreamClient(request, key, pos)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().create_connection(lambda: client, self.host, self.port)
                await client.upgraded
        except BaseException:
            if client.transport is not None:
                client.transport.abort()
            raise
        meta = json.dumps({"call_id": call_id, "sample_rate": 16000, "call_type": "sip"})
        assert client.transport is not None
        client.transport.write(client_frame(OP_TEXT, meta.encode()))
        self.streams.append(client)

    async def _pace(self) -> None:
        clock = time.monotonic
        start = clock()
        for tick in range(1, int(self._max_s / PERIOD_S) + 1):
            target = start + tick * PERIOD_S
            delay = target - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            late = clock() - target
            counters = self.counters
            if late > PERIOD_S:
                counters.late_ticks += 1
                counters.max_late_s = max(counters.max_late_s, late)
            self._tick(counters)

    def _tick(self, counters: LoadCounters) -> None:
        frames = self._frames
        count = len(frames)
        limit = self._limit
        sent = dropped = 0
        for stream in self.streams:
            transport = stream.transport
            if transport is None or stream.lost:
                continue
            if transport.get_write_buffer_size() > limit:
                dropped += 1
            else:
                transport.write(frames[stream.pos])
                sent += 1
            stream.pos = (stream.pos + 1) % count  # the audio goes on in real time either way
        counters.ticks += 1
        counters.sent += sent
        counters.dropped += dropped


async def http_get(host: str, port: int, path: str, timeout: float = 10.0) -> bytes:
    """The body of a ``200`` answer to a plain GET (one connection, closed after)."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost:{host}:{port}\r\nConnection:close\r\n\r\n".encode())
            data = await reader.read()
        finally:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise OSError(f"GET {path}: {head[:60]!r}")
    return body
