"""Short-lived browser identities: a SIP user, a Janus token and a feed token per browser session.

``POST /v1/webrtc/session`` creates one (``BrowserUsers.create``); it lives ``janus.session_ttl_s``. Three
servers learn about it:

* Janus: the token is added with the Admin API (``add_token`` with ``plugins: ["janus.plugin.sip"]``);
  with ``token_auth`` on, Janus refuses requests without a known token (src/auth.c, Janus 1.1.2).
* FreeSWITCH: mod_xml_curl asks the controller's ``/freeswitch/directory`` for the user and its password
  (``controller.api.directory``) when the browser's REGISTER or INVITE is challenged.
* The event feed: ``GET /v1/events?access_token=<feed token>`` (read-only, and only the changes of the calls
  this SIP user placed: ``controller.feed.CallerScope``).

At expiry (a timer task, ``start``/``aclose``) the user leaves the directory and the feed token stops
working at once (``lookup`` and ``feed_subject`` check the clock too), then the Janus token is removed
and the user's registrations are flushed (``unregister``, e.g. ``sofia profile internal flush_inbound_reg
<user>@<domain> reboot`` over ESL). ``aclose`` expires every user, so no token outlives the controller.
Janus keeps tokens in memory only: after a Janus restart the adapter calls ``restore_tokens``, which adds
the live identities' tokens again (``JanusAdapter.on_connect``).

Usernames are ``webrtc-`` and 12 hex digits: never a numeric extension of the static directory.

Exceptions: ``create`` raises ``JanusError`` (``controller.janus.admin``) when Janus refuses the token;
expiry logs failures and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from controller.janus.admin import SIP_PLUGIN, JanusError, JanusUnavailable

if TYPE_CHECKING:
    from controller.janus.adapter import JanusAdapter

__all__ = ["USER_PREFIX", "AdapterTokens", "BrowserUser", "BrowserUsers", "TokenAdmin"]

log = logging.getLogger("switchyard.janus.browsers")

USER_PREFIX: Final = "webrtc-"
_SIP_PLUGIN: Final = ("janus.plugin.sip",)
_CLOSE_DEADLINE_S: Final = 5.0

Unregister = Callable[[str], Awaitable[None]]
"""Flushes the registrations of ``user@domain`` on the PBX."""


class TokenAdmin(Protocol):
    """What ``BrowserUsers`` needs of the Janus Admin API (``controller.janus.admin.JanusAdmin``)."""

    async def add_token(self, token: str, plugins: Sequence[str] = ...) -> None: ...

    async def remove_token(self, token: str) -> None: ...


class AdapterTokens:
    """A ``TokenAdmin`` on the adapter's Admin API, looked up at each call: it exists only while the adapter
    is entered. A missing or closed Admin API (aiohttp's ``RuntimeError`` for a closed session, at shutdown)
    is ``JanusUnavailable``."""

    def __init__(self, adapter: JanusAdapter) -> None:
        self._adapter = adapter

    async def add_token(self, token: str, plugins: Sequence[str] = (SIP_PLUGIN,)) -> None:
        try:
            await self._adapter.admin.add_token(token, plugins)
        except RuntimeError as exc:
            raise JanusUnavailable(f"add_token: {exc}") from exc

    async def remove_token(self, token: str) -> None:
        try:
            await self._adapter.admin.remove_token(token)
        except RuntimeError as exc:
            raise JanusUnavailable(f"remove_token: {exc}") from exc


@dataclass(frozen=True, slots=True)
class BrowserUser:
    """One browser identity."""

    username: str
    password: str
    janus_token: str
    feed_token: str
    display_name: str | None
    expires_at: float  # seconds since the epoch (the registry's clock)
    caller_id_number: str | None = None
    """The directory user a signed-in browser acts as (its caller id); None: the username."""


def _digest(token: str) -> bytes:
    # Feed tokens are looked up by digest, so a dict lookup's timing says nothing about the token itself.
    return hashlib.sha256(token.encode()).digest()


class BrowserUsers:
    """The live browser identities, expired by a timer task."""

    def __init__(
        self,
        admin: TokenAdmin,
        domain: str,
        ttl_s: float,
        *,
        unregister: Unregister | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._admin = admin
        self.domain = domain
        self.ttl_s = ttl_s
        self._unregister = unregister
        self._clock = clock
        self._users: dict[str, BrowserUser] = {}
        self._feeds: dict[bytes, str] = {}
        self._changed = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._users)

    async def create(
        self, display_name: str | None = None, caller_id_number: str | None = None
    ) -> BrowserUser:
        """A new identity, its Janus token added; ``caller_id_number``: the signed-in directory user's.

        Raises:
            JanusError: Janus refused the token or could not be reached (nothing is kept then).
        """
        user = BrowserUser(
            username=USER_PREFIX + secrets.token_hex(6),
            password=secrets.token_urlsafe(18),
            janus_token=secrets.token_urlsafe(24),
            feed_token=secrets.token_urlsafe(24),
            display_name=display_name,
            expires_at=self._clock() + self.ttl_s,
            caller_id_number=caller_id_number,
        )
        await self._admin.add_token(user.janus_token, _SIP_PLUGIN)
        self._users[user.username] = user
        self._feeds[_digest(user.feed_token)] = user.username
        self._changed.set()
        return user

    def lookup(self, username: str) -> BrowserUser | None:
        """The live identity named ``username`` (None if unknown or expired)."""
        user = self._users.get(username)
        return user if user is not None and user.expires_at > self._clock() else None

    def feed_subject(self, token: str) -> str | None:
        """The username of the live identity whose feed token is ``token`` (None if there is none)."""
        username = self._feeds.get(_digest(token))
        return username if username is not None and self.lookup(username) is not None else None

    async def expire(self, username: str) -> bool:
        """End the identity now (False if there was none)."""
        user = self._users.pop(username, None)
        if user is None:
            return False
        self._feeds.pop(_digest(user.feed_token), None)
        try:
            await self._admin.remove_token(user.janus_token)
        except JanusError as exc:
            log.warning("%s: Janus token not removed: %s", username, exc)
        if self._unregister is not None:
            await self._unregister(f"{username}@{self.domain}")
        log.info("browser identity %s expired", username)
        return True

    async def restore_tokens(self) -> None:
        """Add every live identity's Janus token again (a restarted Janus forgot them; adding a known token
        is a no-op). One that fails is logged and the others are still added.

        Raises:
            JanusUnavailable: Janus cannot be reached (the rest would fail alike; its next connect retries).
        """
        restored = 0
        for user in [u for u in self._users.values() if u.expires_at > self._clock()]:
            try:
                await self._admin.add_token(user.janus_token, _SIP_PLUGIN)
            except JanusUnavailable:
                raise
            except JanusError as exc:
                log.warning("%s: Janus token not restored: %s", user.username, exc)
                continue
            restored += 1
        if restored:
            log.info("%d browser identit(ies): Janus tokens restored", restored)

    # ---- timer ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the expiry timer (needs a running loop)."""
        self._timer = asyncio.create_task(self._run(), name="browser identities expiry")

    async def _run(self) -> None:
        while True:
            now = self._clock()
            for user in [u for u in self._users.values() if u.expires_at <= now]:
                await self.expire(user.username)
            self._changed.clear()
            soonest = min((u.expires_at for u in self._users.values()), default=None)
            delay = None if soonest is None else max(0.0, soonest - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._changed.wait()

    async def aclose(self) -> None:
        """Stop the timer and expire every identity (bounded)."""
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.wait({self._timer}, timeout=_CLOSE_DEADLINE_S)
            self._timer = None
        try:
            async with asyncio.timeout(_CLOSE_DEADLINE_S):
                for username in list(self._users):
                    await self.expire(username)
        except TimeoutError:
            log.error("%d browser identit(ies) not expired at shutdown", len(self._users))
