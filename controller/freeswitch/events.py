"""FreeSWITCH events: the typed events the controller acts on (decoding is in ``decode.py``).

An event frame is either ``text/event-json`` (one JSON object; ``Content-Length`` is a string and the body,
if any, is the string ``_body``) or ``text/event-plain`` (URL-encoded ``Name: value`` lines, a blank line,
and for events with a body an inner ``Content-Length`` header followed by exactly that many bytes). Both
forms are in shared/fixtures/freeswitch/esl_inbound_session.txt (SESSION 1 plain, SESSION 2 json).

What we act on becomes a frozen, slotted dataclass (``ChannelPark``, ``BackgroundJob``,
``AudioStreamPlay`` ...); everything else stays an ``OtherEvent`` with a read-only header mapping.
Every typed event keeps the full ``headers`` so nothing FreeSWITCH said is lost.

Exception tree: decoding raises ``controller.freeswitch.protocol.ProtocolError`` (an ``EslError``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from controller.freeswitch.protocol import ProtocolError

__all__ = [
    "AudioStreamConnect",
    "AudioStreamDisconnect",
    "AudioStreamError",
    "AudioStreamJson",
    "AudioStreamPlay",
    "BackgroundJob",
    "ChannelAnswer",
    "ChannelBridge",
    "ChannelCreate",
    "ChannelDestroy",
    "ChannelEvent",
    "ChannelExecute",
    "ChannelExecuteComplete",
    "ChannelHangup",
    "ChannelHangupComplete",
    "ChannelPark",
    "ChannelProgress",
    "ChannelProgressMedia",
    "ChannelUnbridge",
    "ChannelUnpark",
    "ChannelsResync",
    "Dtmf",
    "Event",
    "EventHeaders",
    "OtherEvent",
    "PlaybackStart",
    "PlaybackStop",
    "header_int",
]

_ARRAY_PREFIX: Final = "ARRAY::"
_ARRAY_SEP: Final = "|:"


def header_int(value: Any) -> int:
    """A header value as a non-negative integer (0 when absent or not a number)."""
    if type(value) is str and value.isdigit():
        return int(value)
    return 0


class EventHeaders(Mapping[str, str]):
    """Read-only view of an event's headers.

    JSON events carry some values as arrays (``variable_DP_MATCH``); they read back in FreeSWITCH's plain
    form ``ARRAY::a|:b`` so the mapping means the same whichever format the event came in.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, name: str) -> str:
        value = self._data[name]
        if type(value) is str:
            return value
        if isinstance(value, list):
            return _ARRAY_PREFIX + _ARRAY_SEP.join(str(v) for v in value)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, name: object) -> bool:
        return name in self._data

    @property
    def raw(self) -> Mapping[str, Any]:
        """The decoded header dict itself, for hot-path lookups (~50 ns instead of ~0.8 µs through
        ``Mapping.get``). Values are strings, except JSON arrays, which stay lists."""
        return self._data

    def __repr__(self) -> str:
        return f"EventHeaders({len(self._data)} headers, Event-Name={self._data.get('Event-Name')!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of all decoded events: the name, the full headers and the exact body (None when absent)."""

    name: str
    headers: EventHeaders
    body: str | None

    @property
    def subclass(self) -> str:
        """``Event-Subclass`` of CUSTOM events ('' otherwise)."""
        return self.headers.get("Event-Subclass", "")

    @property
    def sequence(self) -> int:
        """``Event-Sequence``: FreeSWITCH's global event counter (0 when absent or not a number)."""
        return header_int(self.headers.raw.get("Event-Sequence"))

    @property
    def timestamp_us(self) -> int:
        """``Event-Date-Timestamp`` in microseconds since the epoch (0 when absent or not a number)."""
        return header_int(self.headers.raw.get("Event-Date-Timestamp"))


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherEvent(Event):
    """An event we do not act on, kept as headers + body."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BackgroundJob(Event):
    """Result of a ``bgapi`` command, matched to it by ``job_uuid``; ``body`` is the command's output."""

    job_uuid: str
    command: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEvent(Event):
    """An event about one channel (``Unique-ID``) with the state headers every channel event carries."""

    uuid: str
    channel_name: str
    direction: str
    answer_state: str
    call_state: str

    def variable(self, name: str, default: str = "") -> str:
        """A channel variable as carried by this event (``variable_<name>``)."""
        return self.headers.get("variable_" + name, default)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelCreate(ChannelEvent):
    """CHANNEL_CREATE."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelProgress(ChannelEvent):
    """CHANNEL_PROGRESS (ringing indicated)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelProgressMedia(ChannelEvent):
    """CHANNEL_PROGRESS_MEDIA (early media)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelAnswer(ChannelEvent):
    """CHANNEL_ANSWER."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelPark(ChannelEvent):
    """CHANNEL_PARK: the dialplan handed the channel to us."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelUnpark(ChannelEvent):
    """CHANNEL_UNPARK."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelBridge(ChannelEvent):
    """CHANNEL_BRIDGE, fired on one leg only (esl_dtmf_and_bridge.txt finding 3)."""

    other_uuid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelUnbridge(ChannelEvent):
    """CHANNEL_UNBRIDGE, fired on the same leg as the BRIDGE."""

    other_uuid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelExecute(ChannelEvent):
    """CHANNEL_EXECUTE: a dialplan application started."""

    application: str
    application_data: str
    application_uuid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelExecuteComplete(ChannelExecute):
    """CHANNEL_EXECUTE_COMPLETE; ``response`` is ``Application-Response``."""

    response: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHangup(ChannelEvent):
    """CHANNEL_HANGUP with its ``Hangup-Cause``."""

    cause: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHangupComplete(ChannelHangup):
    """CHANNEL_HANGUP_COMPLETE: the channel is done; carries the CDR variables."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDestroy(ChannelEvent):
    """CHANNEL_DESTROY."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Dtmf(ChannelEvent):
    """DTMF: one digit; ``duration`` in samples at 8 kHz; ``source`` e.g. APP, RTP, UNKNOWN."""

    digit: str
    duration: int
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStart(ChannelEvent):
    """PLAYBACK_START of ``file_path``."""

    file_path: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStop(ChannelEvent):
    """PLAYBACK_STOP; ``status`` is ``done`` or ``break`` (the only way to tell them apart).

    ``last_offset_pos`` (channel samples) is the real position; ``variable_playback_ms`` is wrong after a
    break on a rate-mismatched file (esl_playback_queue.txt finding 6).
    """

    file_path: str
    status: str
    last_offset_pos: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioStreamEvent(ChannelEvent):
    """Base of the CUSTOM ``mod_audio_stream::*`` events; ``body`` is the module's JSON text."""

    def body_json(self) -> Any:
        """The body parsed as JSON (None when there is no body).

        Raises:
            ProtocolError: the body is not JSON.
        """
        if self.body is None:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(f"{self.subclass} body is not JSON: {exc}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioStreamConnect(AudioStreamEvent):
    """``mod_audio_stream::connect``: the WebSocket to the worker is open (``+OK`` from start is not)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioStreamDisconnect(AudioStreamEvent):
    """``mod_audio_stream::disconnect``: fired only when the worker closed the socket."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioStreamError(AudioStreamEvent):
    """``mod_audio_stream::error``: the connection failed; the media bug is gone."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioStreamJson(AudioStreamEvent):
    """``mod_audio_stream::json``: a text message from the worker, verbatim in ``body``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioStreamPlay(AudioStreamEvent):
    """``mod_audio_stream::play``: FreeSWITCH wrote returned audio to ``file``; it does not play it."""

    file: str


@dataclass(frozen=True, slots=True)
class ChannelsResync:
    """Not a wire event: the node's live channels, read after a (re)connect.

    The adapter emits it into the event stream after ``show channels as json`` and ``show calls as json``
    so the call model can drop channels that ended while we were away and add the ones that appeared.
    ``channels`` are the rows of ``show channels``; ``calls`` the rows of ``show calls`` (bridged pairs carry
    ``b_uuid``). ``down_since_us`` is when the previous connection ended (0 on the first): the last moment
    the node's channels were known. The controller completes the snapshot (``controller.calls.snapshot``)
    with ``details`` (each channel's own ``uuid_dump``, by uuid) and ``streaming`` (uuids that still carry
    mod_audio_stream's media bug). A ``late`` snapshot is a second look a moment after the first (the core
    database lags the events: a channel created just before the connect may be listed only later): it only
    adds channels the model does not know.
    """

    node: str
    channels: tuple[Mapping[str, str], ...]
    calls: tuple[Mapping[str, str], ...]
    down_since_us: int = 0
    details: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    streaming: frozenset[str] = frozenset()
    late: bool = False
