"""A media worker that misbehaves on demand: the far end of mod_audio_stream's failure paths.

A raw asyncio server speaking RFC 6455 through wsproto (not aiohttp: a TCP reset or a half-open socket needs
the socket itself). Each accepted connection follows the ``Behaviour`` the server holds at that moment:

* ``accept``: completes the handshake and reads until the client closes (answers its close, then closes
  the TCP connection first, as RFC 6455 section 7.1.1 asks of a server);
* ``reset``: after ``after`` seconds, SO_LINGER 0 and close: the kernel sends RST, no close frame;
* ``eof``: after ``after`` seconds, closes the TCP connection without a close frame (FIN);
* ``close``: after ``after`` seconds, sends a close frame (``code``, ``reason``);
* ``silent``: accepts the TCP connection and never answers the upgrade request;
* ``http404``: answers the upgrade request with ``404 Not Found`` and closes;
* ``eof_in_handshake``: closes the TCP connection on the upgrade request;
* ``bad_accept``: answers ``101`` with a wrong ``Sec-WebSocket-Accept``.

What the worker saw is kept per connection (``WorkerConnection.seen``), for tests and transcripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Ping, Request, TextMessage

READ_DEADLINE = 60.0  # no connection is served longer than this


@dataclass(frozen=True)
class Behaviour:
    """What the worker does with the next connections (see the module docstring)."""

    kind: str = "accept"
    after: float = 0.5
    code: int = 1000
    reason: str = ""


@dataclass
class WorkerConnection:
    """One TCP connection the worker accepted and what it observed, in order."""

    behaviour: Behaviour
    started: float = field(default_factory=time.monotonic)
    seen: list[str] = field(default_factory=list)  # "upgraded", "text <data>", "close <code> <reason>", "eof"
    frames: int = 0  # binary frames received
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def texts(self) -> list[str]:
        """The text frames received."""
        return [s[5:] for s in self.seen if s.startswith("text ")]


class ScriptedWorker:
    """``async with ScriptedWorker(host) as worker: worker.behaviour = Behaviour("reset"); worker.url()``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.behaviour = Behaviour()
        self.connections: list[WorkerConnection] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._on_connect, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            async with asyncio.timeout(5):
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def url(self, path: str = "/stream") -> str:
        """The ws:// URL of this worker."""
        return f"ws://{self.host}:{self.port}{path}"

    async def wait_done(self, index: int, timeout: float = 5.0) -> WorkerConnection:
        """Wait until connection ``index`` (0-based) was accepted and has ended."""
        async with asyncio.timeout(timeout):
            while len(self.connections) <= index:  # noqa: ASYNC110 - polls the accept list
                await asyncio.sleep(0.01)
            await self.connections[index].done.wait()
        return self.connections[index]

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = WorkerConnection(self.behaviour)
        self.connections.append(conn)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            async with asyncio.timeout(READ_DEADLINE):
                await self._serve(conn, reader, writer)
        except (ConnectionError, OSError, TimeoutError):
            conn.seen.append("eof")
        finally:
            conn.done.set()
            writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    async def _serve(
        self, conn: WorkerConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        kind = conn.behaviour.kind
        if kind in ("silent", "http404", "eof_in_handshake", "bad_accept"):
            await self._refuse(conn, reader, writer)
            return
        ws = WSConnection(ConnectionType.SERVER)
        action: asyncio.TimerHandle | None = None
        try:
            while data := await reader.read(65536):
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Request):
                        writer.write(ws.send(AcceptConnection()))
                        conn.seen.append("upgraded")
                        if kind != "accept":
                            loop = asyncio.get_running_loop()
                            action = loop.call_later(conn.behaviour.after, self._act, conn, ws, writer)
                    elif isinstance(event, TextMessage):
                        conn.seen.append(f"text {event.data}")
                    elif isinstance(event, BytesMessage):
                        conn.frames += 1
                    elif isinstance(event, Ping):
                        writer.write(ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        conn.seen.append(f"close {event.code} {event.reason}".rstrip())
                        with contextlib.suppress(Exception):  # we closed first: nothing to answer
                            writer.write(ws.send(event.response()))
                        return  # the server closes the TCP connection (finally: abort after the write)
            conn.seen.append("eof")
        finally:
            if action is not None:
                action.cancel()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()

    async def _refuse(
        self, conn: WorkerConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        kind = conn.behaviour.kind
        if kind == "http404":
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        elif kind == "bad_accept":
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
            )
        await writer.drain()
        if kind == "bad_accept":  # the client may take it for an upgrade: let it talk, then FIN
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    while await reader.read(65536):
                        pass
        if kind != "silent":
            _half_close(writer)
        while await reader.read(65536):  # until the client's FIN (silent: until it gives up)
            pass
        conn.seen.append(f"upgrade request ({request.split(b' ', 1)[0].decode()}), then {kind}")
        conn.seen.append("eof")

    def _act(self, conn: WorkerConnection, ws: WSConnection, writer: asyncio.StreamWriter) -> None:
        kind = conn.behaviour.kind
        if writer.is_closing():
            return
        if kind == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        elif kind == "eof":
            _half_close(writer)  # FIN; reading goes on, so no unread data turns the close into a RST
        elif kind == "close":
            writer.write(ws.send(CloseConnection(code=conn.behaviour.code, reason=conn.behaviour.reason)))


def _half_close(writer: asyncio.StreamWriter) -> None:
    """Send FIN (shutdown SHUT_WR) and keep the socket open for reading."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
