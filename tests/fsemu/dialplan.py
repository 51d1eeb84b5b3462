"""Running an extension's applications after a transfer or an originate, and the applications the loopback
dialplan does not know: ``hangup``, ``conference`` and ``bridge`` (plus answer/park/echo/playback).

switch_core_state_machine.c switch_core_standard_on_execute: applications run in order while the channel stays
in CS_EXECUTE; after the last one an inbound or outbound channel still in CS_EXECUTE is hung up
(NORMAL_CLEARING). ``park`` blocks there until something moves the channel (the emulator stops the run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tests.fsemu.apps import Apps
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore
from tests.fsemu.features import Features
from tests.fsemu.hangup import Hangups
from tests.fsemu.loopback import Loopback
from tests.fsemu.sofia import Sofia

if TYPE_CHECKING:
    from tests.fsemu.outbound import Outbound

# switch_channel.c switch_channel_handle_cause: without continue_on_fail these causes still continue.
ALWAYS_CONTINUE = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL"})
App = Callable[[EmulatedChannel, str, bool], Awaitable[None]]


class Dialplan:
    """Runs application lists on channels; installs hangup/conference/bridge into the loopback runner."""

    def __init__(
        self,
        core: SwitchCore,
        apps: Apps,
        *,
        sofia: Sofia,
        loopback: Loopback,
        hangups: Hangups,
        features: Features,
    ) -> None:
        self.core, self.apps, self.sofia, self.loopback = core, apps, sofia, loopback
        self.hangups, self.features = hangups, features
        self.outbound: Outbound | None = None  # set by the emulator (bridge targets)
        loopback.extra_apps.update({"hangup": self._hangup, "bridge": self._bridge, "answer": self._answer})

    def install(self, name: str, app: App) -> None:
        """Make ``app`` available to every dialplan run (also sendmsg and the inbound dialplan)."""
        self.loopback.extra_apps[name] = app

    # -- media helpers ---------------------------------------------------------------------------
    def pre_answer(self, ch: EmulatedChannel) -> None:
        """switch_channel_pre_answer: early media on a SIP leg (CHANNEL_PROGRESS_MEDIA, EARLY)."""
        if ch.kind == "sofia" and ch.uuid in self.sofia.calls:
            self.sofia.pre_answer(ch)

    def answer(self, ch: EmulatedChannel) -> None:
        """switch_channel_answer without an application: SIP 200 OK, or the loopback pair."""
        if ch.answered:
            return
        if ch.kind == "sofia" and ch.uuid in self.sofia.calls:
            self.sofia.answer(ch)
            return
        peer = ch.loopback_peer
        if peer is not None and ch.direction == "inbound" and not peer.answered:
            self.apps.mark_answered(peer)
        self.apps.mark_answered(ch)

    # -- running ---------------------------------------------------------------------------------
    async def run_extension(self, ch: EmulatedChannel, actions: list[tuple[str, str]]) -> None:
        """Execute ``actions``; stop on hangup, transfer or park; hang up after the last one."""
        gen = ch.dialplan_gen
        for index, (app, data) in enumerate(actions):
            if not ch.alive or ch.dialplan_gen != gen:
                return
            await self.loopback.run_app(ch, app, data, first=index == 0)
            if ch.parked:
                return
        if ch.alive and ch.dialplan_gen == gen and not ch.parked:
            self.hangups.hangup(ch, "NORMAL_CLEARING")

    async def _answer(self, ch: EmulatedChannel, data: str, first: bool) -> None:
        if ch.loopback_peer is not None and ch.direction == "inbound":
            self.apps.answer_loopback(ch)
            return
        app_uuid = self.apps.execute(ch, "answer", data, first=first)
        self.answer(ch)
        self.apps.complete(ch, "answer", data, app_uuid)

    async def _hangup(self, ch: EmulatedChannel, data: str, first: bool) -> None:
        app_uuid = self.apps.execute(ch, "hangup", data, first=first)
        self.hangups.hangup(ch, (data.strip() or "NORMAL_CLEARING").upper())
        self.apps.complete(ch, "hangup", data, app_uuid)

    # -- bridge ----------------------------------------------------------------------------------
    async def _bridge(self, ch: EmulatedChannel, data: str, first: bool) -> None:
        """mod_dptools.c audio_bridge_function: originate the B-leg, bridge, and decide what follows."""
        app_uuid = self.apps.execute(ch, "bridge", data, first=first)
        gen = ch.dialplan_gen
        peer, cause = None, "CHAN_NOT_IMPLEMENTED"
        if self.outbound is not None:
            peer, cause = await self.outbound.dial(data, originator=ch)
        if peer is None:
            ch.set_var("originate_failed_cause", cause)
            self.apps.complete(ch, "bridge", data, app_uuid)
            continue_on_fail = (ch.get_var("continue_on_fail") or "").lower() in ("true", "yes", "1")
            if ch.alive and not continue_on_fail and cause not in ALWAYS_CONTINUE:
                self.hangups.hangup(ch, cause)
            return
        await self._bridged(ch, peer)
        self.apps.complete(ch, "bridge", data, app_uuid)
        if ch.alive and ch.dialplan_gen == gen:
            self._after_bridge(ch)

    async def _bridged(self, ch: EmulatedChannel, peer: EmulatedChannel) -> None:
        """switch_ivr_bridge.c switch_ivr_multi_threaded_bridge: answer A, CHANNEL_BRIDGE on A, wait."""
        self.answer(ch)
        ch.bridge_done = asyncio.Event()
        self.features.join(ch, peer)
        ch.set_vars([("bridge_to", peer.uuid), ("last_bridge_to", peer.uuid)])
        self.apps.set_state(peer, "CS_EXCHANGE_MEDIA", 5)
        done = asyncio.ensure_future(ch.bridge_done.wait())
        released = asyncio.ensure_future(ch.wait_released())
        try:
            await asyncio.wait({done, released}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (done, released):
                task.cancel()
            await asyncio.gather(done, released, return_exceptions=True)
            ch.bridge_done = None

    def _after_bridge(self, ch: EmulatedChannel) -> None:
        """switch_ivr_bridge.c: hangup_after_bridge / park_after_bridge, else the next application."""
        if _true(ch.get_var("hangup_after_bridge")):
            self.hangups.hangup(ch, "NORMAL_CLEARING")
        elif _true(ch.get_var("park_after_bridge")):
            self.apps.park(ch)


def _true(value: str | None) -> bool:
    """switch_true: yes/on/true/t/enabled/active/allow or a non-zero number."""
    text = (value or "").strip().lower()
    return text in ("yes", "on", "true", "t", "enabled", "active", "allow") or (
        text.isdigit() and int(text) > 0
    )
