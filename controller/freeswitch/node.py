"""The FreeSWITCH adapter: one node, one inbound ESL connection, owned for its whole life.

``FreeSwitchNode`` connects, authenticates, subscribes to the events the controller uses (FreeSWITCH drops
a listener that falls 500 events behind, so we take only what we need), resyncs the live channels, probes
liveness, and reconnects with capped, jittered backoff when the connection ends. Used as ``async with``;
its tasks run in one ``asyncio.TaskGroup`` per connection.

Events wait for the consumer in a bounded backlog (``event_backlog`` events, ``event_backlog_bytes``):
when it is full the node stops reading from FreeSWITCH until half is consumed, rather than drop events
(the policy, and what FreeSWITCH does meanwhile, in ``controller.freeswitch.backlog``). A frame beyond
``max_header_bytes`` / ``max_body_bytes`` is a protocol error: logged, the connection dropped, and the node
reconnects and resyncs like after any loss.

After every (re)connect a ``ChannelsResync`` (rows of ``show channels as json`` / ``show calls as json``)
is put into the event stream at the point where the subscription started, so the call model is correct
again without a restart; it carries when the previous connection ended (``down_since_us``: channels that
vanished meanwhile were last known up then). Events before it are older than the snapshot; events after it
are newer or repeat what the snapshot says, and the call model applies them idempotently.

Exceptions: those of ``controller.freeswitch.connection``. An ``AuthenticationError`` is final: the node
stops, and ``api``/``bgapi``/``events`` raise it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Final, Self

import orjson

from controller.freeswitch.backlog import EventBacklog
from controller.freeswitch.commands import SHOW_CALLS, SHOW_CHANNELS, STATUS, Command
from controller.freeswitch.connection import AuthenticationError, ConnectionLost, EslConnection
from controller.freeswitch.events import ChannelsResync, Event
from controller.freeswitch.protocol import EslError, FrameLimits, ProtocolError
from controller.settings import FreeSwitchNodeSettings
from switchyard.retry import Backoff, Reconnect

__all__ = ["CUSTOM_EVENTS", "SUBSCRIBED_EVENTS", "FreeSwitchNode", "NodeEvent", "parse_show_json"]

log = logging.getLogger(__name__)

SUBSCRIBED_EVENTS: Final = (
    "CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_ANSWER", "CHANNEL_PARK",
    "CHANNEL_UNPARK", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "DTMF", "PLAYBACK_START", "PLAYBACK_STOP", "BACKGROUND_JOB",
    "MEDIA_BUG_STOP", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "RECORD_START", "RECORD_STOP",
)  # fmt: skip
"""The plain events the controller acts on (BACKGROUND_JOB must be named explicitly for bgapi)."""

CUSTOM_EVENTS: Final = (
    "mod_audio_stream::connect", "mod_audio_stream::disconnect", "mod_audio_stream::error",
    "mod_audio_stream::json", "mod_audio_stream::play",
    # SIP registrations (mod_sofia.h MY_EVENT_REGISTER / _UNREGISTER / _EXPIRE): controller/registrations.py
    "sofia::register", "sofia::unregister", "sofia::expire",
)  # fmt: skip

NodeEvent = Event | ChannelsResync
_Pending = asyncio.Future[ChannelsResync]


def parse_show_json(text: str) -> tuple[Mapping[str, str], ...]:
    """Rows of ``show <what> as json``: ``{"row_count":N,"rows":[...]}``, no ``rows`` when N is 0.

    Raises:
        ProtocolError: the text is not that shape.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"show ... as json is not JSON: {text[:80]!r}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("row_count"), int):
        raise ProtocolError(f"show ... as json has no row_count: {text[:80]!r}")
    rows = data.get("rows", [])
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ProtocolError("show ... as json rows are not objects")
    return tuple({str(k): "" if v is None else str(v) for k, v in row.items()} for row in rows)


class FreeSwitchNode:
    """Adapter for one FreeSWITCH node (see the module docstring)."""

    def __init__(
        self,
        settings: FreeSwitchNodeSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self._sleep = sleep
        self._monotonic = monotonic
        self._clock = clock
        self._down_since_us = 0  # when the last connection ended (wall clock, µs); 0 before the first
        self._backoff = Backoff(settings.backoff, rng)
        self._conn: EslConnection | None = None
        self._connected = asyncio.Event()
        self.backlog = EventBacklog[NodeEvent | _Pending](
            settings.event_backlog, settings.event_backlog_bytes, f"node {self.name}"
        )
        self._event_ready = asyncio.Event()
        self._limits = FrameLimits(settings.max_header_bytes, settings.max_body_bytes)
        self._failure: EslError | None = None
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self.connects = 0

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._supervise(), name=f"freeswitch {self.name}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reconnecting, close the connection (``exit``), and end the event stream."""
        self._stopped = True
        conn = self._conn
        if conn is not None:
            await conn.close(self.settings.deadlines.close)
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(self.settings.deadlines.close):
                    await task
        self._connected.set()
        self._event_ready.set()

    @property
    def overflows(self) -> int:
        """Times the event backlog filled and reading paused until the consumer caught up."""
        return self.backlog.fills

    @property
    def buffered_bytes(self) -> int:
        """Bytes received from FreeSWITCH and not yet consumed: the backlog's events and the partial frame."""
        conn = self._conn
        return self.backlog.bytes + (conn.buffered if conn is not None else 0)

    @property
    def connected(self) -> bool:
        """True while an authenticated, subscribed connection is up."""
        return self._conn is not None and self._conn.is_open

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the node is connected.

        Raises:
            AuthenticationError: the node stopped because FreeSWITCH refused the password.
            ConnectionLost: not connected within ``timeout`` seconds, or the node is closed.
        """
        await self._connection(timeout)

    async def _connection(self, timeout: float) -> EslConnection:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._failure is not None:
                        raise self._failure
                    if self._stopped:
                        raise ConnectionLost(f"node {self.name} is closed")
                    conn = self._conn
                    if conn is not None and conn.is_open:
                        return conn
                    self._connected.clear()
                    await self._connected.wait()
        except TimeoutError as exc:
            raise ConnectionLost(f"node {self.name}: not connected within {timeout}s") from exc

    async def _supervise(self) -> None:
        loop = Reconnect(
            f"node {self.name}", self._open, self._run_session, self._backoff, (EslError,), log,
            fatal=(AuthenticationError,), stopped=lambda: self._stopped, sleep=self._sleep,
            monotonic=self._monotonic,
        )  # fmt: skip
        try:
            await loop.run()
        except AuthenticationError as exc:
            log.error("node %s: %s; not retrying", self.name, exc)
            self._failure = exc
            self._connected.set()
            self._event_ready.set()

    async def _open(self) -> EslConnection:
        s = self.settings
        conn = await EslConnection.open(
            s.host, s.port, s.secret(), connect_timeout=s.deadlines.connect,
            auth_timeout=s.deadlines.auth, on_event=self._push, limits=self._limits, backlog=self.backlog,
        )  # fmt: skip
        try:
            await conn.subscribe(SUBSCRIBED_EVENTS, CUSTOM_EVENTS, timeout=s.deadlines.command)
        except BaseException:
            await conn.close(s.deadlines.close)
            raise
        return conn

    async def _run_session(self, conn: EslConnection) -> str:
        """Hold one connection until it ends; returns why it ended ('' when it just closed)."""
        why = ""
        placeholder: _Pending = asyncio.get_running_loop().create_future()
        self._push(placeholder)
        self._conn = conn
        self.connects += 1
        self._connected.set()
        log.info("node %s: connected to %s:%s", self.name, self.settings.host, self.settings.port)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._resync(conn, placeholder))]
                if self.settings.keepalive > 0:
                    tasks.append(tg.create_task(self._keepalive(conn)))
                try:
                    await asyncio.shield(conn.closed)
                except EslError as exc:
                    why = str(exc)
                for task in tasks:
                    task.cancel()
        finally:
            if not placeholder.done():
                placeholder.set_exception(ConnectionLost("connection ended before the resync"))
            placeholder.exception()  # retrieved here: events() skips a failed resync
            self._conn = None
            self._down_since_us = int(self._clock() * 1_000_000)
            await conn.close(self.settings.deadlines.close)
        return why

    async def _resync(self, conn: EslConnection, placeholder: _Pending) -> None:
        timeout = self.settings.deadlines.resync
        try:
            channels = parse_show_json(await conn.api(SHOW_CHANNELS.line, timeout))
            calls = parse_show_json(await conn.api(SHOW_CALLS.line, timeout))
        except ProtocolError as exc:
            log.error("node %s: resync failed: %s", self.name, exc)
            placeholder.set_exception(exc)
            conn.abort(exc)
            return
        except EslError as exc:
            placeholder.set_exception(exc)
            return
        placeholder.set_result(ChannelsResync(self.name, channels, calls, self._down_since_us))
        self._event_ready.set()

    async def _keepalive(self, conn: EslConnection) -> None:
        """Probe the node; a probe that misses the command deadline drops the connection."""
        with contextlib.suppress(EslError):
            while conn.is_open:
                await self._sleep(self.settings.keepalive)
                await conn.api(STATUS.line, self.settings.deadlines.command)

    # ---- events ----------------------------------------------------------------------------------------

    def _push(self, item: NodeEvent | _Pending, size: int = 0) -> None:
        self.backlog.append(item, size)
        self._event_ready.set()

    async def events(self) -> AsyncIterator[NodeEvent]:
        """All events of this node across reconnects, with a ``ChannelsResync`` after each connect.

        Ends when the node is closed. Raises ``AuthenticationError`` if the password was refused.
        """
        events = self.backlog
        while True:
            while events:
                item = events.popleft()
                if isinstance(item, asyncio.Future):
                    try:
                        item = await item
                    except EslError:
                        continue
                yield item
            if self._failure is not None:
                raise self._failure
            if self._stopped:
                return
            self._event_ready.clear()
            await self._event_ready.wait()

    # ---- commands --------------------------------------------------------------------------------------

    async def execute(
        self,
        command: Command,
        timeout: float | None = None,
        *,
        check: bool = True,
        job_uuid: str | None = None,
    ) -> str:
        """Send ``command``: as ``bgapi`` when it runs in the background (``timeout`` is then its job's
        deadline, ``job_uuid`` its Job-UUID), else as ``api``. Raises what ``api`` / ``bgapi`` raise."""
        if command.background:
            return await self.bgapi(command.line, timeout, check=check, job_uuid=job_uuid)
        return await self.api(command.line, timeout, check=check)

    async def api(self, command: str, timeout: float | None = None, *, check: bool = True) -> str:
        """``api <command>`` on the current connection (waits up to the deadline for one).

        Raises:
            CommandError, CommandTimeout, ConnectionLost, AuthenticationError: see connection.py.
        """
        timeout = timeout or self.settings.deadlines.command
        conn = await self._connection(timeout)
        return await conn.api(command, timeout, check=check)

    async def bgapi(
        self, command: str, timeout: float | None = None, *, check: bool = True, job_uuid: str | None = None
    ) -> str:
        """``bgapi <command>``; returns the BACKGROUND_JOB output (e.g. ``+OK <uuid>`` of originate)."""
        deadlines = self.settings.deadlines
        conn = await self._connection(deadlines.command)
        return await conn.bgapi(
            command,
            timeout or deadlines.bgapi,
            reply_timeout=deadlines.command,
            check=check,
            job_uuid=job_uuid,
        )
