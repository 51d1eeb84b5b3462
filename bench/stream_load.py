"""The load generator of ``bench.worker_streams``: many emulated mod_audio_stream clients in one process.

The audio is made once at start: real speech (:func:`make_speech`: espeak-ng, then sox to 16 kHz L16) or
a speech-free phone line (:func:`line_noise`: its noise floor only), at 8 or 16 kHz.

Built to be cheap, so the generator's core is not what limits the figure: every audio frame is a masked
WebSocket frame built once (one fixed mask key) and shared by all streams; a stream is an asyncio Protocol
whose ``data_received`` skips whatever the worker sends back (streamAudio, barge_in, transcripts) but a
close frame, whose code and reason it keeps (:class:`ServerFrames`, sans-IO); one pacing task writes the
next frame of every stream on an absolute 20 ms schedule read from CLOCK_MONOTONIC. The upgrade request
is libwsc's, byte for byte (audio_stream_wire.txt section 2: no space after the colons, that header
order, an Origin header) with a fresh Sec-WebSocket-Key, and the 101's Sec-WebSocket-Accept is checked.
The first frame is the metadata TEXT frame (naming the agent), then BINARY L16 frames. A stream the
worker ends (a close frame, or the socket closed without one) is recorded with its close code and
reason: :meth:`LoadGenerator.worker_closes`.

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

from bench import streamkey

__all__ = [
    "FRAME_BYTES",
    "PERIOD_S",
    "HandshakeError",
    "LoadCounters",
    "LoadGenerator",
    "ServerFrames",
    "audio_frames",
    "client_frame",
    "handshake_request",
    "http_get",
    "line_noise",
    "make_speech",
]

FRAME_BYTES = 640  # 20 ms of 16 kHz mono L16
PERIOD_S = 0.020
NOISE_RMS = 20.0  # about -64 dBFS: a phone line is never digitally silent
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
    pcm += np.random.default_rng(7).normal(0.0, NOISE_RMS, len(pcm))
    audio = np.clip(np.round(pcm), -32768, 32767).astype("<i2").tobytes()
    (workdir / "speech.raw").write_bytes(audio)
    return audio


def line_noise(seconds: float, rate: int, seed: int = 11) -> bytes:
    """A speech-free phone line as L16 at ``rate``: its noise floor only (about -64 dBFS)."""
    noise = np.random.default_rng(seed).normal(0.0, NOISE_RMS, int(seconds * rate))
    return np.clip(np.round(noise), -32768, 32767).astype("<i2").tobytes()


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


def audio_frames(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    """The whole ``frame_bytes`` L16 frames of ``pcm`` (640: 20 ms at 16 kHz, 320 at 8 kHz), each as a
    ready-to-write masked BINARY frame."""
    usable = len(pcm) - len(pcm) % frame_bytes
    return [client_frame(OP_BINARY, pcm[i : i + frame_bytes]) for i in range(0, usable, frame_bytes)]


CLOSE_FRAME = client_frame(OP_CLOSE, struct.pack("!H", 1000) + b"Normal closure")


def handshake_request(host: str, port: int, path: str, key: str) -> bytes:
    """libwsc's upgrade request, as captured in audio_stream_wire.txt section 2."""
    return (
        f"GET {path} HTTP/1.1\r\nHost:{host}:{port}\r\nUpgrade:websocket\r\nConnection:upgrade\r\n"
        f"Sec-WebSocket-Key:{key}\r\nSec-WebSocket-Version:13\r\nOrigin:http://{host}:{port}\r\n\r\n"
    ).encode()


class ServerFrames:
    """Sans-IO reader of the worker's frames (RFC 6455 section 5.2): fed bytes, it skips every payload but
    a close frame's, whose status code and reason (section 5.5.1) it keeps in ``close``."""

    __slots__ = ("_buf", "_skip", "close")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # payload bytes of the current frame still to come (the buffer is empty then)
        self.close: tuple[int | None, str] | None = None

    def feed(self, data: bytes) -> None:
        """Bytes from the socket, in order (anything after a close frame is ignored)."""
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            data = data[taken:]
        self._buf += data
        while self.close is None and len(self._buf) >= 2:
            opcode, length = self._buf[0] & 0x0F, self._buf[1] & 0x7F
            start = 2 + {126: 2, 127: 8}.get(length, 0) + (4 if self._buf[1] & 0x80 else 0)
            if len(self._buf) < start:
                return
            if length >= 126:
                length = int.from_bytes(self._buf[2 : 4 if length == 126 else 10], "big")
            if opcode == OP_CLOSE:
                if len(self._buf) < start + length:
                    return
                payload = bytes(self._buf[start : start + length])  # servers do not mask (5.1)
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self.close = (code, payload[2:].decode(errors="replace"))
                return
            taken = min(length, len(self._buf) - start)
            del self._buf[: start + taken]
            self._skip = length - taken


class StreamClient(asyncio.Protocol):
    """One emulated stream: send the upgrade, check the 101, then skip all the worker sends but a close."""

    def __init__(self, request: bytes, key: str, pos: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.pos = pos  # index of the next audio frame
        self.lost = False  # the worker ended the stream (we had not closed it)
        self.closing = False  # we are closing it
        self.frames = ServerFrames()
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._request = request
        self._accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest())
        self._head = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the upgrade request."""
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        """Until the upgrade: collect the response head; afterwards: frames, of which a close is kept."""
        if self.upgraded.done():
            self.frames.feed(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end >= 0:
            self._check(bytes(self._head[:end]))
            self.frames.feed(bytes(self._head[end + 4 :]))
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
        self.lost = not self.closing
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
        *,
        agent: str = "default",
        rate: int = 16000,
    ) -> None:
        self.host = host
        self.port = port
        self.agent = agent
        self.rate = rate
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
            stream.closing = True
            if stream.transport is not None and not stream.transport.is_closing():
                stream.transport.write(CLOSE_FRAME)
                stream.transport.close()

    @property
    def lost(self) -> int:
        """Streams the worker closed under us."""
        return sum(1 for s in self.streams if s.lost or s.frames.close is not None)

    def worker_closes(self) -> list[tuple[int | None, str]]:
        """(close code, reason) of every stream the worker ended; code None: the socket closed without a
        close frame."""
        return [
            s.frames.close or (None, "")
            for s in self.streams
            if s.frames.close is not None or (s.lost and not s.closing)
        ]

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
        meta = {"call_id": call_id, "sample_rate": self.rate, "call_type": "sip", "agent": self.agent}
        meta["token"] = streamkey.token(call_id)
        assert client.transport is not None
        client.transport.write(client_frame(OP_TEXT, json.dumps(meta).encode()))
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
            if transport is None or stream.lost or stream.frames.close is not None:
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
