"""The stale-session reaper: destroys Janus sessions that have carried no live call for too long.

Janus ends a session only when its client stops sending keepalives (``session_timeout``, 60 s by default);
a browser tab left open keeps its session, its SIP registration and its handle forever. Every
``janus.reap_interval_s`` the reaper lists the sessions and their handles through the Admin API and asks
``handle_info`` about each handle.

A handle has a **live call** when (fields of ``handle_info``: src/janus.c,
``janus_process_incoming_admin_request``, and the SIP plugin's ``janus_sip_query_session``,
src/plugins/janus_sip.c, tag v1.1.2):

* ``plugin_specific.call_status`` is anything but ``"idle"`` (the SIP plugin's call states: ``inviting``,
  ``invited``, ``incall``, ``incall_reinviting``, ``incall_reinvited``, ``closing``), or
* ``flags.ready`` is true and ``flags.stopped`` false: the handle's PeerConnection finished ICE and DTLS
  (``JANUS_ICE_HANDLE_WEBRTC_READY``) and was not hung up, whatever the plugin.

A session is idle when none of its handles has a live call (a session without handles is idle). The reaper
remembers when it first saw each session idle (its own monotonic clock) and destroys (``destroy_session``)
a session seen idle in every pass for ``janus.reap_after_s``; a live call forgets that time. The
controller's own session is never reaped. A reaped session therefore lived idle between ``reap_after_s``
and ``reap_after_s + reap_interval_s``.

Errors: a pass that cannot reach Janus (``JanusUnavailable``) is logged and the next one tries again;
sessions and handles that vanish during a pass (``JanusError`` 458/459) are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from controller.janus.admin import HANDLE_NOT_FOUND, SESSION_NOT_FOUND, JanusAdmin, JanusError

__all__ = ["SessionReaper", "has_live_call"]

log = logging.getLogger(__name__)

_IDLE_CALL: Final = "idle"
_GONE: Final = (SESSION_NOT_FOUND, HANDLE_NOT_FOUND)


def has_live_call(info: Mapping[str, Any]) -> bool:
    """Whether a handle (its ``handle_info``) carries a live call (rule in the module docstring)."""
    specific = info.get("plugin_specific")
    if isinstance(specific, Mapping):
        status = specific.get("call_status")
        if isinstance(status, str) and status != _IDLE_CALL:
            return True
    flags = info.get("flags")
    return isinstance(flags, Mapping) and flags.get("ready") is True and flags.get("stopped") is not True


class SessionReaper:
    """Finds and destroys idle sessions of one Janus.

    Args:
        admin: the Admin API of that Janus.
        reap_after_s: how long a session may stay idle.
        own_session: the controller's own session id (never reaped), or None.
        monotonic: the clock (injectable for tests).
    """

    def __init__(
        self,
        admin: JanusAdmin,
        reap_after_s: float,
        own_session: Callable[[], int | None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.admin = admin
        self.reap_after_s = reap_after_s
        self._own_session = own_session
        self._monotonic = monotonic
        self._idle_since: dict[int, float] = {}
        self.reaped = 0
        self.sessions: int | None = None

    async def run(self, interval_s: float) -> None:
        """Sweep every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sweep()
            except JanusError as exc:
                log.warning("janus reaper: pass skipped: %s", exc)

    async def sweep(self) -> list[int]:
        """One pass: look at every session, destroy those idle too long; returns their ids.

        Raises:
            JanusError: the session list could not be read (e.g. ``JanusUnavailable``).
        """
        sessions = await self.admin.list_sessions()
        self.sessions = len(sessions)
        own = self._own_session()
        now = self._monotonic()
        self._idle_since = {sid: t for sid, t in self._idle_since.items() if sid in sessions}
        reaped: list[int] = []
        for session_id in sessions:
            if session_id == own:
                continue
            live = await self._is_live(session_id)
            if live is None or live:
                self._idle_since.pop(session_id, None)
                continue
            since = self._idle_since.setdefault(session_id, now)
            if now - since >= self.reap_after_s and await self._destroy(session_id):
                reaped.append(session_id)
        return reaped

    async def _is_live(self, session_id: int) -> bool | None:
        """Whether a session has a live call (None: it vanished during the pass)."""
        try:
            for handle_id in await self.admin.list_handles(session_id):
                try:
                    info = await self.admin.handle_info(session_id, handle_id)
                except JanusError as exc:
                    if exc.code == HANDLE_NOT_FOUND:
                        continue
                    raise
                if has_live_call(info):
                    return True
        except JanusError as exc:
            if exc.code in _GONE:
                return None
            raise
        return False

    async def _destroy(self, session_id: int) -> bool:
        try:
            await self.admin.destroy_session(session_id)
        except JanusError as exc:
            if exc.code != SESSION_NOT_FOUND:
                raise
            return False
        finally:
            self._idle_since.pop(session_id, None)
        self.reaped += 1
        log.info("janus reaper: destroyed session %d (no live call for %.0fs)", session_id, self.reap_after_s)
        return True
