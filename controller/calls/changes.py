"""What ``CallModel.apply`` reports: one small frozen record per thing that changed.

The router, playback, CDR store and the API event feed act on these instead of re-reading raw events. Every
change names the call (``call_id``); channel changes also name the leg (``uuid``). Records that outlive the
model's own state (``ChannelRemoved``, ``CallEnded``) carry the final ``Channel`` / ``Call``.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.calls.channel import AudioStreamState, Call, Channel
from switchyard.messages import WorkerMessage

__all__ = [
    "AudioStreamChanged",
    "AudioStreamMessage",
    "CallChange",
    "CallEnded",
    "CallMerged",
    "CallStarted",
    "ChannelAdded",
    "ChannelAdopted",
    "ChannelAnswered",
    "ChannelBridged",
    "ChannelChange",
    "ChannelHeld",
    "ChannelHungUp",
    "ChannelParked",
    "ChannelRemoved",
    "ChannelUnbridged",
    "ChannelUnparked",
    "ChannelUpdated",
    "DtmfReceived",
    "PlaybackChanged",
    "RecordingChanged",
]


@dataclass(frozen=True, slots=True)
class CallChange:
    """Base of every change: the call it concerns."""

    call_id: str


@dataclass(frozen=True, slots=True)
class CallStarted(CallChange):
    """A new call (its first leg appeared)."""


@dataclass(frozen=True, slots=True)
class CallMerged(CallChange):
    """The legs of call ``merged_id`` now belong to ``call_id``; ``merged_id`` no longer exists.

    Happens when two calls get bridged (CHANNEL_BRIDGE, or a bridged pair in a resync) or when a loopback pair
    is recognised late.
    """

    merged_id: str


@dataclass(frozen=True, slots=True)
class CallEnded(CallChange):
    """Every leg reached CHANNEL_HANGUP_COMPLETE (or was lost during a reconnect); ``call`` is final."""

    call: Call


@dataclass(frozen=True, slots=True)
class ChannelChange(CallChange):
    """Base of the changes about one leg."""

    uuid: str


@dataclass(frozen=True, slots=True)
class ChannelAdded(ChannelChange):
    """The model learnt about a channel (CHANNEL_CREATE, any first event for it, or a resync row)."""


@dataclass(frozen=True, slots=True)
class ChannelAdopted(ChannelChange):
    """A resync found a leg an earlier controller had routed (its ``switchyard_*`` channel variables,
    ``controller.calls.resync``): keep it as it is, never route it again.

    ``route`` / ``arg`` are the route action's kind and argument (``agent`` / ``support``); ``worker`` the
    worker that took its stream ('' for none); ``streaming`` whether mod_audio_stream's bug is still on it.
    """

    route: str
    arg: str
    worker: str
    streaming: bool


@dataclass(frozen=True, slots=True)
class ChannelUpdated(ChannelChange):
    """Other channel fields changed: ``state`` (to RINGING or EARLY) or media variables (``read_codec``,
    ``read_rate``, ``ptime``). The running application is not reported (it changes on every EXECUTE)."""

    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChannelParked(ChannelChange):
    """CHANNEL_PARK: the dialplan handed the channel to the controller."""


@dataclass(frozen=True, slots=True)
class ChannelUnparked(ChannelChange):
    """CHANNEL_UNPARK."""


@dataclass(frozen=True, slots=True)
class ChannelAnswered(ChannelChange):
    """The channel was answered."""


@dataclass(frozen=True, slots=True)
class ChannelBridged(ChannelChange):
    """``uuid`` and ``other_uuid`` are bridged (FreeSWITCH reports it on one leg only)."""

    other_uuid: str


@dataclass(frozen=True, slots=True)
class ChannelUnbridged(ChannelChange):
    """The bridge between ``uuid`` and ``other_uuid`` is gone."""

    other_uuid: str


@dataclass(frozen=True, slots=True)
class ChannelHungUp(ChannelChange):
    """The channel hung up with ``cause`` ('' when the event did not say)."""

    cause: str


@dataclass(frozen=True, slots=True)
class ChannelRemoved(ChannelChange):
    """The channel is done (CHANNEL_HANGUP_COMPLETE, or lost during a reconnect); ``channel`` is final."""

    channel: Channel


@dataclass(frozen=True, slots=True)
class AudioStreamChanged(ChannelChange):
    """The mod_audio_stream state changed; ``code`` / ``reason`` as in ``Channel.audio_stream_*``."""

    state: AudioStreamState
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class AudioStreamMessage(ChannelChange):
    """Something the worker sent: ``kind`` ``json`` (``data`` = the text, verbatim; ``message`` = it
    decoded, ``None`` for a type we do not know or, with ``problem`` saying why, a malformed one) or ``play``
    (``data`` = the file FreeSWITCH wrote; it does not play it)."""

    kind: str
    data: str
    message: WorkerMessage | None = None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class PlaybackChanged(ChannelChange):
    """PLAYBACK_START (``status`` ``playing``) or PLAYBACK_STOP (``done`` / ``break``, with the position)."""

    file_path: str
    status: str
    last_offset_pos: int


@dataclass(frozen=True, slots=True)
class DtmfReceived(ChannelChange):
    """A DTMF digit on this leg; ``source`` e.g. APP, RTP, UNKNOWN."""

    digit: str
    source: str


@dataclass(frozen=True, slots=True)
class ChannelHeld(ChannelChange):
    """CHANNEL_HOLD (``held``) or CHANNEL_UNHOLD."""

    held: bool


@dataclass(frozen=True, slots=True)
class RecordingChanged(ChannelChange):
    """RECORD_START (``recording``) or RECORD_STOP of the file ``path`` on this leg."""

    path: str
    recording: bool
