"""``uuid_transfer`` (mod_commands.c transfer_function) and the blind transfer it runs
(switch_ivr.c switch_ivr_session_transfer). Not captured: everything here follows the v1.10.12 sources.

At once (inside the api call): max_forwards counts down, a held leg is unheld (switch_ivr_check_hold), a new
caller profile (index + 1) gets the new Dialplan/Context/Destination-Number, RDNIS = the old destination and
Transfer-Source ``<epoch>:<profile uuid>:bl_xfer:<dest>/<context>/<dialplan>``; transfer_history (pushed) and
transfer_source are set; the requested state becomes CS_ROUTING. Then the running application ends (park:
CHANNEL_UNPARK + CHANNEL_EXECUTE_COMPLETE), the state machine routes (CHANNEL_STATE CS_ROUTING; an inbound
leg's call state goes RINGING, switch_channel_perform_set_running_state), hunts the dialplan (inline:
mod_dptools.c inline_dialplan_hunt puts the old destination back), flips an outbound leg's caller ID
(switch_channel_sort_cid: CALL_UPDATE) and executes (CHANNEL_STATE CS_EXECUTE, ACTIVE again if answered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.fsemu.apps import Apps
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore, new_uuid, now_us
from tests.fsemu.dialplan import Dialplan
from tests.fsemu.hangup import Hangups

USAGE = "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
PARK_TICK = 0.02  # switch_ivr_park polls every 20 ms (switch_yield(20000) / one frame read)
APP_END_LIMIT = 5.0
# switch_caller.c switch_caller_profile_dup/switch_channel_set_caller_profile: times a new profile copies.
COPIED_TIMES = (
    "Channel-Created-Time", "Channel-Answered-Time", "Channel-Progress-Time", "Channel-Progress-Media-Time",
    "Channel-Hangup-Time",
)  # fmt: skip
RESET_TIMES = (
    "Channel-Transfer-Time", "Channel-Resurrect-Time", "Channel-Bridged-Time", "Channel-Last-Hold",
    "Channel-Hold-Accum",
)  # fmt: skip


def parse_inline(text: str) -> list[tuple[str, str]]:
    """inline_dialplan_hunt: ``app:arg,app:arg`` (``m:<d>:`` picks another delimiter)."""
    delim = ","
    if len(text) > 3 and text[0] == "m" and text[1] == ":" and text[3] == ":":
        delim, text = text[2], text[4:]
    actions = []
    for item in text.split(delim):
        app, _, data = item.lstrip(" ").partition(":")
        if app:
            actions.append((app, data))
    return actions


class Transfers:
    """The ``uuid_transfer`` api and blind transfers (also used by ``originate <call> <exten>``)."""

    def __init__(
        self,
        core: SwitchCore,
        apps: Apps,
        hangups: Hangups,
        dialplan: Dialplan,
        xml: dict[str, list[tuple[str, str]]],
    ) -> None:
        self.core, self.apps, self.hangups, self.dialplan, self.xml = core, apps, hangups, dialplan, xml
        # switch_ivr_check_hold: unhold a held leg first (set by the emulator).
        self.unhold: Callable[[EmulatedChannel], None] | None = None

    async def command(self, arg: str) -> str:
        """``uuid_transfer <uuid> [-bleg|-both] <dest> [<dialplan>] [<context>]``."""
        argv = arg.split()
        if not 2 <= len(argv) <= 5:
            return USAGE
        ch = self.core.channels.get(argv[0])
        if ch is None or not ch.alive:
            return "-ERR No such channel!\n"
        dest, rest = argv[1], argv[2:]
        flag = ""
        if dest.startswith("-"):
            flag, dest, rest = dest[1:].lower(), (rest[0] if rest else ""), rest[1:]
        dp, ctx = [*rest, "", ""][:2]
        # transfer_function: -bleg / -both look for the bridge partner; without one the leg itself moves.
        other = self._partner(ch) if flag in ("bleg", "both") else None
        moving = {ch.uuid}
        if flag == "bleg" and other is not None:
            ch = other
            moving = {ch.uuid}
        elif flag == "both" and other is not None:
            moving.add(other.uuid)
            self.transfer(other, dest, dp, ctx, moving=moving)
        return "+OK\n" if self.transfer(ch, dest, dp, ctx, moving=moving) else "-ERR\n"

    def _partner(self, ch: EmulatedChannel) -> EmulatedChannel | None:
        # SWITCH_BRIDGE_VARIABLE (bridge_to); the emulated uuid_bridge originator lacks it: use the bridge.
        uuid = ch.get_var("bridge_to") or (ch.bridged_to.uuid if ch.bridged_to is not None else None)
        other = self.core.channels.get(uuid) if uuid else None
        return other if other is not None and other.alive else None

    def transfer(
        self,
        ch: EmulatedChannel,
        dest: str,
        dialplan: str = "",
        context: str = "",
        *,
        moving: set[str] | None = None,
    ) -> bool:
        """switch_ivr_session_transfer: the synchronous part; the reroute runs in a task. False = -ERR."""
        if not self._count_forward(ch):
            return False
        if self.unhold is not None:
            self.unhold(ch)
        use_dialplan, use_context, dest = self._targets(ch, dest, dialplan, context)
        ch.set_var("signal_bond", None)
        source = self._new_profile(ch, dest, use_dialplan, use_context)
        ch.state_number = 2  # switch_channel_set_state(CS_ROUTING): the requested state
        self._leave_bridge(ch, moving or {ch.uuid})
        old_task = ch.app_task
        history = ch.variables.get("transfer_history")
        if history is None:
            ch.set_var("transfer_history", source)
        else:  # SWITCH_STACK_PUSH onto the existing header: becomes an array, stays in place
            ch.variables["transfer_history"] = [*([history] if isinstance(history, str) else history), source]
        ch.set_var("transfer_source", source)
        reroute = self._reroute(ch, old_task, ch.dialplan_gen)
        ch.app_task = self.core.spawn(reroute, name=f"transfer-{ch.uuid}")
        return True

    def _count_forward(self, ch: EmulatedChannel) -> bool:
        name = "max_session_transfers" if ch.get_var("max_session_transfers") else "max_forwards"
        current = ch.get_var(name)
        forward = int(current) - 1 if current and current.lstrip("-").isdigit() else 70
        if forward <= 0:
            self.hangups.hangup(ch, "EXCHANGE_ROUTING_ERROR")
            return False
        ch.set_var(name, str(forward))
        return True

    def _targets(self, ch: EmulatedChannel, dest: str, dialplan: str, context: str) -> tuple[str, str, str]:
        profile = ch.profile or {}
        use_dialplan = dialplan or ch.get_var("force_transfer_dialplan") or ""
        use_context = context or ch.get_var("force_transfer_context") or ""
        if not use_dialplan:
            use_dialplan = profile.get("Dialplan", "")
            if use_dialplan.lower() == "inline":
                use_dialplan = ""
        return use_dialplan or "XML", use_context or profile.get("Context") or "default", dest or "service"

    def _leave_bridge(self, ch: EmulatedChannel, moving: set[str]) -> None:
        """The leg leaves its bridge: CHANNEL_UNBRIDGE; the peer's bridge app returns, else it hangs up."""
        peer = ch.bridged_to
        if peer is None:
            return
        peer.set_var("signal_bond", None)
        self.hangups.unbridge(ch)
        if peer.uuid in moving or not peer.alive:
            return
        if peer.bridge_done is not None:
            peer.bridge_done.set()
        else:
            self.hangups.hangup(peer, "NORMAL_CLEARING")

    def _new_profile(self, ch: EmulatedChannel, dest: str, dialplan: str, context: str) -> str:
        old = ch.profile or {}
        new = {k: v for k, v in old.items() if k != "Transfer-Source"}
        now = now_us()
        new.update({"Dialplan": dialplan, "Context": context, "Destination-Number": dest})
        new["RDNIS"] = old.get("Destination-Number", "")
        new["Profile-Index"] = str(int(old.get("Profile-Index", "1")) + 1)
        new["Profile-Created-Time"] = str(now)
        new.update({key: old.get(key, "0") for key in COPIED_TIMES})
        new.update(dict.fromkeys(RESET_TIMES, "0"))
        source = f"{now // 1_000_000}:{new_uuid()}:bl_xfer:{dest}/{context}/{dialplan}"
        new["Transfer-Source"] = source
        ch.profile = new
        return source

    # -- the state machine's side --------------------------------------------------------------
    async def _reroute(self, ch: EmulatedChannel, old_task: asyncio.Task[None] | None, gen: int) -> None:
        await asyncio.sleep(PARK_TICK)
        if not ch.alive or ch.dialplan_gen != gen:
            return  # a quicker second transfer already rerouted (with the newest profile)
        ch.release()
        if ch.parked:
            self.apps.unpark(ch)
        elif old_task is not None and not old_task.done() and old_task is not asyncio.current_task():
            await asyncio.wait({old_task}, timeout=APP_END_LIMIT)
        if not ch.alive:
            return
        self.running_state(ch, "CS_ROUTING")
        ch.set_var("call_uuid", ch.uuid)  # switch_core_standard_on_routing
        actions = self._hunt(ch)
        if ch.direction == "outbound" and not ch.hit_dialplan:
            flip_cid(self.core, ch)
        ch.state_number = 4
        self.running_state(ch, "CS_EXECUTE")
        await self.dialplan.run_extension(ch, actions)

    def running_state(self, ch: EmulatedChannel, state: str) -> None:
        """switch_channel_perform_set_running_state: an inbound leg's call state follows; CHANNEL_STATE."""
        ch.state = state
        if ch.direction == "inbound":
            if state == "CS_ROUTING":
                self.apps.set_callstate(ch, "RINGING")
            elif ch.answered:
                self.apps.set_callstate(ch, "ACTIVE")
            elif ch.pre_answered:
                self.apps.set_callstate(ch, "EARLY")
        self.core.fire_channel(ch, "CHANNEL_STATE")

    def _hunt(self, ch: EmulatedChannel) -> list[tuple[str, str]]:
        profile = ch.profile or {}
        dest = profile.get("Destination-Number", "")
        if profile.get("Dialplan", "").lower() != "inline":
            return list(self.xml.get(dest, [("park", "")]))
        # mod_dptools.c inline_dialplan_hunt: destination_number = rdnis, rdnis = "".
        profile["Destination-Number"] = profile.get("RDNIS", "")
        profile["RDNIS"] = ""
        return parse_inline(dest)


def flip_cid(core: SwitchCore, ch: EmulatedChannel) -> None:
    """switch_channel.c switch_channel_flip_cid (sort_cid on an outbound leg): CALL_UPDATE Direction RECV."""
    profile = ch.profile if ch.profile is not None else {}
    caller = profile.get("Caller-ID-Name", ""), profile.get("Caller-ID-Number", "")
    callee = profile.get("Callee-ID-Name", ""), profile.get("Callee-ID-Number", "")
    bridged = ch.bridged_to is not None
    if callee[0]:
        ch.set_var("pre_transfer_caller_id_name", caller[0] or None)
        profile["Caller-ID-Name"], profile["Callee-ID-Name"] = callee[0], "" if bridged else caller[0]
    if callee[1]:
        ch.set_var("pre_transfer_caller_id_number", caller[1] or None)
        profile["Caller-ID-Number"], profile["Callee-ID-Number"] = callee[1], "" if bridged else caller[1]
    ch.set_var("channel_cid_flipped", "yes")
    ch.hit_dialplan = True  # CF_DIALPLAN
    pre = [("Direction", "RECV")]
    if bridged and ch.bridged_to is not None:
        pre.append(("Bridged-To", ch.bridged_to.uuid))
    core.fire_channel(ch, "CALL_UPDATE", pre=pre)
