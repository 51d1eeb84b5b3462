"""Channels and calls as the call model holds them.

A ``Channel`` is one FreeSWITCH session (one leg), keyed by its ``Unique-ID``; a ``Call`` groups the legs
that belong together (loopback peers, originator/originatee, bridged legs) under the uuid of its first leg.
Both are mutable records owned by ``controller.calls.model.CallModel`` and written only from events: read
them, never assign to them from outside the model.

Timestamps are microseconds since the epoch, as FreeSWITCH reports them (``Event-Date-Timestamp``,
``Caller-Channel-*-Time``); 0 means unknown / not yet.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = [
    "AudioStreamState",
    "Call",
    "Channel",
    "ChannelState",
    "PlaybackResult",
]

_NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})


class ChannelState(enum.IntEnum):
    """Where a channel is in its life. Ordered: the model only ever moves a channel forward."""

    NEW = 0
    """Created, nothing signalled yet (``Channel-Call-State: DOWN``)."""
    RINGING = 1
    """Routing / ringing (``Answer-State: ringing`` once the call state left DOWN, or CHANNEL_PROGRESS)."""
    EARLY = 2
    """Early media (``Answer-State: early``, CHANNEL_PROGRESS_MEDIA)."""
    ANSWERED = 3
    """Answered (``Answer-State: answered``, CHANNEL_ANSWER)."""
    HANGUP = 4
    """Hung up (CHANNEL_HANGUP); the channel leaves the model at CHANNEL_HANGUP_COMPLETE."""


class AudioStreamState(enum.Enum):
    """State of the channel's mod_audio_stream WebSocket, from its CUSTOM events.

    ARCHITECTURE.md "Real-server facts": ``+OK`` from start is not a connection; ``::disconnect`` fires only
    when the worker closes (the media bug then stays attached until ``stop``); ``::error`` means the bug is
    gone.
    """

    NONE = "none"
    """No stream event seen yet."""
    CONNECTED = "connected"
    """``mod_audio_stream::connect``."""
    DISCONNECTED = "disconnected"
    """``mod_audio_stream::disconnect``: the worker closed; the media bug is still attached until ``stop``."""
    FAILED = "failed"
    """``mod_audio_stream::error``: the connection failed; the media bug is gone."""
    STOPPED = "stopped"
    """``MEDIA_BUG_STOP`` with ``Media-Bug-Function: audio_stream`` (local stop or hangup; no ::disconnect
    then, esl_inbound_session.txt SESSION 1)."""


@dataclass(frozen=True, slots=True)
class PlaybackResult:
    """How the last playback on a channel ended (PLAYBACK_STOP).

    ``status`` is ``done`` or ``break``: the only way to tell completion from interruption;
    ``last_offset_pos`` (channel samples) is the real position reached (esl_playback_queue.txt findings 5, 6).
    """

    file_path: str
    status: str
    last_offset_pos: int


@dataclass(slots=True, eq=False)
class Channel:
    """One FreeSWITCH channel (leg), as events describe it.

    Attributes:
        uuid: ``Unique-ID``.
        node: The FreeSWITCH node the channel lives on.
        call_id: Id of the call the channel belongs to (changes when calls merge).
        name: ``Channel-Name`` (``sofia/internal/1000@host``, ``loopback/7101-a``).
        direction: ``inbound`` or ``outbound`` (``Call-Direction``).
        state: Life-cycle state, forward only.
        parked: Between CHANNEL_PARK and CHANNEL_UNPARK.
        created_us / answered_us / hangup_us: ``Caller-Channel-*-Time`` or the event's timestamp.
        hangup_cause: ``Hangup-Cause`` ('' until known).
        caller_id_number / caller_id_name / destination_number / context: the caller profile.
        bridged_to: Uuid of the leg this one is bridged with ('' when not bridged).
        loopback_peer: ``variable_other_loopback_leg_uuid`` ('' when not a loopback leg).
        applications: Running dialplan applications as (name, data), innermost last: a parked channel
            playing a broadcast runs ``park`` and ``playback`` at once.
        variables: ``headers.SIP_VARIABLES`` and ``headers.MEDIA_VARIABLES`` as last seen.
        headers: The full headers of the last event for this channel (not copied).
        answer_state / call_state: FreeSWITCH's ``Answer-State`` / ``Channel-Call-State`` as last seen.
        audio_stream: mod_audio_stream state; ``audio_stream_code`` / ``audio_stream_reason`` carry the close
            code and reason of ``::disconnect`` or the code and error of ``::error``.
        playing: Path of the file now playing ('' when none).
        last_playback: How the last playback ended (None before the first PLAYBACK_STOP).
        dtmf: Digits received, in order.
        held: Between CHANNEL_HOLD and CHANNEL_UNHOLD.
        recordings: Files being recorded (RECORD_START, not yet RECORD_STOP).
        sequence: ``Event-Sequence`` of the last event applied (not monotonic across event types).
    """

    uuid: str
    node: str
    call_id: str
    name: str = ""
    direction: str = ""
    state: ChannelState = ChannelState.NEW
    parked: bool = False
    created_us: int = 0
    answered_us: int = 0
    hangup_us: int = 0
    hangup_cause: str = ""
    caller_id_number: str = ""
    caller_id_name: str = ""
    destination_number: str = ""
    context: str = ""
    bridged_to: str = ""
    loopback_peer: str = ""
    applications: list[tuple[str, str]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS)
    answer_state: str = ""
    call_state: str = ""
    audio_stream: AudioStreamState = AudioStreamState.NONE
    audio_stream_code: int = 0
    audio_stream_reason: str = ""
    playing: str = ""
    last_playback: PlaybackResult | None = None
    dtmf: list[str] = field(default_factory=list)
    held: bool = False
    recordings: list[str] = field(default_factory=list)
    sequence: int = 0

    @property
    def application(self) -> str:
        """The innermost running application ('' when none)."""
        return self.applications[-1][0] if self.applications else ""

    @property
    def answered(self) -> bool:
        """True once the channel was answered (it stays True after hangup)."""
        return self.answered_us != 0 or self.state is ChannelState.ANSWERED


@dataclass(slots=True, eq=False)
class Call:
    """The legs that belong together, under the uuid of the first leg the model saw.

    Attributes:
        id: Uuid of the first leg.
        node: Node of the first leg.
        legs: Uuids of every leg that was part of the call, in the order they joined (ended ones too).
        live_legs: Legs not yet at CHANNEL_HANGUP_COMPLETE; the call ends when this is empty.
        bridges: Currently bridged pairs (the leg that got CHANNEL_BRIDGE first).
        created_us: Creation time of the earliest leg.
        answered_us: First answer of any leg (0 if never answered).
        ended_us: When the last leg completed (0 while live).
        hangup_cause: The first leg's hangup cause (the first cause seen until the first leg's is known).
        ended: True once every leg reached CHANNEL_HANGUP_COMPLETE.
    """

    id: str
    node: str
    legs: list[str] = field(default_factory=list)
    live_legs: set[str] = field(default_factory=set)
    bridges: list[tuple[str, str]] = field(default_factory=list)
    created_us: int = 0
    answered_us: int = 0
    ended_us: int = 0
    hangup_cause: str = ""
    ended: bool = False
