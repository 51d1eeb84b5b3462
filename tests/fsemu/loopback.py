"""``originate {vars}loopback/<ext>[/<ctx>] &app()`` with mod_loopback's two legs, as SESSION 1 shows it.

A-leg ``loopback/<ext>-a`` (outbound) runs the ``&app``; B-leg ``loopback/<ext>-b`` (inbound) runs the
emulated dialplan of ``<ext>`` (answer + tone, answer + echo, park...). Answering B answers A.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tests.fsemu.apps import Apps
from tests.fsemu.audio import ToneSource
from tests.fsemu.channel import Codec, EmulatedChannel, new_profile
from tests.fsemu.core import SwitchCore, new_uuid, now_us
from tests.fsemu.playback import Player
from tests.fsemu.wire import HeaderValue

L16 = Codec("L16", 8000, 128000)
TONE_440 = "tone_stream://%(1000,0,440);loops=-1"
# Extension -> dialplan applications of the B-leg (configurable through EmulatorConfig.dialplan).
DEFAULT_DIALPLAN: dict[str, list[tuple[str, str]]] = {
    "7101": [("answer", ""), ("playback", TONE_440)],
    "7104": [("answer", ""), ("echo", "")],
    "7102": [("park", "")],
}
_TARGET = re.compile(r"^(?:\{(?P<vars>[^}]*)\})?loopback/(?P<ext>[^/\s]+)(?:/(?P<ctx>[^/\s]+))?$")


@dataclass
class OriginateRequest:
    """A parsed ``originate`` argument."""

    variables: list[tuple[str, str]]
    extension: str
    context: str
    app: str
    app_data: str

    @property
    def timeout_s(self) -> float:
        """How long the originate waits for the answer: ``originate_timeout``, else 60 s."""
        value = dict(self.variables).get("originate_timeout", "")
        return float(value) if value.isdigit() and int(value) > 0 else 60.0


def parse_originate(arg: str) -> OriginateRequest | None:
    """Parse ``{a=b,c=d}loopback/ext[/ctx] &app(data)``; None if not a loopback originate."""
    target, _, rest = arg.strip().partition(" ")
    match = _TARGET.match(target)
    app_match = re.match(r"^&(?P<app>\w+)\((?P<data>.*)\)$", rest.strip())
    if match is None or app_match is None:
        return None
    pairs = []
    for item in (match.group("vars") or "").split(","):
        key, sep, value = item.partition("=")
        if sep:
            pairs.append((key.strip(), value))
    return OriginateRequest(
        pairs,
        match.group("ext"),
        match.group("ctx") or "default",
        app_match.group("app"),
        app_match.group("data"),
    )


def _profile(uuid: str, name: str, *, direction: str, ext: str, ctx: str, created: int) -> dict[str, str]:
    return new_profile(
        uuid, name, created, Direction=direction, **{"Logical-Direction": direction}, Dialplan="xml",
        **{"Caller-ID-Number": "0000000000", "Orig-Caller-ID-Number": "0000000000"},
        **{"Callee-ID-Name": "Outbound Call", "Callee-ID-Number": ctx, "ANI": "0000000000"},
        **{"Destination-Number": ext, "Source": "mod_loopback", "Context": ctx},
    )  # fmt: skip


class Loopback:
    """Creates loopback call pairs and runs their dialplans."""

    def __init__(
        self, core: SwitchCore, apps: Apps, player: Player, dialplan: dict[str, list[tuple[str, str]]]
    ):
        self.core = core
        self.apps = apps
        self.player = player
        self.dialplan = dialplan
        self.session_ids = 0
        self.hangup: Callable[[EmulatedChannel, str], None] | None = None  # set by the emulator
        # More applications (conference, bridge, hangup...), installed by the emulator: (ch, data, first).
        self.extra_apps: dict[str, Callable[[EmulatedChannel, str, bool], Awaitable[None]]] = {}

    def _codec_events(self, ch: EmulatedChannel) -> None:
        """The two CODEC events of a new leg (read then write codec set, before the caller profile)."""
        ch.read_codec = L16
        lower: list[tuple[str, HeaderValue]] = [("channel-read-codec-name", "L16")]
        lower.append(("channel-read-codec-rate", "8000"))
        lower.append(("channel-read-codec-bit-rate", "128000"))
        headers = ch.basic_headers(profile=False) + lower
        self.core.fire("CODEC", headers, calling="CODEC_READ")
        ch.write_codec = L16
        extra: list[tuple[str, HeaderValue]] = [("Channel-Write-Codec-Name", "L16")]
        extra.append(("Channel-Write-Codec-Rate", "8000"))
        extra.append(("Channel-Write-codec-bit-rate", "128000"))
        self.core.fire("CODEC", ch.basic_headers(profile=False) + extra, calling="CODEC_WRITE")

    def _new_leg(self, uuid: str, name: str, direction: str) -> EmulatedChannel:
        ch = EmulatedChannel(uuid=uuid, name=name, direction=direction, state="CS_NONE")
        ch.times.created = now_us()
        ch.hit_dialplan = direction == "inbound"
        self.session_ids += 1
        return ch

    def _create_a(self, req: OriginateRequest) -> EmulatedChannel:
        given = dict(req.variables).get("origination_uuid")
        a = self._new_leg(new_uuid(), f"loopback/{req.extension}/{req.context}-a", "outbound")
        self._codec_events(a)
        old, a.name = a.uuid, f"loopback/{req.extension}-a"
        a.uuid = given or a.uuid
        a.state_number = 1
        a.profile = _profile(
            a.uuid, a.name, direction="outbound", ext=req.extension, ctx=req.context, created=a.times.created
        )
        a.set_vars(
            [("direction", "outbound"), ("is_outbound", "true"), ("session_id", str(self.session_ids))]
        )
        a.set_vars(
            [("read_codec", "L16"), ("read_rate", "8000"), ("write_codec", "L16"), ("write_rate", "8000")]
        )
        a.set_vars([("channel_name", a.name), ("uuid", a.uuid), ("call_uuid", a.uuid)])
        self.core.add_channel(a)
        if given:
            self.core.fire_channel(a, "CHANNEL_UUID", pre=[("Old-Unique-ID", old)])
        self.core.fire_channel(a, "CHANNEL_OUTGOING")
        self.apps.set_state(a, "CS_INIT")
        return a

    def _create_b(self, a: EmulatedChannel, req: OriginateRequest) -> EmulatedChannel:
        b = self._new_leg(new_uuid(), f"loopback/{req.extension}-b", "inbound")
        self._codec_events(b)
        b.profile = _profile(
            b.uuid, b.name, direction="inbound", ext=req.extension, ctx=req.context, created=b.times.created
        )
        a.loopback_peer, b.loopback_peer = b, a
        a.set_vars([(k, v) for k, v in req.variables])
        a.set_vars([("originate_early_media", "true"), ("originate_endpoint", "loopback")])
        a.set_vars([("other_loopback_leg_uuid", b.uuid), ("loopback_leg", "A")])
        a.state, a.state_number = "CS_INIT", 2
        self.core.fire_channel(a, "CHANNEL_CREATE")
        self.apps.set_state(b, "CS_INIT", 1)
        b.set_vars([("direction", "inbound"), ("uuid", b.uuid), ("call_uuid", b.uuid)])
        b.set_vars([("session_id", str(self.session_ids)), ("channel_name", b.name)])
        b.set_vars(
            [("read_codec", "L16"), ("read_rate", "8000"), ("write_codec", "L16"), ("write_rate", "8000")]
        )
        b.set_vars([(k, v) for k, v in req.variables if k == "origination_uuid"])
        b.set_vars([("other_loopback_leg_uuid", a.uuid), ("loopback_leg", "B")])
        self.core.add_channel(b)
        b.state_number = 2
        self.core.fire_channel(b, "CHANNEL_CREATE")
        b.state = "CS_ROUTING"
        self.apps.set_callstate(b, "RINGING")
        self.apps.set_state(b, "CS_ROUTING")
        return b

    async def originate(self, arg: str) -> str:
        """Run ``originate`` and return the api reply body."""
        req = parse_originate(arg)
        if req is None:
            return "-ERR INVALID_GATEWAY\n"
        if req.extension not in self.dialplan:
            return "-ERR NO_ROUTE_DESTINATION\n"
        a = self._create_a(req)
        b = self._create_b(a, req)
        self.core.fire_channel(a, "CHANNEL_ORIGINATE")
        self.apps.set_state(a, "CS_ROUTING")
        self.apps.set_state(a, "CS_CONSUME_MEDIA", 7)
        self.apps.set_state(b, "CS_EXECUTE", 4)
        b.state = "CS_EXECUTE"
        runner = self.core.spawn(self.run_b_dialplan(b, req.extension), name=f"dialplan-{b.uuid}")
        b.app_task = runner
        await asyncio.sleep(0)
        if not a.answered:  # switch_ivr_originate waits for the answer (e.g. the controller's, on a park)
            answered = asyncio.ensure_future(a.answer_event.wait())
            ended = asyncio.ensure_future(a.hangup_event.wait())
            await asyncio.wait({answered, ended}, timeout=req.timeout_s, return_when=asyncio.FIRST_COMPLETED)
            answered.cancel()
            ended.cancel()
        if not a.answered:
            if self.hangup is not None and not a.hangup_started:
                self.hangup(a, "NO_ANSWER")
            return "-ERR NO_ANSWER\n"
        await asyncio.sleep(0.02)
        self._flip_cid(a)
        a.app_task = self.core.spawn(self._run_a_app(a, req), name=f"app-{a.uuid}")
        return f"+OK {a.uuid}\n"

    def _flip_cid(self, a: EmulatedChannel) -> None:
        """switch_channel_flip_cid on the answered A-leg: CALL_UPDATE Direction RECV."""
        a.set_vars([("endpoint_disposition", "ANSWER"), ("pre_transfer_caller_id_number", "0000000000")])
        a.set_var("channel_cid_flipped", "yes")
        a.hit_dialplan = True
        if a.profile is not None:  # the callee's ID (Outbound Call <context>) becomes the caller's
            callee = a.profile.get("Callee-ID-Number", "")
            a.profile.update({"Caller-ID-Name": "Outbound Call", "Caller-ID-Number": callee})
            a.profile.update({"Callee-ID-Name": "", "Callee-ID-Number": "0000000000"})
        self.core.fire_channel(a, "CALL_UPDATE", pre=[("Direction", "RECV")])

    async def _run_a_app(self, a: EmulatedChannel, req: OriginateRequest) -> None:
        await asyncio.sleep(0)  # let the api reply / BACKGROUND_JOB go first, as captured
        if not a.alive:
            return
        self.apps.set_state(a, "CS_EXECUTE", 4)
        await self.run_app(a, req.app, req.app_data, first=True)

    async def run_b_dialplan(self, b: EmulatedChannel, ext: str) -> None:
        """Run the B-leg's extension."""
        first, gen = True, b.dialplan_gen
        for app, data in self.dialplan[ext]:
            if not b.alive or b.dialplan_gen != gen:
                return
            await self.run_app(b, app, data, first=first)
            first = False

    async def run_app(self, ch: EmulatedChannel, app: str, data: str, *, first: bool = False) -> None:
        """Run one emulated application."""
        extra = self.extra_apps.get(app)
        if extra is not None:
            await extra(ch, data, first)
        elif app == "answer":
            if ch.loopback_peer is not None and ch.direction == "inbound":
                self.apps.answer_loopback(ch)
            else:
                app_uuid = self.apps.execute(ch, "answer", first=first)
                self.apps.mark_answered(ch)
                self.apps.complete(ch, "answer", "", app_uuid)
        elif app == "park":
            self.apps.park(ch, first=first)
        elif app == "playback":
            if data.startswith("tone_stream://"):
                ch.audio_source = ToneSource()
                ch.outbound_audio = True
            await self.player.play_file(ch, data, ch.interrupt)
        else:  # echo and anything else: runs until hangup (or a transfer)
            app_uuid = self.apps.execute(ch, app, data, first=first)
            ch.outbound_audio = app == "echo"
            await ch.wait_released()
            self.apps.complete(ch, app, data, app_uuid)
