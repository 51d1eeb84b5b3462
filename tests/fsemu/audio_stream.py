"""mod_audio_stream (amigniter @ ec2a781, libwsc 1.1.0) as audio_stream_wire.txt specifies it.

``uuid_audio_stream`` answers at once; the WebSocket client connects asynchronously with libwsc's exact
handshake bytes, sends the metadata as the first text frame, then one binary L16 frame per media-bug read
(the channel's ptime), paced in real time. Server text frames become CUSTOM mod_audio_stream::json / ::play
events; a server close frame fires ::disconnect and leaves the bug attached; a local stop or hangup fires
no CUSTOM event (the client sends close 1000 "Normal closure").

Failures, as tests/fixtures/live/stream_start_failures.txt and worker_close.txt show them: every one fires
``::error`` and then MEDIA_BUG_STOP (the bug is gone: ``stop`` answers -ERR). Before the upgrade: refused
-> code 6 "<strerror> (system error N)"; a non-101 answer -> 6 "WebSocket upgrade failed"; EOF -> 6
"Connection closed during handshake (EOF)"; no answer within 1 s -> 10 "Timeout" (Sec-WebSocket-Accept is
not checked: a wrong one connects). After it: a TCP reset -> 1 "Connection reset by peer (system error
104)"; EOF without a close frame -> 1 "Connection closed without WebSocket CLOSE (abnormal EOF)". On hangup
the bug goes in CS_HANGUP, before CHANNEL_CALLSTATE HANGUP (stream_stop_and_hangup.txt).

Pings: the channel variable ``STREAM_HEART_BEAT`` (whole seconds, read at start as ``strtol`` with nothing
after the digits, audio_streamer_glue.cpp) becomes libwsc's ``setPingInterval``: an ``EV_PERSIST`` timer
(WebSocketContext.cpp ``pingCallback`` → ``sendPing``) sends a PING with the payload ``ping`` every N
seconds once upgraded, whether or not audio flows; PONGs are only logged (``onRxPong``: no pong timeout).
Unset, the interval is uninitialised in the module: no pings were seen, so none are sent here.

``early_frames`` (EmulatorConfig.audio_before_metadata) models a race of the real module: its media-bug
thread sends audio once libwsc marks the socket connected, before libwsc's open callback has sent the
metadata (audio_streamer_glue.cpp: writeBinary checks only isConnected), so that many frames can precede it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import wsproto.events
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason

from tests.fsemu.argsplit import unescape_argument
from tests.fsemu.audio import AudioSource
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore

USAGE = (
    "-USAGE: <uuid> [start | stop | send_text | pause | resume | graceful-shutdown ] "
    "[wss-url | path] [mono | mixed | stereo] [8000 | 16000] [metadata]\n"
)
OK = "+OK Success\n"
FAILED = "-ERR Operation Failed\n"
_URL = re.compile(r"^ws://(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d+))?(?P<path>/.*)?$")
RAW_SUFFIX = {8000: ".r8", 16000: ".r16", 24000: ".r24", 32000: ".r32", 48000: ".r48", 64000: ".r64"}
OTHER_SUFFIX = {"wav": ".wav", "mp3": ".mp3", "ogg": ".ogg", "pcmu": ".pcmu", "pcma": ".pcma"}
CONNECT_TIMEOUT = 1.0  # libwsc's handshake deadline (stream_start_failures.txt: "Timeout" after 1.00 s)
UPGRADE_FAILED = "WebSocket upgrade failed"
HANDSHAKE_EOF = "Connection closed during handshake (EOF)"
ABNORMAL_EOF = "Connection closed without WebSocket CLOSE (abnormal EOF)"


class StreamFailure(Exception):
    """The WebSocket client failed: mod_audio_stream reports ``code`` and ``error`` in ::error."""

    def __init__(self, code: int, error: str) -> None:
        super().__init__(error)
        self.code, self.error = code, error

    @classmethod
    def from_os_error(cls, exc: OSError, code: int) -> StreamFailure:
        """libwsc's text for a socket error: "<strerror> (system error <errno>)"."""
        errno = exc.errno
        text = f"{os.strerror(errno)} (system error {errno})" if errno else str(exc) or "Connection failed"
        return cls(code, text)


@dataclass(eq=False)
class StreamSession:
    """One attached audio_stream media bug and its WebSocket client."""

    channel: EmulatedChannel
    url: str
    mix: str
    rate: int
    metadata: str | None
    state: str = "connecting"  # connecting | connected | disconnected
    paused: bool = False
    files: list[Path] = field(default_factory=list)
    frames_sent: int = 0
    first_frame_at: float | None = None  # loop time of the first binary frame (audio position 0)
    frame_sizes: list[int] = field(default_factory=list)
    writer: asyncio.StreamWriter | None = None
    ws: Connection | None = None
    task: asyncio.Task[None] | None = None
    closing: bool = False
    opened: bool = False  # the open callback ran: metadata sent, ::connect fired
    ping_s: int = 0  # STREAM_HEART_BEAT at start (0: no pings)
    pings_sent: int = 0
    pongs: int = 0


def parse_rate(text: str) -> int | None:
    """``8k`` / ``16k`` / N (a multiple of 8000)."""
    if text == "8k":
        return 8000
    if text == "16k":
        return 16000
    value = int(text) if text.isdigit() else 0
    return value if value > 0 and value % 8000 == 0 else None


class AudioStreams:
    """The ``uuid_audio_stream`` api and its sessions (one per channel)."""

    def __init__(self, core: SwitchCore, temp_dir: Path, pre_answer: Any, early_frames: int = 0) -> None:
        self.core = core
        self.temp_dir = temp_dir
        self.pre_answer = pre_answer
        self.early_frames = early_frames
        self.sessions: dict[str, StreamSession] = {}

    async def command(self, arg: str) -> str:
        """Run ``uuid_audio_stream <arg>`` and return the api reply body."""
        argv = arg.split(" ", 5) if arg else []
        if len(argv) < 2:
            return USAGE
        ch = self.core.channels.get(argv[0])
        action = argv[1]
        if ch is None or not ch.alive:
            return FAILED
        if action == "start":
            return self._start(ch, argv) if len(argv) >= 4 else USAGE
        session = self.sessions.get(ch.uuid)
        if action == "stop":
            return await self._stop(session, argv[2] if len(argv) > 2 else None) if session else FAILED
        if action == "send_text":
            if session is None or session.state != "connected" or len(argv) < 3:
                return FAILED
            self._send(session, TextMessage(data=argv[2]))
            return OK
        if action in ("pause", "resume"):
            if session is None:
                return FAILED
            session.paused = action == "pause"
            return OK
        return FAILED if action == "graceful-shutdown" else USAGE

    def _start(self, ch: EmulatedChannel, argv: list[str]) -> str:
        url, mix, rate_text = argv[2], argv[3], argv[4] if len(argv) > 4 else "8k"
        rate = parse_rate(rate_text)
        if ch.uuid in self.sessions or _URL.match(url) is None or mix not in ("mono", "mixed", "stereo"):
            return FAILED
        if rate is None:
            return FAILED
        self.pre_answer(ch)
        metadata = unescape_argument(argv[5]) if len(argv) > 5 else None  # as switch_separate_string does
        ping_s = heart_beat(ch.get_var("STREAM_HEART_BEAT"))
        session = StreamSession(ch, url, mix, rate, metadata, ping_s=ping_s)
        self.sessions[ch.uuid] = session
        pre = [("Media-Bug-Function", "audio_stream"), ("Media-Bug-Target", "N/A")]
        self.core.fire_channel(ch, "MEDIA_BUG_START", pre=pre)
        session.task = self.core.spawn(self._run(session), name=f"audio-stream-{ch.uuid}")
        return OK

    async def _stop(self, session: StreamSession, text: str | None) -> str:
        await self.detach(session, text)
        return OK

    async def detach(self, session: StreamSession, text: str | None = None) -> None:
        """Remove the bug (``remove``) and wait for its client to end."""
        if self.remove(session, text):
            await self._reap(session)

    def remove(self, session: StreamSession, text: str | None = None) -> bool:
        """MEDIA_BUG_STOP, the optional text, close 1000 "Normal closure", files deleted; False if gone."""
        ch = session.channel
        if self.sessions.get(ch.uuid) is not session:
            return False
        del self.sessions[ch.uuid]
        session.closing = True
        pre = [("Media-Bug-Function", "audio_stream"), ("Media-Bug-Target", "N/A")]
        self.core.fire_channel(ch, "MEDIA_BUG_STOP", pre=pre)
        if session.state == "connected":
            if text:
                self._send(session, TextMessage(data=text))
            self._send(session, CloseConnection(code=1000, reason="Normal closure"))
        for file in session.files:
            file.unlink(missing_ok=True)
        return True

    async def _reap(self, session: StreamSession) -> None:
        if session.task is not None and session.task is not asyncio.current_task():
            session.task.cancel()
            await asyncio.gather(session.task, return_exceptions=True)
        if session.writer is not None:
            session.writer.close()

    def on_hangup(self, ch: EmulatedChannel) -> None:
        """CS_HANGUP removes the bug (MEDIA_BUG_STOP before CALLSTATE HANGUP, no ::disconnect)."""
        session = self.sessions.get(ch.uuid)
        if session is not None and self.remove(session):
            self.core.spawn(self._reap(session), name=f"audio-stream-stop-{ch.uuid}")

    def fire(self, session: StreamSession, kind: str, body: str) -> None:
        """Fire CUSTOM mod_audio_stream::<kind> with a JSON body."""
        self.core.fire_channel(session.channel, "CUSTOM", subclass=f"mod_audio_stream::{kind}", body=body)

    def _send(self, session: StreamSession, event: wsproto.events.Event) -> None:
        if session.ws is None or session.writer is None or session.writer.is_closing():
            return
        try:
            data = session.ws.send(event)
        except Exception:  # wsproto LocalProtocolError after a close: nothing more to send
            return
        session.writer.write(data)

    # -- connection ----------------------------------------------------------------------------
    async def _run(self, session: StreamSession) -> None:
        try:
            reader = await self._connect(session)
        except StreamFailure as exc:
            if session.writer is not None:
                session.writer.close()
            self._fail(session, exc)
            return
        session.state = "connected"
        if not self.early_frames:
            self._opened(session)
        pump = asyncio.create_task(self._pump_audio(session), name=f"audio-pump-{session.channel.uuid}")
        pings = asyncio.create_task(self._ping(session), name=f"audio-ping-{session.channel.uuid}")
        try:
            await self._read_frames(session, reader)
        except StreamFailure as exc:
            self._fail(session, exc)
        finally:
            pump.cancel()
            pings.cancel()
            await asyncio.gather(pump, pings, return_exceptions=True)
            if session.writer is not None:
                session.writer.close()

    def _opened(self, session: StreamSession) -> None:
        """libwsc's open callback: the metadata as the first text frame, then ::connect."""
        session.opened = True
        if session.metadata:
            self._send(session, TextMessage(data=session.metadata))
        self.fire(session, "connect", '{"status":"connected"}')

    def _fail(self, session: StreamSession, exc: StreamFailure) -> None:
        """::error, then the bug goes (MEDIA_BUG_STOP)."""
        if session.closing:
            return
        session.state = "disconnected"
        message = {"code": exc.code, "error": exc.error}
        body = json.dumps({"status": "error", "message": message}, separators=(",", ":"), ensure_ascii=False)
        self.fire(session, "error", body)
        self.remove(session)

    async def _connect(self, session: StreamSession) -> asyncio.StreamReader:
        match = _URL.match(session.url)
        assert match is not None
        host, port, path = match.group("host"), int(match.group("port") or 80), match.group("path") or "/"
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(host, port)
                session.writer = writer
                key = base64.b64encode(os.urandom(16)).decode()
                # libwsc's exact request: no space after the colons, this header order, an Origin header.
                request = (
                    f"GET {path} HTTP/1.1\r\nHost:{host}:{port}\r\nUpgrade:websocket\r\n"
                    f"Connection:upgrade\r\nSec-WebSocket-Key:{key}\r\nSec-WebSocket-Version:13\r\n"
                    f"Origin:http://{host}:{port}\r\n\r\n"
                )
                writer.write(request.encode())
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise StreamFailure(10, "Timeout") from None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            raise StreamFailure(6, HANDSHAKE_EOF) from None
        except OSError as exc:
            raise StreamFailure.from_os_error(exc, 6) from exc
        if not head.startswith(b"HTTP/1.1 101"):
            raise StreamFailure(6, UPGRADE_FAILED)
        session.ws = Connection(ConnectionType.CLIENT)
        return reader

    async def _read_frames(self, session: StreamSession, reader: asyncio.StreamReader) -> None:
        ws = session.ws
        assert ws is not None
        text_parts: list[str] = []
        while True:
            try:
                data = await reader.read(65536)
            except OSError as exc:  # the worker's TCP reset (worker_close.txt)
                raise StreamFailure.from_os_error(exc, 1) from exc
            if not data:  # EOF without a close frame: an error, not a ::disconnect 1006
                raise StreamFailure(1, ABNORMAL_EOF)
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, TextMessage):
                    text_parts.append(event.data)
                    if event.message_finished:
                        self._on_text(session, "".join(text_parts))
                        text_parts.clear()
                elif isinstance(event, Ping):
                    self._send(session, event.response())
                elif isinstance(event, Pong):
                    session.pongs += 1
                elif isinstance(event, CloseConnection):
                    self._on_close(session, event.code, event.reason or "")
                    return

    def _on_close(self, session: StreamSession, code: int, reason: str) -> None:
        if session.closing:
            return
        # libwsc echoes the worker's close frame, code and reason (worker_close.txt: "close 4000 bye now").
        echo = code if code != CloseReason.NO_STATUS_RCVD else 1000
        self._send(session, CloseConnection(code=echo, reason=reason))
        session.state = "disconnected"
        body = {"status": "disconnected", "message": {"code": int(code), "reason": reason}}
        self.fire(session, "disconnect", json.dumps(body, separators=(",", ":"), ensure_ascii=False))

    def _on_text(self, session: StreamSession, text: str) -> None:
        body = self._stream_audio(session, text)
        if body is None:
            self.fire(session, "json", text)
        else:
            self.fire(session, "play", body)

    def _stream_audio(self, session: StreamSession, text: str) -> str | None:
        """Handle {"type":"streamAudio","data":{...}}: write the file, return the ::play body (or None)."""
        try:
            msg = json.loads(text)
        except ValueError:
            return None
        if (
            not isinstance(msg, dict)
            or msg.get("type") != "streamAudio"
            or not isinstance(msg.get("data"), dict)
        ):
            return None
        data = msg["data"]
        kind, rate = data.get("audioDataType"), data.get("sampleRate")
        suffix = (
            RAW_SUFFIX.get(rate) if kind == "raw" and isinstance(rate, int) else OTHER_SUFFIX.get(kind or "")
        )
        if suffix is None or not isinstance(data.get("audioData"), str):
            return None
        try:
            audio = base64.b64decode(data["audioData"], validate=True)
        except (binascii.Error, ValueError):
            return None
        path = self.temp_dir / f"{session.channel.uuid}_{len(session.files)}.tmp{suffix}"
        path.write_bytes(audio)
        session.files.append(path)
        out = {k: v for k, v in data.items() if k != "audioData"}
        out["file"] = str(path)
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False)

    async def _ping(self, session: StreamSession) -> None:
        """libwsc's ping timer: a PING every ``ping_s`` seconds while connected, audio or not."""
        if session.ping_s <= 0:
            return
        while session.state == "connected":
            await asyncio.sleep(session.ping_s)
            if session.state == "connected" and not session.closing:
                self._send(session, Ping(payload=b"ping"))
                session.pings_sent += 1

    # -- audio ---------------------------------------------------------------------------------
    async def _pump_audio(self, session: StreamSession) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        source = session.channel.audio_source or AudioSource()
        ticks = 0
        while session.state == "connected":
            ptime = session.channel.ptime_ms
            frame = _frame(session, source, ptime)
            if frame is not None and not session.paused:
                self._send(session, BytesMessage(data=frame))
                if session.first_frame_at is None:
                    session.first_frame_at = loop.time()
                session.frames_sent += 1
                session.frame_sizes.append(len(frame))
                if session.writer is not None:
                    await session.writer.drain()
            ticks += 1
            if not session.opened and ticks >= self.early_frames:
                self._opened(session)  # the race: frames went out before the open callback
            next_at += ptime / 1000
            await asyncio.sleep(max(0.0, next_at - loop.time()))


def heart_beat(text: str | None) -> int:
    """``STREAM_HEART_BEAT`` as the module reads it: an integer with nothing after it, else unset (0)."""
    match = re.fullmatch(r"\s*([+-]?\d+)", text or "")
    return max(0, int(match.group(1))) if match else 0


def _frame(session: StreamSession, source: AudioSource, ptime: int) -> bytes | None:
    """One media-bug read: ``rate/1000*ptime`` samples per channel; 20 ms cap when resampling."""
    ch = session.channel
    chan_rate = ch.read_codec.rate if ch.read_codec else 8000
    samples = session.rate * ptime // 1000
    pcm = source.read(samples, session.rate)
    if session.rate != chan_rate:
        # The resampler's output buffer holds 20 ms: on a 30 ms leg a third of the audio is dropped.
        pcm = pcm[: session.rate * 20 // 1000]
    if session.mix == "mono":
        return pcm.astype("<i2").tobytes()
    if not ch.outbound_audio:
        return None  # mixed/stereo need audio in both directions: a parked leg sends nothing
    if session.mix == "mixed":
        return pcm.astype("<i2").tobytes()
    return np.repeat(pcm, 2).astype("<i2").tobytes()
