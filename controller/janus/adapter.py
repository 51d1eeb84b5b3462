"""The Janus adapter: the controller's own Janus API session with one Janus, owned for its whole life.

``JanusAdapter`` is used as ``async with``. It opens a WebSocket (``janus-protocol``) to the Janus API with
janus-client's ``JanusSession`` (over WSS when Janus serves only that: ``controller.janus.wss``) and creates
a session; keeps it alive (``keepalive`` every ``janus.keepalive_s``, each answered by an ``ack`` within
``janus.request_timeout_s``: Janus drops a session silent for ``session_timeout``, 60 s by default,
src/janus.c); and when the WebSocket closes or a keepalive goes unanswered (Janus stopped or restarted: its
sessions and tokens live in memory only) it marks itself unhealthy and reconnects with capped, jittered
backoff (``switchyard.retry``). Its tasks (the connection and the stale-session ``SessionReaper``) run in
one ``asyncio.TaskGroup``.

Token auth (``janus.token_auth``): Janus then refuses every Janus API request without a stored token, the
controller's own too. The adapter makes one random token at start, adds it with the Admin API before every
(re)connect (adding an existing token is a no-op, src/auth.c ``janus_auth_add_token``; a restarted Janus
forgot it) and removes it on exit. A restarted Janus forgot the browsers' tokens too: after each (re)connect
the adapter runs its ``on_connect`` callbacks (``controller.janus.browsers.BrowserUsers.restore_tokens``
adds the live identities' tokens again) beside the held session, cancelled if the session is lost first.

janus-client 0.9.0 waits on its transactions without a deadline and does not notice a closed WebSocket
(its pending requests then wait forever): every wait here has a deadline, and the WebSocket's reader task is
watched. Its own session keepalive (an unsupervised task every 30 s) is cancelled: this adapter sends them.

Exceptions: those of ``controller.janus.admin`` (``JanusError``, ``JanusUnavailable``). Failures of
janus-client (it raises bare ``Exception``) and of the WebSocket are mapped to ``JanusUnavailable`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import aiohttp

from controller.janus.admin import JanusAdmin, JanusError, JanusUnavailable
from controller.janus.reaper import SessionReaper
from controller.janus.settings import JanusSettings
from controller.janus.wss import janus_session
from switchyard.retry import Backoff, Reconnect

__all__ = ["JanusAdapter"]

log = logging.getLogger(__name__)


class JanusAdapter:
    """Adapter for one Janus instance (see the module docstring).

    Args:
        settings: ``Settings.janus``.
        http: the HTTP session of the Admin API (default: the adapter's own).
        sleep, rng, monotonic: time and randomness, injectable for tests.
    """

    def __init__(
        self,
        settings: JanusSettings,
        *,
        http: aiohttp.ClientSession | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.name = settings.server_name
        self._http = http
        self._own_http = http is None
        self._admin: JanusAdmin | None = None
        self._sleep = sleep
        self._monotonic = monotonic
        self._backoff = Backoff(settings.backoff, rng)
        self.token: str | None = secrets.token_urlsafe(24) if settings.token_auth else None
        self.session: Any = None  # janus_client.JanusSession while healthy: plugins attach to it
        self.session_id: int | None = None
        self.last_error: str | None = None
        self.connects = 0
        self._reaper: SessionReaper | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_connect: list[Callable[[], Awaitable[None]]] = []

    # ---- public state ----------------------------------------------------------------------------------

    @property
    def admin(self) -> JanusAdmin:
        """The Admin API of this Janus (available once the adapter is entered)."""
        if self._admin is None:
            raise RuntimeError("JanusAdapter is not started (use it as async with)")
        return self._admin

    @property
    def reaper(self) -> SessionReaper:
        """The stale-session reaper (available once the adapter is entered)."""
        if self._reaper is None:
            raise RuntimeError("JanusAdapter is not started (use it as async with)")
        return self._reaper

    @property
    def healthy(self) -> bool:
        """True while the controller's session is up and answering keepalives."""
        return self.session_id is not None

    async def wait_healthy(self, timeout: float) -> None:
        """Wait until the adapter is healthy.

        Raises:
            JanusUnavailable: not healthy within ``timeout`` seconds (the reason names the last error).
        """
        try:
            async with asyncio.timeout(timeout):
                while not self.healthy:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError as exc:
            raise JanusUnavailable(
                f"janus {self.name}: not healthy within {timeout}s: {self.last_error}"
            ) from exc

    async def wait_unhealthy(self, timeout: float) -> None:
        """Wait until the adapter has lost its session (raises ``TimeoutError`` after ``timeout``)."""
        async with asyncio.timeout(timeout):
            while self.healthy:
                self._changed.clear()
                await self._changed.wait()

    def on_connect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` after every (re)connect (its ``JanusError`` is logged, not raised)."""
        self._on_connect.append(callback)

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        s = self.settings
        if self._http is None:
            self._http = aiohttp.ClientSession()
        self._admin = JanusAdmin(s.admin_url, s.admin_key(), self._http, s.request_timeout_s)
        self._reaper = SessionReaper(self._admin, s.reap_after_s, lambda: self.session_id, self._monotonic)
        self._task = asyncio.create_task(self._run(), name=f"janus {self.name}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reconnecting, destroy the controller's session, remove its token, close the HTTP session."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(2 * self.settings.request_timeout_s):
                    await task
        if self.token is not None and self._admin is not None:
            try:
                await self._admin.remove_token(self.token)
            except JanusError as exc:
                log.info("janus %s: token not removed: %s", self.name, exc)
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._supervise(), name=f"janus {self.name} session")
            if self.settings.reap_interval_s > 0:
                tg.create_task(
                    self.reaper.run(self.settings.reap_interval_s), name=f"janus {self.name} reaper"
                )

    # ---- the connection --------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        loop = Reconnect(
            f"janus {self.name}", self._connect, self._held, self._backoff, (JanusError,), log,
            lost="session lost", sleep=self._sleep, monotonic=self._monotonic,
        )  # fmt: skip
        await loop.run()

    async def _connect(self) -> Any:
        """``_open``, marking the adapter unhealthy with the reason when it fails."""
        try:
            return await self._open()
        except JanusError as exc:
            self._lost(exc)
            raise

    async def _held(self, session: Any) -> str:
        """Hold the session until it is lost, running the ``on_connect`` callbacks beside; returns why."""
        connected = asyncio.create_task(self._connected(), name=f"janus {self.name} on connect")
        try:
            await self._hold(session)
        except JanusError as exc:
            self._lost(exc)
        finally:
            connected.cancel()
            await asyncio.wait({connected}, timeout=self.settings.request_timeout_s)
            self._lost(None)
            await self._close(session)
        return self.last_error or ""

    async def _connected(self) -> None:
        for callback in self._on_connect:
            try:
                await callback()
            except JanusError as exc:
                log.warning("janus %s: after connecting: %s", self.name, exc)

    async def _open(self) -> Any:
        """Add the token, connect, create a session and learn its id; returns the ``JanusSession``."""
        s = self.settings
        if self.token is not None:
            await self.admin.add_token(self.token)
        session = janus_session(s, self.token)
        try:
            async with asyncio.timeout(s.connect_timeout_s):
                await session.create()
            await _stop_library_keepalive(session)
            # Janus's ack carries the session's id (janus_create_message in src/janus.c), which
            # janus-client keeps private.
            self.session_id = await self._keepalive(session)
        except BaseException as exc:
            await self._close(session)
            if isinstance(exc, TimeoutError):
                raise JanusUnavailable(f"create: no session within {s.connect_timeout_s}s") from exc
            if isinstance(exc, JanusError) or not isinstance(exc, Exception):
                raise  # ours already, or cancellation
            raise JanusUnavailable(f"create: {exc or type(exc).__name__}") from exc  # janus-client's
        self.session = session
        self.last_error = None
        self.connects += 1
        self._changed.set()
        log.info("janus %s: session %d on %s", self.name, self.session_id, s.api_url)
        return session

    async def _hold(self, session: Any) -> None:
        """Keep the session alive until the WebSocket closes or a keepalive goes unanswered."""
        reader: asyncio.Task[None] = session.transport.receive_message_task
        while True:
            done, _ = await asyncio.wait({reader}, timeout=self.settings.keepalive_s)
            if done:
                cause = None if reader.cancelled() else reader.exception()
                raise JanusUnavailable(f"the WebSocket closed ({cause or 'by Janus'})")
            await self._keepalive(session)

    async def _keepalive(self, session: Any) -> int:
        """One ``keepalive`` answered by ``ack`` within the request deadline; returns the session id."""
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                tx = await session.send({"janus": "keepalive"})
                try:
                    reply: dict[str, Any] = await tx.get(matcher=lambda m: m.get("janus") in ("ack", "error"))
                finally:
                    await tx.done()
        except TimeoutError as exc:
            raise JanusUnavailable(f"keepalive: no ack within {self.settings.request_timeout_s}s") from exc
        except Exception as exc:  # janus-client and websockets raise plain exceptions
            raise JanusUnavailable(f"keepalive: {exc or type(exc).__name__}") from exc
        if reply.get("janus") == "error":
            error = reply.get("error") or {}
            raise JanusError(int(error.get("code", 0)), str(error.get("reason", "")))
        return int(reply["session_id"])

    def _lost(self, exc: BaseException | None) -> None:
        if exc is not None:
            self.last_error = str(exc)
        if self.session_id is not None:
            self.session_id = None
            self.session = None
            self._changed.set()

    async def _close(self, session: Any) -> None:
        """Destroy the session if Janus still answers, then close the WebSocket; bounded by the deadline."""
        transport = session.transport
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.settings.request_timeout_s):
                if transport.connected and getattr(session, "created", False):
                    tx = await session.send({"janus": "destroy"})
                    try:
                        await tx.get(matcher=lambda m: m.get("janus") in ("success", "error"))
                    finally:
                        await tx.done()
        await _stop_library_keepalive(session)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.settings.request_timeout_s):
                await transport.disconnect()


async def _stop_library_keepalive(session: Any) -> None:
    task: asyncio.Task[None] | None = getattr(session, "keepalive_task", None)
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
