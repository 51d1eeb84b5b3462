"""Outbound SIP legs: ``originate`` to ``user/<ext>[@domain]`` or ``sofia/gateway/<gw>/<number>`` and the
B-leg of the ``bridge`` application. Not captured: the v1.10.12 sources, with the loopback A-leg's capture for
the order of the generic events.

Errors before any channel exists (mod_dptools.c user_outgoing_channel, mod_sofia.c sofia_outgoing_channel):
a user outside the directory -> SUBSCRIBER_ABSENT, a directory user without registration (sofia_contact gives
error/user_not_registered) -> USER_NOT_REGISTERED, unknown gateway -> INVALID_GATEWAY, gateway down ->
GATEWAY_DOWN. A leg: [CHANNEL_UUID (origination_uuid)], CHANNEL_OUTGOING, CHANNEL_STATE CS_INIT,
CHANNEL_CREATE, CHANNEL_ORIGINATE, CHANNEL_STATE CS_ROUTING, CS_CONSUME_MEDIA, then 180 Ringing
(CHANNEL_PROGRESS + CALLSTATE RINGING), then 200 OK (CHANNEL_ANSWER + CALLSTATE ACTIVE). A user/ leg is
originated by the user endpoint's own switch_ivr_originate inside switch_core_session_outgoing_channel, which
fires CHANNEL_OUTGOING once more when it returns (after the answer). No answer within originate_timeout ->
the leg hangs up NO_ANSWER (CANCEL); a refusal -> the leg hangs up with the cause the SIP status maps to.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass

from tests.fsemu.apps import Apps
from tests.fsemu.audio import PcmSource
from tests.fsemu.channel import Codec, EmulatedChannel, new_profile
from tests.fsemu.core import SwitchCore, new_uuid, now_us
from tests.fsemu.dialplan import Dialplan
from tests.fsemu.hangup import Hangups
from tests.fsemu.loopback import Loopback
from tests.fsemu.registry import Gateway, Registry, SipUser, directory_vars
from tests.fsemu.sofia import CODECS, InboundCall, Sofia, _media_vars
from tests.fsemu.transfer import Transfers, flip_cid
from tests.fsemu.wire import HeaderValue

USAGE = (
    "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] "
    "[<cid_num>] [<timeout_sec>]\n"
)
RING_DELAY = 0.01  # INVITE -> 180 Ringing of a local endpoint
DEFAULT_TIMEOUT = 60  # switch_ivr_originate: timelimit 60 s unless originate_timeout says otherwise
# The SIP final response an endpoint refusing with a cause sends (sofia_glue.c
# sofia_glue_sip_cause_to_freeswitch maps it back to that cause).
REFUSALS = {
    "USER_BUSY": (486, "Busy Here"), "CALL_REJECTED": (603, "Decline"),
    "UNALLOCATED_NUMBER": (404, "Not Found"), "NO_USER_RESPONSE": (480, "Temporarily Unavailable"),
    "NORMAL_TEMPORARY_FAILURE": (503, "Service Unavailable"),
    "NO_ROUTE_DESTINATION": (485, "Ambiguous"), "RECOVERY_ON_TIMER_EXPIRE": (408, "Request Timeout"),
}  # fmt: skip
_APP = re.compile(r"^&(?P<app>[^(]+)(?:\((?P<data>.*)\))?$")


@dataclass
class Target:
    """A resolved SIP destination and the emulated far end behind it."""

    name: str  # Channel-Name
    number: str  # the sanitized Destination-Number
    user: SipUser | None = None
    gateway: Gateway | None = None

    @property
    def answer_after(self) -> float | None:
        """Seconds until the far end answers (None: never)."""
        return (
            self.user.answer_after
            if self.user is not None
            else self.gateway.answer_after
            if self.gateway
            else None
        )

    @property
    def reject(self) -> str | None:
        """The cause the far end refuses with, if it does."""
        return self.user.reject if self.user is not None else self.gateway.reject if self.gateway else None


def split_vars(text: str) -> tuple[list[tuple[str, str]], str]:
    """``{a=b,c=d}[e=f]target`` -> ([(a, b), (c, d), (e, f)], target)."""
    pairs: list[tuple[str, str]] = []
    while text[:1] in ("{", "["):
        close = "}" if text[0] == "{" else "]"
        end = text.find(close)
        if end < 0:
            break
        for item in text[1:end].split(","):
            key, sep, value = item.partition("=")
            if sep:
                pairs.append((key.strip(), value))
        text = text[end + 1 :]
    return pairs, text


def is_sip_target(text: str) -> bool:
    """True for the SIP dial strings this module handles."""
    return split_vars(text)[1].startswith(("user/", "sofia/"))


class Outbound:
    """SIP originate and bridge B-legs."""

    def __init__(
        self, core: SwitchCore, apps: Apps, *, sofia: Sofia, hangups: Hangups, registry: Registry,
        loopback: Loopback, dialplan: Dialplan, transfers: Transfers,
    ) -> None:  # fmt: skip
        self.core, self.apps, self.sofia, self.hangups = core, apps, sofia, hangups
        self.registry, self.loopback, self.dialplan, self.transfers = registry, loopback, dialplan, transfers
        self.domain = "127.0.0.1"  # switch_core_get_domain (vars.xml domain) for user/<ext> without @domain

    # -- api originate -------------------------------------------------------------------------
    async def originate(self, arg: str) -> str:
        """mod_commands.c originate_function: SIP targets here, the rest to the loopback emulation."""
        argv = [None if a.lower() == "undef" else a for a in arg.split()]
        if not argv or argv[0] is None or not is_sip_target(argv[0]):
            return await self.loopback.originate(arg)
        if not 2 <= len(argv) <= 7 or argv[1] is None:
            return USAGE
        argv += [None] * (7 - len(argv))
        timeout = int(argv[6]) if argv[6] and argv[6].isdigit() else DEFAULT_TIMEOUT
        ch, cause = await self.dial(argv[0], timeout=timeout, cid=(argv[4], argv[5]))
        if ch is None:
            return f"-ERR {cause}\n"
        exten = argv[1]
        app = _APP.match(exten) if exten.startswith("&") else None
        if app is not None:
            flip_cid(self.core, ch)  # switch_channel_set_caller_extension -> switch_channel_sort_cid
            ch.state_number = 4
            actions = [(app.group("app"), app.group("data") or "")]
            ch.app_task = self.core.spawn(self._execute(ch, actions), name=f"originate-app-{ch.uuid}")
        else:
            self.transfers.transfer(ch, exten, argv[2] or "XML", argv[3] or "default")
        return f"+OK {ch.uuid}\n"

    async def _execute(self, ch: EmulatedChannel, actions: list[tuple[str, str]]) -> None:
        await asyncio.sleep(0)  # the api reply / BACKGROUND_JOB goes first
        if not ch.alive:
            return
        self.transfers.running_state(ch, "CS_EXECUTE")
        ch.set_var("call_uuid", ch.uuid)
        await self.dialplan.run_extension(ch, actions)

    # -- one leg -------------------------------------------------------------------------------
    async def dial(
        self, text: str, *, originator: EmulatedChannel | None = None, timeout: int = DEFAULT_TIMEOUT,
        cid: tuple[str | None, str | None] = (None, None),
    ) -> tuple[EmulatedChannel | None, str]:  # fmt: skip
        """switch_ivr_originate of one SIP leg: (the answered channel, "SUCCESS") or (None, cause)."""
        variables, target_text = split_vars(text.strip())
        found = self._resolve(target_text)
        if isinstance(found, str):
            return None, found
        values = dict(variables)
        timer = values.get("originate_timeout") or (
            originator.get_var("call_timeout") if originator else None
        )
        if timer and timer.isdigit() and int(timer) > 0:
            timeout = int(timer)
        ch = self._create(found, variables, originator, cid)
        await self._launch(ch)
        cause = await self._ring(ch, found, timeout, originator)
        if cause != "SUCCESS":
            return None, cause
        if found.user is not None:  # user_outgoing_channel returns; the core fires CHANNEL_OUTGOING again
            ch.set_vars(directory_vars(found.user.user, found.user.domain))
            self.core.fire_channel(ch, "CHANNEL_OUTGOING")
        return ch, "SUCCESS"

    def _resolve(self, target: str) -> Target | str:
        if target.startswith("user/"):
            user, _, domain = target[5:].partition("@")
            entry = self.registry.find(user)
            if user not in self.registry.directory:
                return "SUBSCRIBER_ABSENT"
            if entry is None or (domain and domain != entry.domain):
                return "USER_NOT_REGISTERED"
            return Target(f"sofia/internal/sip:{entry.contact}", user, user=entry)
        parts = target.split("/", 3)
        if len(parts) == 4 and parts[1] == "gateway":
            gateway = self.registry.gateways.get(parts[2])
            if gateway is None:
                return "INVALID_GATEWAY"
            if not gateway.up:
                return "GATEWAY_DOWN"
            number = parts[3].split(";", 1)[0]
            # sofia_glue_attach_private names the leg sofia/<gateway's profile>/<dest after the gateway name>.
            return Target(f"sofia/{gateway.profile}/{number}", number.split("@", 1)[0], gateway=gateway)
        return (
            "INVALID_PROFILE" if len(parts) < 3 or parts[1] not in ("internal", "external") else "INVALID_URL"
        )

    def _create(
        self, target: Target, variables: list[tuple[str, str]], originator: EmulatedChannel | None,
        cid: tuple[str | None, str | None],
    ) -> EmulatedChannel:  # fmt: skip
        values = dict(variables)
        old = new_uuid()
        given = values.get("origination_uuid")
        ch = EmulatedChannel(uuid=given or old, name=target.name, direction="outbound", kind="sofia")
        ch.state, ch.state_number = "CS_NONE", 1
        ch.times.created = now_us()
        self.loopback.session_ids += 1
        ch.profile = self._profile(ch, target, values, originator, cid)
        self._far_end(ch, target)
        ch.set_vars(self._variables(ch, target, variables, originator))
        self.core.add_channel(ch)
        if given:  # switch_core_session_outgoing_channel -> switch_core_session_set_uuid
            self.core.fire_channel(ch, "CHANNEL_UUID", pre=[("Old-Unique-ID", old)])
        if originator is not None:
            ch.other_leg = ("originator", originator)
            originator.set_var("originate_signal_bond", ch.uuid)
        self.core.fire_channel(ch, "CHANNEL_OUTGOING")
        return ch

    def _profile(
        self, ch: EmulatedChannel, target: Target, values: dict[str, str], originator: EmulatedChannel | None,
        cid: tuple[str | None, str | None],
    ) -> dict[str, str]:  # fmt: skip
        """switch_ivr_originate's new caller profile (the caller's caller ID when there is one), after
        sofia_outgoing_channel sanitizes the numbers (Destination-Number = the bare user / number)."""
        origin = originator.profile if originator is not None and originator.profile else {}
        name = values.get("origination_caller_id_name") or cid[0] or origin.get("Caller-ID-Name", "")
        number = values.get("origination_caller_id_number") or cid[1] or origin.get("Caller-ID-Number", "")
        number = number or "0000000000"  # SWITCH_DEFAULT_CLID_NUMBER
        return new_profile(
            ch.uuid, ch.name, ch.times.created, Direction="outbound", **{"Logical-Direction": "outbound"},
            **{"Caller-ID-Name": name, "Caller-ID-Number": number, "Orig-Caller-ID-Name": name},
            **{"Orig-Caller-ID-Number": number, "Callee-ID-Name": "Outbound Call"},
            **{"Callee-ID-Number": target.number},
            **{"ANI": number, "Destination-Number": target.number, "Source": "src/switch_ivr_originate.c"},
            Context="default",
        )  # fmt: skip

    def _far_end(self, ch: EmulatedChannel, target: Target) -> None:
        """Register the far end's media parameters with the sofia emulation (codec, what it says)."""
        end = target.user or target.gateway
        codec = end.codec if end is not None else "PCMA"
        audio = end.audio if end is not None else None
        host = (
            target.user.contact_host
            if target.user is not None
            else (target.gateway.proxy if target.gateway else "")
        )
        call = InboundCall(
            target.number, target.number, codec, CODECS.get(codec, (8000, 64000, 8))[0], 20, audio
        )
        call.sip_domain = host
        self.sofia.calls[ch.uuid] = call
        ch.audio_source = PcmSource.from_wav(audio) if audio is not None else None

    def _variables(
        self,
        ch: EmulatedChannel,
        target: Target,
        variables: list[tuple[str, str]],
        originator: EmulatedChannel | None,
    ) -> list[tuple[str, HeaderValue]]:
        out: list[tuple[str, HeaderValue]] = [
            ("direction", "outbound"), ("is_outbound", "true"), ("uuid", ch.uuid), ("call_uuid", ch.uuid),
            ("session_id", str(self.loopback.session_ids)), ("channel_name", ch.name),
        ]  # fmt: skip
        out += [(key, value) for key, value in variables]
        out.append(("originate_early_media", "false"))
        if target.user is not None:
            user, domain = target.user.user, target.user.domain
            out += [("dialed_user", user), ("dialed_domain", domain), ("sip_invite_domain", domain)]
            out += [("presence_id", f"{user}@{domain}"), ("sip_profile_name", "internal")]
            out.append(("sip_destination_url", f"sip:{target.user.contact}"))
        elif target.gateway is not None:
            gw = target.gateway
            out += [("sip_gateway_name", gw.name), ("sip_profile_name", gw.profile)]
            out.append(("sip_destination_url", f"sip:{target.number}@{gw.proxy}"))
        if originator is not None:  # switch_core_session_outgoing_channel
            forward = originator.get_var("max_forwards") or "70"
            out += [("max_forwards", str(int(forward) - 1) if forward.isdigit() else "69")]
            out += [("originator", originator.uuid), ("signal_bond", originator.uuid)]
        return out

    async def _launch(self, ch: EmulatedChannel) -> None:
        """The leg's state machine: CS_INIT, CHANNEL_CREATE, CHANNEL_ORIGINATE, routing -> consume media."""
        await asyncio.sleep(0)
        self.apps.set_state(ch, "CS_INIT")
        ch.state_number = 2
        self.core.fire_channel(ch, "CHANNEL_CREATE")
        self.core.fire_channel(ch, "CHANNEL_ORIGINATE")
        self.apps.set_state(ch, "CS_ROUTING")
        self.apps.set_state(ch, "CS_CONSUME_MEDIA", 7)

    async def _ring(
        self, ch: EmulatedChannel, target: Target, timeout: int, originator: EmulatedChannel | None
    ) -> str:
        """180 Ringing, then 200 OK / a refusal / nothing until the originate times out."""
        if await self._wait_down(ch, originator, RING_DELAY):
            return self._gone(ch, originator)
        self._ring_ready(ch)
        if originator is not None and not originator.answered and not originator.ring_ready:
            self._ring_ready(originator)  # the caller hears ringing (switch_channel_ring_ready)
        delay = target.answer_after
        reject = target.reject
        if reject is not None and delay is None:
            delay = 0.05
        if delay is None or delay > timeout:
            if await self._wait_down(ch, originator, float(timeout)):
                return self._gone(ch, originator)
            self.hangups.hangup(ch, "NO_ANSWER")
            return "NO_ANSWER"
        if await self._wait_down(ch, originator, delay):
            return self._gone(ch, originator)
        if reject is not None:
            return self._refused(ch, reject.upper())
        self._answered(ch)
        return "SUCCESS"

    async def _wait_down(
        self, ch: EmulatedChannel, originator: EmulatedChannel | None, seconds: float
    ) -> bool:
        """Sleep ``seconds``; True early if the leg or the caller hangs up meanwhile."""
        events = [ch.hangup_event] + ([originator.hangup_event] if originator is not None else [])
        waits = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            done, _ = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return bool(done)

    def _gone(self, ch: EmulatedChannel, originator: EmulatedChannel | None) -> str:
        if ch.hangup_started:
            return ch.hangup_cause or "NORMAL_CLEARING"
        self.hangups.hangup(ch, "ORIGINATOR_CANCEL")  # the caller hung up while the leg rang
        return "ORIGINATOR_CANCEL" if originator is not None else "NORMAL_CLEARING"

    def _ring_ready(self, ch: EmulatedChannel) -> None:
        """switch_channel_perform_mark_ring_ready_value: CHANNEL_PROGRESS, then CALLSTATE RINGING."""
        ch.ring_ready = True
        if ch.profile is not None:
            ch.profile["Channel-Progress-Time"] = str(now_us())
        self.core.fire_channel(ch, "CHANNEL_PROGRESS")
        self.apps.set_callstate(ch, "RINGING")

    def _refused(self, ch: EmulatedChannel, cause: str) -> str:
        """A final 4xx-6xx: sofia.c sets recv_refuse and the failure status; the leg hangs up."""
        status, phrase = REFUSALS.get(cause, (500, "Server Internal Error"))
        ch.set_vars([("sip_hangup_disposition", "recv_refuse"), ("sip_invite_failure_status", str(status))])
        ch.set_vars([("sip_invite_failure_phrase", phrase), ("sip_term_status", str(status))])
        ch.set_vars([("proto_specific_hangup_cause", f"sip:{status}"), ("sip_term_phrase", phrase)])
        self.hangups.hangup(ch, cause)
        return cause

    def _answered(self, ch: EmulatedChannel) -> None:
        """200 OK with SDP: the codec is set, the leg is answered (CHANNEL_ANSWER, CALLSTATE ACTIVE)."""
        call = self.sofia.calls[ch.uuid]
        _, bit_rate, _ = CODECS.get(call.codec, (call.rate, 64000, 8))
        ch.read_codec = ch.write_codec = Codec(call.codec, call.rate, bit_rate, call.ptime_ms)
        ch.set_vars(_media_vars(ch, call))
        ch.set_vars([("sip_to_tag", f"{random.randrange(10**8)}"), ("endpoint_disposition", "ANSWER")])
        self.apps.mark_answered(ch)
