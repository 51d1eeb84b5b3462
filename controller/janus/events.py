"""Janus event-handler events, sans-IO: the JSON Janus's HTTP event handler posts, parsed into typed events.

Janus (1.1.2) hands every event handler one JSON object per event, built in ``src/events.c``
(``janus_events_notify_handlers``)::

    {"emitter": "<server_name>", "type": <mask bit>, "subtype": <n, only when > 0>,
     "timestamp": <janus_get_real_time(), microseconds>, "session_id": <id>, "handle_id": <id>,
     "opaque_id": "<...>", "event": {<body, depends on the type>}}

The sample HTTP handler (``src/events/janus_sampleevh.c``) POSTs one such object, or, with ``grouping =
true``, a JSON array of up to 100 of them. Types are the bits of ``src/events/eventhandler.h``: 1 session,
2 handle, 4 external, 8 jsep, 16 webrtc, 32 media, 64 plugin, 128 transport, 256 core.

What the controller acts on becomes a frozen, slotted dataclass: ``SessionEvent``, ``HandleEvent``,
``WebrtcStateEvent``, ``MediaStatsEvent``, ``PluginEvent``, ``CoreEvent``. Everything else (jsep, transport,
external, candidates, selected pairs, media receiving/slow-link, unknown types) stays an ``OtherEvent``
holding its raw body. Every event has ``type`` (the numeric type), so ``type_label`` names it. The shapes
were checked against what a Janus 1.1.2 posted (the captures in tests/unit/test_janus_events.py).

Exception tree (this module)::

    ValueError
    └── JanusEventError           the body is not JSON, or not an event / array of events shaped as Janus does

Nothing else escapes: a body either parses or raises ``JanusEventError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import ClassVar, Final, Literal, TypeVar

import orjson

__all__ = [
    "DTLS_STATES",
    "ICE_STATES",
    "PC_STATES",
    "CoreEvent",
    "HandleEvent",
    "JanusEvent",
    "JanusEventError",
    "JanusEventType",
    "MediaStats",
    "MediaStatsEvent",
    "OtherEvent",
    "PluginEvent",
    "SessionEvent",
    "WebrtcStateEvent",
    "decode_body",
    "parse_event",
    "parse_events",
    "type_label",
]

SIP_PLUGIN: Final = "janus.plugin.sip"

ICE_STATES: Final = frozenset({"disconnected", "gathering", "connecting", "connected", "ready", "failed"})
"""``janus_ice_state_name`` in src/ice.c (libnice component states)."""
DTLS_STATES: Final = frozenset({"created", "trying", "connected", "failed"})
"""``janus_get_dtls_srtp_state`` in src/dtls.c."""
PC_STATES: Final = frozenset({"webrtcup", "hangup"})
"""``"connection"`` values: src/ice.c ``janus_ice_dtls_handshake_done`` and ``janus_ice_notify_hangup``."""

_T = TypeVar("_T")
_MEDIA_STATS_SUBTYPE: Final = 3  # JANUS_EVENT_SUBTYPE_MEDIA_STATS, src/events/eventhandler.h


class JanusEventError(ValueError):
    """The body is not JSON, or an event in it is not shaped as Janus's event handlers are given it."""


class JanusEventType(IntEnum):
    """The event types (``JANUS_EVENT_TYPE_*`` in src/events/eventhandler.h): one bit each."""

    SESSION = 1
    HANDLE = 2
    EXTERNAL = 4
    JSEP = 8
    WEBRTC = 16
    MEDIA = 32
    PLUGIN = 64
    TRANSPORT = 128
    CORE = 256


def type_label(code: int) -> str:
    """The lower-case name of an event type (``"session"``, ``"media"``...), ``"other"`` for unknown codes."""
    try:
        return JanusEventType(code).name.lower()
    except ValueError:
        return "other"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A session ``created``, ``destroyed``, or reclaimed by the watchdog (``timeout``) (src/janus.c)."""

    type: ClassVar[int] = JanusEventType.SESSION
    emitter: str | None
    timestamp_us: int | None
    session_id: int
    name: str
    transport: str | None = None  # "created": the transport package, e.g. "janus.transport.http"

    @property
    def ended(self) -> bool:
        """The session is gone (``destroyed`` by request, or ``timeout``)."""
        return self.name in ("destroyed", "timeout")


@dataclass(frozen=True, slots=True)
class HandleEvent:
    """A handle ``attached`` to / ``detached`` from a plugin (src/ice.c); ``plugin`` may lack on detach."""

    type: ClassVar[int] = JanusEventType.HANDLE
    emitter: str | None
    timestamp_us: int | None
    session_id: int
    handle_id: int
    name: str
    plugin: str | None
    opaque_id: str | None = None


@dataclass(frozen=True, slots=True)
class WebrtcStateEvent:
    """An ICE state (``"ice"``), DTLS state (``"dtls"``) or PeerConnection state (``"connection"``) change.

    ``kind`` is ``"ice"``, ``"dtls"`` or ``"connection"``; ``state`` the value Janus sent (see ``ICE_STATES``,
    ``DTLS_STATES``, ``PC_STATES``). ``reason`` comes with ``"connection": "hangup"``.
    """

    type: ClassVar[int] = JanusEventType.WEBRTC
    emitter: str | None
    timestamp_us: int | None
    session_id: int
    handle_id: int
    kind: Literal["ice", "dtls", "connection"]
    state: str
    stream_id: int | None = None
    component_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MediaStats:
    """Statistics of one medium (m-line, or simulcast layer) of a PeerConnection, built in src/ice.c
    (``janus_ice_outgoing_stats_handle``). Counts are cumulative since the medium started.

    ``rtt_ms`` (src/rtcp.c computes it in milliseconds) is only on the base layer of audio/video; the
    jitters are milliseconds too (``janus_rtcp_context_get_jitter`` divides RTP-clock units by the clock
    rate / 1000). Data channels (``media == "data"``) carry only packet and byte counts.
    """

    media: str  # "audio", "video", "video-sim1", "video-sim2", "data"
    mid: str | None
    packets_received: int
    packets_sent: int
    mindex: int | None = None
    codec: str | None = None
    rtt_ms: int | None = None
    lost: int | None = None  # lost in, counted by Janus
    lost_by_remote: int | None = None  # lost out: the peer's RTCP receiver reports (24 bits)
    jitter_local_ms: int | None = None
    jitter_remote_ms: int | None = None
    in_link_quality: int | None = None
    out_link_quality: int | None = None
    bytes_received: int | None = None
    bytes_sent: int | None = None


@dataclass(frozen=True, slots=True)
class MediaStatsEvent:
    """Media statistics of one handle: one medium, or all of them with ``combine_media_stats = true``."""

    type: ClassVar[int] = JanusEventType.MEDIA
    emitter: str | None
    timestamp_us: int | None
    session_id: int
    handle_id: int
    streams: tuple[MediaStats, ...]


@dataclass(frozen=True, slots=True)
class PluginEvent:
    """An event a plugin sent (``{"plugin": ..., "data": {...}}``); session and handle may be absent.

    For the SIP plugin, ``sip_event`` is ``data["event"]`` (``"calling"``, ``"incomingcall"``, ``"accepted"``,
    ``"hangup"``...) and ``sip_call_id`` is ``data["call-id"]`` when present (src/plugins/janus_sip.c).
    """

    type: ClassVar[int] = JanusEventType.PLUGIN
    emitter: str | None
    timestamp_us: int | None
    session_id: int | None
    handle_id: int | None
    plugin: str
    data: Mapping[str, object]
    sip_event: str | None = None
    sip_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class CoreEvent:
    """Janus itself ``started`` or is shutting down (``shutdown``) (src/janus.c, ``main``)."""

    type: ClassVar[int] = JanusEventType.CORE
    emitter: str | None
    timestamp_us: int | None
    status: str | None


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """Any event the controller does not act on, kept raw: ``body`` is the event's ``"event"`` value."""

    type: int
    subtype: int | None
    emitter: str | None
    timestamp_us: int | None
    session_id: int | None
    handle_id: int | None
    body: object


JanusEvent = (
    SessionEvent | HandleEvent | WebrtcStateEvent | MediaStatsEvent | PluginEvent | CoreEvent | OtherEvent
)


def decode_body(data: bytes) -> tuple[dict[str, object], ...]:
    """Decode a POSTed body: one event object, or an array of them (``grouping = true``).

    Raises:
        JanusEventError: not UTF-8 JSON, or neither an object nor an array of objects.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JanusEventError(f"body is not valid JSON: {exc}") from exc
    if isinstance(value, dict):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return tuple(value)
    raise JanusEventError("body is neither an event object nor an array of event objects")


def parse_events(data: bytes) -> tuple[JanusEvent, ...]:
    """Decode and parse a whole body; any malformed event fails the lot.

    Raises:
        JanusEventError: see ``decode_body`` and ``parse_event``.
    """
    return tuple(parse_event(item) for item in decode_body(data))


def parse_event(item: object) -> JanusEvent:
    """One event object (as ``decode_body`` returns them) → a typed event, or ``OtherEvent``.

    Raises:
        JanusEventError: not an object, no integer ``type``, or a field we act on is missing or mistyped.
    """
    if not isinstance(item, dict):
        raise JanusEventError("an event must be a JSON object")
    code = _req(_int(item, "type"), "type")
    body = item.get("event")
    if code == JanusEventType.SESSION:
        return _session(item, _object(body, "event"))
    if code == JanusEventType.HANDLE:
        return _handle(item, _object(body, "event"))
    if code == JanusEventType.WEBRTC:
        return _webrtc(item, _object(body, "event"))
    if code == JanusEventType.MEDIA and _is_stats(item, body):
        return MediaStatsEvent(*_head(item), *_ids(item), _media(body))
    if code == JanusEventType.PLUGIN:
        return _plugin(item, _object(body, "event"))
    if code == JanusEventType.CORE:
        return CoreEvent(*_head(item), _str(_object(body, "event"), "status"))
    return _other(item, code, body)


def _other(item: dict[str, object], code: int, body: object) -> OtherEvent:
    ids = _int(item, "session_id"), _int(item, "handle_id")
    return OtherEvent(code, _int(item, "subtype"), *_head(item), *ids, body)


def _head(item: dict[str, object]) -> tuple[str | None, int | None]:
    return _str(item, "emitter"), _int(item, "timestamp")


def _ids(item: dict[str, object]) -> tuple[int, int]:
    return _req(_int(item, "session_id"), "session_id"), _req(_int(item, "handle_id"), "handle_id")


def _session(item: dict[str, object], body: dict[str, object]) -> SessionEvent:
    transport = body.get("transport")
    # events.c puts the transport info inside the body (the sample handler's comment shows it outside).
    package = _str(transport, "transport") if isinstance(transport, dict) else None
    session_id = _req(_int(item, "session_id"), "session_id")
    return SessionEvent(*_head(item), session_id, _req(_str(body, "name"), "name"), package)


def _handle(item: dict[str, object], body: dict[str, object]) -> HandleEvent:
    name, plugin = _req(_str(body, "name"), "name"), _str(body, "plugin")
    return HandleEvent(*_head(item), *_ids(item), name, plugin, _str(item, "opaque_id"))


def _webrtc(item: dict[str, object], body: dict[str, object]) -> WebrtcStateEvent | OtherEvent:
    kind: Literal["ice", "dtls", "connection"]
    for kind in ("ice", "dtls", "connection"):
        if kind in body:
            state = _req(_str(body, kind), kind)
            where = _int(body, "stream_id"), _int(body, "component_id")
            return WebrtcStateEvent(*_head(item), *_ids(item), kind, state, *where, _str(body, "reason"))
    # Local/remote candidates and the selected pair (subtypes 2, 3, 4) are not acted on.
    return _other(item, JanusEventType.WEBRTC, body)


def _is_stats(item: dict[str, object], body: object) -> bool:
    if _int(item, "subtype") == _MEDIA_STATS_SUBTYPE:
        return True
    # Without a subtype, recognise stats by shape: combined stats are an array, single ones count packets.
    return isinstance(body, list) or (isinstance(body, dict) and "packets-received" in body)


def _media(body: object) -> tuple[MediaStats, ...]:
    if isinstance(body, dict):
        return (_medium(body),)
    if isinstance(body, list):
        return tuple(_medium(_object(entry, "event[]")) for entry in body)
    raise JanusEventError("media stats: 'event' must be an object or an array of objects")


def _medium(body: dict[str, object]) -> MediaStats:
    return MediaStats(
        media=_req(_str(body, "media"), "media"),
        mid=_str(body, "mid"),
        packets_received=_req(_count(body, "packets-received"), "packets-received"),
        packets_sent=_req(_count(body, "packets-sent"), "packets-sent"),
        mindex=_count(body, "mindex"),
        codec=_str(body, "codec"),
        rtt_ms=_count(body, "rtt"),
        lost=_count(body, "lost"),
        lost_by_remote=_count(body, "lost-by-remote"),
        jitter_local_ms=_count(body, "jitter-local"),
        jitter_remote_ms=_count(body, "jitter-remote"),
        in_link_quality=_count(body, "in-link-quality"),
        out_link_quality=_count(body, "out-link-quality"),
        bytes_received=_count(body, "bytes-received"),
        bytes_sent=_count(body, "bytes-sent"),
    )


def _plugin(item: dict[str, object], body: dict[str, object]) -> PluginEvent:
    plugin = _req(_str(body, "plugin"), "plugin")
    data = _object(body.get("data"), "data")
    sip_event = sip_call_id = None
    if plugin == SIP_PLUGIN:
        sip_event, sip_call_id = _str(data, "event"), _str(data, "call-id")
    ids = _int(item, "session_id"), _int(item, "handle_id")
    return PluginEvent(*_head(item), *ids, plugin, MappingProxyType(data), sip_event, sip_call_id)


def _object(value: object, name: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise JanusEventError(f"{name!r} must be a JSON object")
    return value


def _req(value: _T | None, key: str) -> _T:
    if value is None:
        raise JanusEventError(f"{key!r} is missing")
    return value


def _int(obj: dict[str, object], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise JanusEventError(f"{key!r} must be an integer")
    return value


def _count(obj: dict[str, object], key: str) -> int | None:
    value = _int(obj, key)
    if value is not None and value < 0:
        raise JanusEventError(f"{key!r} must not be negative")
    return value


def _str(obj: dict[str, object], key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise JanusEventError(f"{key!r} must be a string")
