"""One inbound Event Socket connection on asyncio: auth, commands with deadlines, bgapi jobs, events.

Replies (``api/response`` to ``api``, ``command/reply`` to the rest) come in command order: one FIFO. A reply
missing its deadline *poisons* it (the late reply would be taken as the next one's), so a timeout closes the
connection and the node adapter (which owns reconnects) builds a new one. ``bgapi`` results come later as
BACKGROUND_JOB events, matched by a ``Job-UUID`` header we choose (mod_event_socket.c honours it).

Exception tree (extends ``controller.freeswitch.protocol``)::

    EslError
    ├── ProtocolError          malformed bytes from the peer
    ├── ConnectionLost         the connection closed, failed or was dropped; pending commands fail with it
    │   └── CommandTimeout     no reply before the deadline (the connection is dropped)
    ├── AuthenticationError    wrong password or ACL rejection: never retried
    ├── CommandError           FreeSWITCH answered ``-ERR ...`` / ``-USAGE ...``
    └── JobTimeout             a bgapi job did not finish in time (the connection stays up)

Bounds: a frame larger than the parser's limits is a ``ProtocolError`` (logged, the connection dropped);
events wait in an ``EventBacklog`` whose bound pauses reading (``controller.freeswitch.backlog``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid as uuidlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self

from controller.freeswitch.backlog import MAX_BACKLOG_BYTES, MAX_BACKLOG_EVENTS, EventBacklog
from controller.freeswitch.decode import decode_event
from controller.freeswitch.events import BackgroundJob, Event
from controller.freeswitch.protocol import (
    DEFAULT_LIMITS,
    EslError,
    EslParser,
    Frame,
    FrameLimits,
    ProtocolError,
    encode_command,
)

__all__ = [
    "AuthenticationError",
    "CommandError",
    "CommandTimeout",
    "ConnectionLost",
    "EslConnection",
    "EventSink",
    "JobTimeout",
]

log = logging.getLogger(__name__)

READ_CHUNK: Final = 256 * 1024
_EVENT_TYPES: Final = frozenset({"text/event-json", "text/event-plain"})
_REPLY_TYPES: Final = frozenset({"api/response", "command/reply"})


class ConnectionLost(EslError):
    """The ESL connection is gone (closed by the peer, failed, or dropped by us)."""


class CommandTimeout(ConnectionLost):
    """A command got no reply before its deadline; the connection was dropped because of it."""


class AuthenticationError(EslError):
    """FreeSWITCH refused the password (``-ERR invalid``) or the ACL (``text/rude-rejection``)."""


class JobTimeout(EslError):
    """A ``bgapi`` job's BACKGROUND_JOB did not arrive before the deadline."""


class CommandError(EslError):
    """FreeSWITCH answered a command with ``-ERR`` or ``-USAGE``; ``reply`` is its exact text."""

    def __init__(self, command: str, reply: str) -> None:
        super().__init__(f"{command.split(' ', 1)[0]}: {reply.strip()}")
        self.command = command
        self.reply = reply


def _check(command: str, reply: str) -> str:
    if reply.startswith(("-ERR", "-USAGE")):
        raise CommandError(command, reply)
    return reply


def _reply_text(frame: Frame) -> str:
    if frame.content_type == "api/response":
        return frame.body.decode(errors="replace")
    return frame.headers.get("Reply-Text", "")


EventSink = Callable[[Event, int], None]
"""Takes each event and its size in wire bytes (called from the reader, must not block)."""


class EslConnection:
    """An authenticated inbound ESL connection (use ``EslConnection.open`` as ``async with``).

    Events go to ``on_event`` if given, else into an internal queue read with ``next_event()``.
    BACKGROUND_JOB events resolve their ``bgapi`` and are passed on too. Before each read the reader waits
    for room in ``backlog``: the sink's queue (``FreeSwitchNode``'s), else the internal queue.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_event: EventSink | None = None,
        *,
        limits: FrameLimits = DEFAULT_LIMITS,
        backlog: EventBacklog[Any] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = EslParser(limits)
        self._replies: deque[asyncio.Future[Frame]] = deque()
        self._jobs: dict[str, asyncio.Future[BackgroundJob]] = {}
        self._events = EventBacklog[Event](MAX_BACKLOG_EVENTS, MAX_BACKLOG_BYTES)
        self._event_ready = asyncio.Event()
        self._on_event = on_event or self._queue_event
        self._backlog = self._events if backlog is None else backlog
        self._closed = asyncio.get_running_loop().create_future()
        self._read_task: asyncio.Task[None] | None = None
        self.decode_errors = 0
        self.disconnect_notice: Frame | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        password: str,
        *,
        connect_timeout: float = 5.0,
        auth_timeout: float = 5.0,
        on_event: EventSink | None = None,
        limits: FrameLimits = DEFAULT_LIMITS,
        backlog: EventBacklog[Any] | None = None,
    ) -> Self:
        """Connect, wait for ``auth/request``, authenticate, and start reading.

        Raises:
            ConnectionLost: cannot connect, or the peer closed during the handshake.
            CommandTimeout: a handshake step missed its deadline.
            AuthenticationError: the password or the ACL was refused.
            ProtocolError: the peer does not speak ESL.
        """
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError as exc:
            raise CommandTimeout(f"connect to {host}:{port}: no answer in {connect_timeout}s") from exc
        except OSError as exc:
            raise ConnectionLost(f"connect to {host}:{port}: {exc}") from exc
        conn = cls(reader, writer, on_event, limits=limits, backlog=backlog)
        try:
            async with asyncio.timeout(auth_timeout):
                await conn._authenticate(password)
        except TimeoutError as exc:
            conn.abort()
            raise CommandTimeout(f"{host}:{port}: no auth exchange in {auth_timeout}s") from exc
        except BaseException:
            conn.abort()
            raise
        conn._read_task = asyncio.create_task(conn._read_loop(), name=f"esl-read {host}:{port}")
        return conn

    async def _read_frame(self) -> Frame:
        while (frame := self._parser.next_frame()) is None:
            data = await self._reader.read(READ_CHUNK)
            if not data:
                raise ConnectionLost("connection closed during the handshake")
            self._parser.feed(data)
        return frame

    async def _authenticate(self, password: str) -> None:
        frame = await self._read_frame()
        if frame.content_type == "text/rude-rejection":
            raise AuthenticationError(f"rejected by FreeSWITCH ACL: {frame.body.decode(errors='replace')}")
        if frame.content_type != "auth/request":
            raise ProtocolError(f"expected auth/request, got {frame.content_type!r}")
        if "\n" in password or "\r" in password:
            raise AuthenticationError("password contains a newline")
        self._writer.write(encode_command(f"auth {password}"))
        reply = await self._read_frame()
        text = reply.headers.get("Reply-Text", "")
        if reply.content_type != "command/reply" or not text.startswith("+OK"):
            raise AuthenticationError(f"FreeSWITCH refused the ESL password: {text or reply.content_type}")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def closed(self) -> asyncio.Future[None]:
        """Resolves (or fails with the reason) when the connection ends."""
        return self._closed

    @property
    def is_open(self) -> bool:
        """True until the connection ends."""
        return not self._closed.done()

    async def close(self, timeout: float = 2.0) -> None:
        """Say ``exit`` politely (bounded by ``timeout``), then close the socket and stop the reader."""
        if self.is_open:
            with contextlib.suppress(EslError, TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._command_frame("exit")
                    await asyncio.shield(self._closed)
        self._finish(None)
        self._writer.close()
        task = self._read_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(timeout):
                    await task
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                await self._writer.wait_closed()

    def abort(self, reason: EslError | None = None) -> None:
        """Drop the connection at once (used on timeouts and protocol errors)."""
        self._finish(reason or ConnectionLost("connection dropped"))
        self._writer.transport.abort()

    def _finish(self, reason: EslError | None) -> None:
        """End the connection: ``reason`` None is a clean close; pending commands fail either way."""
        if self._closed.done():
            return
        if reason is None:
            self._closed.set_result(None)
            reason = ConnectionLost("connection closed")
        else:
            self._closed.set_exception(reason)
            self._closed.exception()  # mark retrieved: a reason nobody awaits is not an error
        while self._replies:
            fut = self._replies.popleft()
            if not fut.done():
                fut.set_exception(reason)
        for job in self._jobs.values():
            if not job.done():
                job.set_exception(reason)
        self._jobs.clear()
        self._event_ready.set()

    def _failure(self) -> EslError:
        if self._closed.done() and not self._closed.cancelled():
            exc = self._closed.exception()
            if isinstance(exc, EslError):
                return exc
        return ConnectionLost("connection closed")

    # ---- reading ---------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason: EslError | None = ConnectionLost("connection closed by FreeSWITCH")
        backlog = self._backlog
        try:
            self._dispatch_buffered()
            while True:
                if backlog.full:
                    await backlog.room()  # backpressure: the socket is not read while the backlog is full
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    break
                self._parser.feed(data)
                self._dispatch_buffered()
        except ProtocolError as exc:
            log.error("ESL protocol error, dropping the connection: %s", exc)
            reason = exc
        except OSError as exc:
            reason = ConnectionLost(f"connection failed: {exc}")
        finally:
            if self.disconnect_notice is not None and type(reason) is ConnectionLost:
                reason = None  # FreeSWITCH said goodbye (after our exit): a clean end
            self._finish(reason)
            self._writer.transport.abort()

    def _dispatch_buffered(self) -> None:
        for frame in self._parser:
            content_type = frame.content_type
            if content_type in _EVENT_TYPES:
                self._dispatch_event(frame)
            elif content_type in _REPLY_TYPES:
                self._dispatch_reply(frame)
            elif content_type == "text/disconnect-notice":
                self.disconnect_notice = frame
            elif content_type == "text/rude-rejection":
                raise ProtocolError("FreeSWITCH sent text/rude-rejection")
            # log/data and anything unknown carry nothing we act on.

    def _dispatch_reply(self, frame: Frame) -> None:
        if not self._replies:
            raise ProtocolError(f"unsolicited {frame.content_type}: {_reply_text(frame)[:80]!r}")
        fut = self._replies.popleft()
        if not fut.done():  # a cancelled waiter still owns its place in the FIFO; its reply is dropped
            fut.set_result(frame)

    def _dispatch_event(self, frame: Frame) -> None:
        try:
            event = decode_event(frame)
        except ProtocolError as exc:
            # Framing is intact, so the stream stays usable: count it and go on.
            self.decode_errors += 1
            log.warning("undecodable ESL event skipped: %s", exc)
            return
        if type(event) is BackgroundJob:
            job = self._jobs.pop(event.job_uuid, None)
            if job is not None and not job.done():
                job.set_result(event)
        self._on_event(event, len(frame.body))

    def _queue_event(self, event: Event, size: int) -> None:
        self._events.append(event, size)
        self._event_ready.set()

    @property
    def buffered(self) -> int:
        """Bytes read from the socket and not yet framed (at most a partial frame and the rest of a read)."""
        return self._parser.buffered

    async def next_event(self, timeout: float) -> Event:
        """The next event from the internal queue (only when no ``on_event`` sink was given).

        Raises:
            TimeoutError: none within ``timeout`` seconds.
            ConnectionLost: the connection ended and the queue is empty.
        """
        async with asyncio.timeout(timeout):
            while not self._events:
                if not self.is_open:
                    raise self._failure()
                self._event_ready.clear()
                await self._event_ready.wait()
        return self._events.popleft()

    # ---- commands --------------------------------------------------------------------------------------

    async def _command_frame(
        self, command: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> Frame:
        if not self.is_open:
            raise self._failure()
        data = encode_command(command, headers or {})
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._replies.append(fut)
        self._writer.write(data)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError as exc:
            # The FIFO is poisoned: the late reply would be matched to the next command.
            error = CommandTimeout(f"{command.split(' ', 2)[:2]}: no reply in {timeout}s")
            self.abort(error)
            raise error from exc

    async def send(
        self, command: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> str:
        """Send a plain command (``event``, ``filter``, ``sendmsg``, ...) and return its ``Reply-Text``.

        Raises:
            CommandError: the reply is ``-ERR ...``.
            CommandTimeout, ConnectionLost: see the module docstring.
        """
        frame = await self._command_frame(command, headers, timeout)
        return _check(command, _reply_text(frame))

    async def api(self, command: str, timeout: float = 10.0, *, check: bool = True) -> str:
        """Run ``api <command>`` and return the exact response body text.

        Args:
            command: the API command line, e.g. ``uuid_answer <uuid>``.
            timeout: deadline for the reply in seconds.
            check: raise ``CommandError`` on ``-ERR``/``-USAGE`` replies (else return them).
        """
        frame = await self._command_frame(f"api {command}", None, timeout)
        text = _reply_text(frame)
        return _check(command, text) if check else text

    async def bgapi(
        self,
        command: str,
        timeout: float = 120.0,
        *,
        reply_timeout: float = 10.0,
        check: bool = True,
        job_uuid: str | None = None,
    ) -> str:
        """Run ``bgapi <command>`` and wait for its BACKGROUND_JOB; return the job's output.

        The caller must be subscribed to BACKGROUND_JOB events. The ``+OK Job-UUID`` reply has the
        command deadline ``reply_timeout`` (missing it drops the connection, like ``api``); the job then
        has ``timeout`` seconds, and missing that raises ``JobTimeout`` with the connection left up.
        ``job_uuid`` names the job (default: a new uuid): a caller that chose it can still recognise the
        BACKGROUND_JOB, which FreeSWITCH sends to every subscribed connection, after this one ended.
        """
        job_uuid = job_uuid or str(uuidlib.uuid4())
        job: asyncio.Future[BackgroundJob] = asyncio.get_running_loop().create_future()
        self._jobs[job_uuid] = job
        try:
            reply = await self._command_frame(f"bgapi {command}", {"Job-UUID": job_uuid}, reply_timeout)
            accepted = _check(command, _reply_text(reply))
            if reply.headers.get("Job-UUID", job_uuid) != job_uuid:
                raise ProtocolError(f"bgapi reply names another job: {accepted!r}")
            try:
                async with asyncio.timeout(timeout):
                    result = await job
            except TimeoutError as exc:
                raise JobTimeout(f"bgapi {command.split(' ', 1)[0]}: no result in {timeout}s") from exc
        finally:
            self._jobs.pop(job_uuid, None)
            if job.done() and not job.cancelled():
                job.exception()  # failed by the drop its own reply timeout caused: nobody else awaits it
        text = result.body or ""
        return _check(command, text) if check else text

    async def subscribe(
        self, events: Iterable[str], custom: Iterable[str] = (), timeout: float = 10.0
    ) -> None:
        """``event json <events> [CUSTOM <subclasses>]``: replaces nothing, adds to the subscription."""
        names = list(events)
        subclasses = list(custom)
        if subclasses:
            names += ["CUSTOM", *subclasses]
        await self.send("event json " + " ".join(names), timeout=timeout)
