"""Calls: the call model (channels -> calls, built only from FreeSWITCH events) and what it reports.

``CallModel`` lives in ``controller.calls.model``, its records in ``controller.calls.channel`` and the change
records in ``controller.calls.changes``; all are re-exported here.
"""

from controller.calls.changes import (
    AudioStreamChanged,
    AudioStreamMessage,
    CallChange,
    CallEnded,
    CallMerged,
    CallStarted,
    ChannelAdded,
    ChannelAnswered,
    ChannelBridged,
    ChannelChange,
    ChannelHeld,
    ChannelHungUp,
    ChannelParked,
    ChannelRemoved,
    ChannelUnbridged,
    ChannelUnparked,
    ChannelUpdated,
    DtmfReceived,
    PlaybackChanged,
    RecordingChanged,
)
from controller.calls.channel import AudioStreamState, Call, Channel, ChannelState, PlaybackResult
from controller.calls.model import CallModel
from controller.calls.resync import LOST_CAUSE

__all__ = [
    "LOST_CAUSE",
    "AudioStreamChanged",
    "AudioStreamMessage",
    "AudioStreamState",
    "Call",
    "CallChange",
    "CallEnded",
    "CallMerged",
    "CallModel",
    "CallStarted",
    "Channel",
    "ChannelAdded",
    "ChannelAnswered",
    "ChannelBridged",
    "ChannelChange",
    "ChannelHeld",
    "ChannelHungUp",
    "ChannelParked",
    "ChannelRemoved",
    "ChannelState",
    "ChannelUnbridged",
    "ChannelUnparked",
    "ChannelUpdated",
    "DtmfReceived",
    "PlaybackChanged",
    "PlaybackResult",
    "RecordingChanged",
]
