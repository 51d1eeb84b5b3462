"""An emulated FreeSWITCH channel: the data every channel event carries, in FreeSWITCH's order.

Header order follows ``switch_channel_event_set_basic_data`` / ``_extended_data`` and
``switch_caller_profile_event_set_data`` as the captures in ../shared/fixtures/freeswitch show it:
basic channel headers, Hangup-Cause, codecs, ``Caller-*`` profile, ``Other-Leg-*`` profile, then the
``variable_*`` headers in the order they were set (setting a variable moves it to the end, because
``switch_channel_set_variable`` deletes and re-appends the header).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.fsemu.wire import HeaderValue

if TYPE_CHECKING:
    from tests.fsemu.playback import PlaybackQueue

# switch_channel.c switch_channel_event_set_extended_data: events that carry the variables.
VERBOSE_EVENTS = frozenset(
    {
        "CHANNEL_CREATE", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "CHANNEL_ANSWER", "CHANNEL_PARK",
        "CHANNEL_UNPARK", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "REQUEST_PARAMS", "CHANNEL_DATA", "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_DESTROY", "SESSION_HEARTBEAT", "API", "RECORD_START",
        "RECORD_STOP", "PLAYBACK_START", "PLAYBACK_STOP", "CALL_UPDATE", "MEDIA_BUG_START",
        "MEDIA_BUG_STOP", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "CUSTOM",
    }
)  # fmt: skip

# switch_caller_profile_event_set_data field order; empty fields are skipped.
PROFILE_FIELDS = (
    "Direction", "Logical-Direction", "Username", "Dialplan", "Caller-ID-Name", "Caller-ID-Number",
    "Orig-Caller-ID-Name", "Orig-Caller-ID-Number", "Callee-ID-Name", "Callee-ID-Number", "Network-Addr",
    "ANI", "Destination-Number", "Unique-ID", "Source", "Transfer-Source", "Context", "RDNIS", "Channel-Name",
    "Profile-Index",
    "Profile-Created-Time", "Channel-Created-Time", "Channel-Answered-Time", "Channel-Progress-Time",
    "Channel-Progress-Media-Time", "Channel-Hangup-Time", "Channel-Transfer-Time", "Channel-Resurrect-Time",
    "Channel-Bridged-Time", "Channel-Last-Hold", "Channel-Hold-Accum", "Screen-Bit", "Privacy-Hide-Name",
    "Privacy-Hide-Number",
)  # fmt: skip

# hangup_cause_q850 of the causes the emulator produces (switch_types.h switch_call_cause_t). Causes above 127
# (ORIGINATOR_CANCEL 487, MANAGER_REQUEST 503, USER_NOT_REGISTERED 806, ...) are FreeSWITCH's own and
# switch_channel.c switch_channel_cause_q850 reports them as NORMAL_CLEARING (16): they are left out here.
Q850 = {
    "NORMAL_CLEARING": 16, "USER_BUSY": 17, "NO_USER_RESPONSE": 18, "NO_ANSWER": 19, "CALL_REJECTED": 21,
    "NO_ROUTE_DESTINATION": 3, "UNALLOCATED_NUMBER": 1, "NORMAL_TEMPORARY_FAILURE": 41,
    "DESTINATION_OUT_OF_ORDER": 27, "SUBSCRIBER_ABSENT": 20, "EXCHANGE_ROUTING_ERROR": 25,
}  # fmt: skip


@dataclass
class ChannelTimes:
    """Microsecond timestamps of a channel's life (0 = never happened)."""

    created: int = 0
    answered: int = 0
    progress_media: int = 0
    bridged: int = 0
    hangup: int = 0


@dataclass(frozen=True, slots=True)
class Codec:
    """A read or write codec as the channel headers show it."""

    name: str
    rate: int
    bit_rate: int
    ptime_ms: int = 20


@dataclass(eq=False)
class EmulatedChannel:
    """State of one emulated channel (a loopback leg or an inbound SIP leg).

    Attributes:
        uuid: Unique-ID.
        name: Channel-Name.
        direction: ``inbound`` or ``outbound``.
        state: Channel-State (``CS_*``).
        state_number: Channel-State-Number (FreeSWITCH's running state; lags ``state`` at times).
        call_state: Channel-Call-State (``DOWN``, ``RINGING``, ``EARLY``, ``ACTIVE``, ``HANGUP``).
        answer_state: Answer-State (``ringing``, ``early``, ``answered``, ``hangup``).
        answered: True once the channel is answered.
        variables: Channel variables in set order.
        profile: Caller profile fields (``Caller-*`` without the prefix).
    """

    uuid: str
    name: str
    direction: str
    state: str = "CS_NEW"
    state_number: int = 0
    call_state: str = "DOWN"
    answer_state: str = "ringing"
    hit_dialplan: bool = False
    presence_id: str | None = None
    read_codec: Codec | None = None
    write_codec: Codec | None = None
    profile: dict[str, str] | None = None
    variables: dict[str, HeaderValue] = field(default_factory=dict)
    hangup_cause: str | None = None
    other_leg: tuple[str, EmulatedChannel] | None = None
    answered: bool = False
    pre_answered: bool = False
    loopback_peer: EmulatedChannel | None = None
    bridged_to: EmulatedChannel | None = None
    parked: bool = False
    park_app_uuid: str | None = None
    last_response: str = "_none_"
    audio_source: Any = None
    outbound_audio: bool = False
    playback: PlaybackQueue | None = None
    destroyed: asyncio.Event = field(default_factory=asyncio.Event)
    hangup_event: asyncio.Event = field(default_factory=asyncio.Event)
    answer_event: asyncio.Event = field(default_factory=asyncio.Event)
    hangup_started: bool = False
    kind: str = "loopback"
    times: ChannelTimes = field(default_factory=ChannelTimes)
    digits: str = ""
    app_task: asyncio.Task[None] | None = None
    remote_bye: bool = False
    bridge_role: str = ""
    interrupt: asyncio.Event = field(default_factory=asyncio.Event)
    dialplan_gen: int = 0
    ring_ready: bool = False
    bridge_done: asyncio.Event | None = None

    # -- variables -------------------------------------------------------------------------------
    def set_var(self, name: str, value: HeaderValue | None) -> None:
        """Set (or, with None/empty, delete) a variable; setting moves it to the end."""
        self.variables.pop(name, None)
        if value is not None and value != "":
            self.variables[name] = value

    def set_vars(self, pairs: Iterable[tuple[str, HeaderValue]]) -> None:
        """Set several variables in order."""
        for name, value in pairs:
            self.set_var(name, value)

    def get_var(self, name: str) -> str | None:
        """Return a variable as text (arrays joined FreeSWITCH-style) or None."""
        value = self.variables.get(name)
        if value is None or isinstance(value, str):
            return value
        return "ARRAY::" + "|:".join(value)

    @property
    def ptime_ms(self) -> int:
        """The read codec's packetisation time (one media-bug read)."""
        return self.read_codec.ptime_ms if self.read_codec else 20

    @property
    def alive(self) -> bool:
        """True until the channel starts hanging up."""
        return not self.hangup_started

    async def wait_released(self) -> None:
        """Wait until the channel hangs up or a transfer interrupts its running application."""
        stop = self.interrupt
        if self.hangup_event.is_set() or stop.is_set():
            return
        waits = {asyncio.ensure_future(self.hangup_event.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def release(self) -> None:
        """A transfer ends the running application (switch_channel_ready() turns false on CF_TRANSFER)."""
        self.interrupt.set()
        self.interrupt = asyncio.Event()
        self.dialplan_gen += 1

    # -- headers ---------------------------------------------------------------------------------
    def basic_headers(self, *, codecs: bool = True, profile: bool = True) -> list[tuple[str, HeaderValue]]:
        """Basic channel data, codecs, Caller-* and Other-Leg-* headers in FreeSWITCH's order."""
        out: list[tuple[str, HeaderValue]] = [
            ("Channel-State", self.state),
            ("Channel-Call-State", self.call_state),
            ("Channel-State-Number", str(self.state_number)),
            ("Channel-Name", self.name),
            ("Unique-ID", self.uuid),
            ("Call-Direction", self.direction),
            ("Presence-Call-Direction", self.direction),
            ("Channel-HIT-Dialplan", "true" if self.hit_dialplan else "false"),
        ]
        if self.presence_id:
            out.append(("Channel-Presence-ID", self.presence_id))
        out += [("Channel-Call-UUID", self.uuid), ("Answer-State", self.answer_state)]
        if self.hangup_cause:
            out.append(("Hangup-Cause", self.hangup_cause))
        if codecs:
            out += self.codec_headers()
        if profile and self.profile is not None:
            out += profile_headers("Caller", self.profile)
        if profile and self.other_leg is not None:
            kind, peer = self.other_leg
            if peer.profile is not None:
                out.append(("Other-Type", kind))
                fields = {
                    k: v
                    for k, v in peer.profile.items()
                    if k not in ("Profile-Index", "Username", "Transfer-Source")
                }
                out += profile_headers("Other-Leg", fields)
        return out

    def codec_headers(self) -> list[tuple[str, HeaderValue]]:
        """Channel-Read-Codec-* and Channel-Write-Codec-* headers (only for codecs that are set)."""
        out: list[tuple[str, HeaderValue]] = []
        for label, codec in (("Read", self.read_codec), ("Write", self.write_codec)):
            if codec is not None:
                out += [
                    (f"Channel-{label}-Codec-Name", codec.name),
                    (f"Channel-{label}-Codec-Rate", str(codec.rate)),
                    (f"Channel-{label}-Codec-Bit-Rate", str(codec.bit_rate)),
                ]
        return out

    def variable_headers(self) -> list[tuple[str, HeaderValue]]:
        """``variable_*`` headers in set order."""
        return [(f"variable_{k}", v) for k, v in self.variables.items()]

    def event_headers(
        self,
        name: str,
        pre: Iterable[tuple[str, HeaderValue]] = (),
        post: Iterable[tuple[str, HeaderValue]] = (),
    ) -> list[tuple[str, HeaderValue]]:
        """All channel headers of an event named ``name`` (without the core headers)."""
        out = list(pre)
        out += self.basic_headers()
        if name in VERBOSE_EVENTS:
            out += self.variable_headers()
        out += list(post)
        return out


def profile_headers(prefix: str, fields: dict[str, str]) -> list[tuple[str, HeaderValue]]:
    """Caller profile headers with ``prefix`` in PROFILE_FIELDS order, skipping empty fields."""
    return [(f"{prefix}-{key}", fields[key]) for key in PROFILE_FIELDS if fields.get(key)]


def new_profile(uuid: str, channel_name: str, created_us: int, **fields: str) -> dict[str, str]:
    """A caller profile with FreeSWITCH's defaults for the time and flag fields."""
    profile = dict(fields)
    profile.update(
        {
            "Unique-ID": uuid,
            "Channel-Name": channel_name,
            "Profile-Index": "1",
            "Profile-Created-Time": str(created_us),
            "Channel-Created-Time": str(created_us),
        }
    )
    for key in (
        "Channel-Answered-Time", "Channel-Progress-Time", "Channel-Progress-Media-Time",
        "Channel-Hangup-Time", "Channel-Transfer-Time", "Channel-Resurrect-Time", "Channel-Bridged-Time",
        "Channel-Last-Hold",
        "Channel-Hold-Accum",
    ):  # fmt: skip
        profile.setdefault(key, "0")
    profile.update({"Screen-Bit": "true", "Privacy-Hide-Name": "false", "Privacy-Hide-Number": "false"})
    return profile
