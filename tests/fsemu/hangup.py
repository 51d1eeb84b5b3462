"""Hangup, as the captures order it: CHANNEL_HANGUP at once; ~20 ms later the running application completes,
CS_HANGUP, the loopback peer hangs up, CS_REPORTING + CHANNEL_HANGUP_COMPLETE, the peer is destroyed, then
CHANNEL_DESTROY. A leg joined with uuid_bridge takes its bridge peer down too (no park_after_bridge).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.fsemu.apps import Apps
from tests.fsemu.cdr import cdr_variables, rtp_stats
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore, now_us
from tests.fsemu.wire import HeaderValue

TEARDOWN_DELAY = 0.02
WAIT_LIMIT = 5.0


class Hangups:
    """Tears channels down and fires the hangup event sequence."""

    def __init__(self, core: SwitchCore, apps: Apps) -> None:
        self.core = core
        self.apps = apps
        self.on_destroy: list[Callable[[EmulatedChannel], None]] = []
        self.on_hangup_state: list[Callable[[EmulatedChannel], None]] = []

    def hangup(
        self, ch: EmulatedChannel, cause: str = "NORMAL_CLEARING", *, delay: float = TEARDOWN_DELAY
    ) -> None:
        """Start hanging ``ch`` up: CHANNEL_HANGUP now, the rest in an owned task."""
        if ch.hangup_started:
            return
        ch.hangup_started = True
        ch.hangup_cause = cause
        ch.answer_state = "hangup"
        ch.state_number = 10
        ch.times.hangup = now_us()
        if ch.kind == "sofia":
            by_caller = ch.get_var("sip_hangup_disposition") is None and cause == "NORMAL_CLEARING"
            if by_caller and ch.remote_bye:
                ch.set_vars([("sip_term_status", "200"), ("proto_specific_hangup_cause", "sip:200")])
                ch.set_var("sip_term_cause", "16")
        self.core.fire_channel(ch, "CHANNEL_HANGUP")
        ch.hangup_event.set()
        if ch.playback is not None:
            ch.playback.wake.set()
        self.core.spawn(self._teardown(ch, delay), name=f"teardown-{ch.uuid}")

    async def _teardown(self, ch: EmulatedChannel, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await self._finish_apps(ch)
        if ch.kind == "sofia" and ch.get_var("sip_hangup_disposition") is None:
            ch.set_vars(_disposition(ch))
        # switch_ivr.c switch_ivr_park always ends with CHANNEL_UNPARK (the sofia capture did not subscribe).
        self.apps.unpark(ch)
        peer_bridge = self._unbridge(ch)
        self.apps.set_state(ch, "CS_HANGUP")
        # switch_core_state_machine.c switch_core_session_hangup_state: media bugs go before CALLSTATE HANGUP.
        for callback in self.on_hangup_state:
            callback(ch)
        self.apps.set_callstate(ch, "HANGUP")
        if ch.profile is not None:
            ch.profile["Channel-Hangup-Time"] = str(ch.times.hangup)
        peer = ch.loopback_peer
        if peer is not None and not peer.hangup_started:
            self.hangup(peer, ch.hangup_cause or "NORMAL_CLEARING", delay=0)
        if peer_bridge is not None and not peer_bridge.hangup_started:
            if peer_bridge.bridge_done is not None:
                peer_bridge.bridge_done.set()  # the bridge app returns; hangup_after_bridge decides
            else:
                self.hangup(peer_bridge, "NORMAL_CLEARING", delay=0)
        self._report(ch)
        if peer is not None and delay:
            await self._wait(peer.destroyed)
        self.destroy(ch)

    async def _finish_apps(self, ch: EmulatedChannel) -> None:
        tasks = [t for t in (ch.app_task, ch.playback.task if ch.playback else None) if t is not None]
        for task in tasks:
            if not task.done():
                await self._wait_task(task)

    def unbridge(self, ch: EmulatedChannel) -> EmulatedChannel | None:
        """End ``ch``'s bridge (CHANNEL_UNBRIDGE on the originator's side); returns the former peer."""
        return self._unbridge(ch)

    def _unbridge(self, ch: EmulatedChannel) -> EmulatedChannel | None:
        other = ch.bridged_to
        if other is None:
            return None
        ch.bridged_to = None
        other.bridged_to = None
        a_side, b_side = (ch, other) if ch.bridge_role == "originator" else (other, ch)
        if a_side.hangup_started and b_side.alive:
            return other  # only the originator's side reports the unbridge (capture: on A1 when A2 dies)
        a_side.set_vars([("last_bridge_to", b_side.uuid), ("bridge_channel", b_side.name)])
        a_side.set_vars([("bridge_uuid", b_side.uuid), ("signal_bond", b_side.uuid)])
        a_side.set_vars(
            [("last_sent_callee_id_name", "0000000000"), ("last_sent_callee_id_number", "0000000000")]
        )
        a_side.set_vars(
            [("last_bridge_hangup_cause", "NORMAL_CLEARING"), ("bridge_hangup_cause", "NORMAL_CLEARING")]
        )
        pre = [("Bridge-A-Unique-ID", a_side.uuid), ("Bridge-B-Unique-ID", b_side.uuid)]
        self.core.fire_channel(a_side, "CHANNEL_UNBRIDGE", pre=pre)
        a_side.set_var("call_uuid", a_side.uuid)
        b_side.set_var("bridge_to", None)
        b_side.set_var("call_uuid", b_side.uuid)
        return other

    def _report(self, ch: EmulatedChannel) -> None:
        self.apps.set_state(ch, "CS_REPORTING", 11)
        ch.set_vars(cdr_variables(ch, ch.times, ch.digits))
        if ch.kind == "loopback":
            ch.set_var("is_loopback", "1")
        else:
            packets = max(0, (ch.times.hangup - ch.times.created) // (ch.ptime_ms * 1000))
            ch.set_vars(rtp_stats(int(packets), 0, ch.ptime_ms * 8))
        pre = [("Hangup-Cause", ch.hangup_cause or "NORMAL_CLEARING")]
        self.core.fire_channel(ch, "CHANNEL_HANGUP_COMPLETE", pre=pre)

    def destroy(self, ch: EmulatedChannel) -> None:
        """CHANNEL_DESTROY (+ CS_DESTROY) and removal from the channel table."""
        for callback in self.on_destroy:
            callback(ch)
        ch.state_number = 12
        self.core.fire_channel(ch, "CHANNEL_DESTROY")
        self.apps.set_state(ch, "CS_DESTROY")
        self.core.channels.pop(ch.uuid, None)
        ch.destroyed.set()

    async def _wait(self, event: asyncio.Event) -> None:
        try:
            async with asyncio.timeout(WAIT_LIMIT):
                await event.wait()
        except TimeoutError:
            return

    async def _wait_task(self, task: asyncio.Task[object]) -> None:
        try:
            async with asyncio.timeout(WAIT_LIMIT):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
        except asyncio.CancelledError:
            if not task.cancelled():
                raise


def _disposition(ch: EmulatedChannel) -> list[tuple[str, HeaderValue]]:
    """mod_sofia.c sofia_on_hangup: BYE if answered, CANCEL for an unanswered outbound leg, else a refusal."""
    if ch.remote_bye:
        return [("sip_hangup_disposition", "recv_bye")]
    if ch.answered:
        return [("sip_hangup_disposition", "send_bye")]
    if ch.direction == "outbound":
        return [
            ("sip_hangup_disposition", "send_cancel"),
            ("sip_invite_failure_status", "487"),
            ("sip_invite_failure_phrase", "CANCEL"),
        ]
    return [("sip_hangup_disposition", "send_refuse")]
