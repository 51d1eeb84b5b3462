"""Decoding of event frames (``text/event-json`` and ``text/event-plain``) into the typed events.

Formats (both in shared/fixtures/freeswitch/esl_inbound_session.txt): JSON is one object whose
``Content-Length`` is a string and whose body is the string ``_body``; plain is URL-encoded ``Name: value``
lines, a blank line, and for events with a body an inner ``Content-Length`` then exactly that many bytes.

Exception tree: every failure is ``controller.freeswitch.protocol.ProtocolError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote

import orjson

from controller.freeswitch.events import (
    AudioStreamConnect,
    AudioStreamDisconnect,
    AudioStreamError,
    AudioStreamEvent,
    AudioStreamJson,
    AudioStreamPlay,
    BackgroundJob,
    ChannelAnswer,
    ChannelBridge,
    ChannelCreate,
    ChannelDestroy,
    ChannelEvent,
    ChannelExecute,
    ChannelExecuteComplete,
    ChannelHangup,
    ChannelHangupComplete,
    ChannelPark,
    ChannelProgress,
    ChannelProgressMedia,
    ChannelUnbridge,
    ChannelUnpark,
    Dtmf,
    Event,
    EventHeaders,
    OtherEvent,
    PlaybackStart,
    PlaybackStop,
    header_int,
)
from controller.freeswitch.protocol import Frame, ProtocolError, parse_content_length, parse_header_block

__all__ = ["decode_event", "decode_event_json", "decode_event_plain"]


def _channel_fields(h: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "uuid": h.get("Unique-ID", ""),
        "channel_name": h.get("Channel-Name", ""),
        "direction": h.get("Call-Direction", ""),
        "answer_state": h.get("Answer-State", ""),
        "call_state": h.get("Channel-Call-State", ""),
    }


def _play_file(body: str | None) -> str:
    if body is None:
        return ""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"mod_audio_stream::play body is not JSON: {exc}") from exc
    file = data.get("file") if isinstance(data, dict) else None
    if not isinstance(file, str):
        raise ProtocolError("mod_audio_stream::play body has no file")
    return file


_SIMPLE: Final[dict[str, type[ChannelEvent]]] = {
    "CHANNEL_CREATE": ChannelCreate,
    "CHANNEL_PROGRESS": ChannelProgress,
    "CHANNEL_PROGRESS_MEDIA": ChannelProgressMedia,
    "CHANNEL_ANSWER": ChannelAnswer,
    "CHANNEL_PARK": ChannelPark,
    "CHANNEL_UNPARK": ChannelUnpark,
    "CHANNEL_DESTROY": ChannelDestroy,
}

_AUDIO_STREAM: Final[dict[str, type[AudioStreamEvent]]] = {
    "mod_audio_stream::connect": AudioStreamConnect,
    "mod_audio_stream::disconnect": AudioStreamDisconnect,
    "mod_audio_stream::error": AudioStreamError,
    "mod_audio_stream::json": AudioStreamJson,
}


def _typed(name: str, raw: Mapping[str, Any], body: str | None) -> Event:
    """Build the typed event for ``name`` from its raw header dict."""
    headers = EventHeaders(raw)
    simple = _SIMPLE.get(name)
    if simple is not None:
        return simple(name=name, headers=headers, body=body, **_channel_fields(raw))
    if name == "BACKGROUND_JOB":
        return BackgroundJob(
            name=name, headers=headers, body=body, job_uuid=raw.get("Job-UUID", ""),
            command=raw.get("Job-Command", ""),
        )  # fmt: skip
    if name == "CUSTOM":
        subclass = raw.get("Event-Subclass", "")
        kind = _AUDIO_STREAM.get(subclass)
        if kind is not None:
            return kind(name=name, headers=headers, body=body, **_channel_fields(raw))
        if subclass == "mod_audio_stream::play":
            return AudioStreamPlay(
                name=name, headers=headers, body=body, file=_play_file(body), **_channel_fields(raw)
            )
        return OtherEvent(name=name, headers=headers, body=body)
    if name in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"):
        fields = _channel_fields(raw)
        fields.update(
            application=raw.get("Application", ""),
            application_data=raw.get("Application-Data", ""),
            application_uuid=raw.get("Application-UUID", ""),
        )
        if name == "CHANNEL_EXECUTE":
            return ChannelExecute(name=name, headers=headers, body=body, **fields)
        return ChannelExecuteComplete(
            name=name, headers=headers, body=body, response=raw.get("Application-Response", ""), **fields
        )
    return _typed_rest(name, raw, headers, body)


def _typed_rest(name: str, raw: Mapping[str, Any], headers: EventHeaders, body: str | None) -> Event:
    fields = _channel_fields(raw)
    common: dict[str, Any] = {"name": name, "headers": headers, "body": body, **fields}
    if name == "CHANNEL_HANGUP":
        return ChannelHangup(cause=raw.get("Hangup-Cause", ""), **common)
    if name == "CHANNEL_HANGUP_COMPLETE":
        return ChannelHangupComplete(cause=raw.get("Hangup-Cause", ""), **common)
    if name in ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE"):
        other = raw.get("Other-Leg-Unique-ID") or raw.get("Bridge-B-Unique-ID", "")
        kind = ChannelBridge if name == "CHANNEL_BRIDGE" else ChannelUnbridge
        return kind(other_uuid=other, **common)
    if name == "DTMF":
        return Dtmf(
            digit=raw.get("DTMF-Digit", ""), duration=header_int(raw.get("DTMF-Duration")),
            source=raw.get("DTMF-Source", ""), **common,
        )  # fmt: skip
    if name == "PLAYBACK_START":
        return PlaybackStart(file_path=raw.get("Playback-File-Path", ""), **common)
    if name == "PLAYBACK_STOP":
        return PlaybackStop(
            file_path=raw.get("Playback-File-Path", ""), status=raw.get("Playback-Status", ""),
            last_offset_pos=header_int(raw.get("variable_playback_last_offset_pos")), **common,
        )  # fmt: skip
    return OtherEvent(name=name, headers=headers, body=body)


def decode_event_json(body: bytes) -> Event:
    """Decode the body of a ``text/event-json`` frame.

    Raises:
        ProtocolError: not a JSON object, or no ``Event-Name``.
    """
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"event-json body is not JSON: {exc}") from exc
    if type(raw) is not dict:
        raise ProtocolError("event-json body is not a JSON object")
    name = raw.get("Event-Name")
    if type(name) is not str:
        raise ProtocolError("event-json has no Event-Name")
    event_body = raw.get("_body")
    if event_body is not None and type(event_body) is not str:
        raise ProtocolError("event-json _body is not a string")
    return _typed(name, raw, event_body)


def decode_event_plain(body: bytes) -> Event:
    """Decode the body of a ``text/event-plain`` frame (URL-encoded headers, optional inner body).

    Raises:
        ProtocolError: malformed header lines, a bad inner length, or no ``Event-Name``.
    """
    end = body.find(b"\n\n")
    block = body[:end] if end >= 0 else body.rstrip(b"\n")
    raw = parse_header_block(block)
    try:
        for key, value in raw.items():
            if "%" in value:
                raw[key] = unquote(value, errors="strict")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"event-plain header is not UTF-8 once URL-decoded: {exc}") from exc
    event_body: str | None = None
    length_text = raw.get("Content-Length")
    if length_text is not None:
        length = parse_content_length(length_text)
        inner = body[end + 2 : end + 2 + length] if end >= 0 else b""
        if len(inner) != length:
            raise ProtocolError(f"event-plain inner body is {len(inner)} bytes, Content-Length {length}")
        try:
            event_body = inner.decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"event-plain inner body is not UTF-8: {exc}") from exc
    name = raw.get("Event-Name")
    if name is None:
        raise ProtocolError("event-plain has no Event-Name")
    return _typed(name, raw, event_body)


def decode_event(frame: Frame) -> Event:
    """Decode an event frame of either format.

    Raises:
        ProtocolError: the frame is not an event or its body is malformed.
    """
    content_type = frame.content_type
    if content_type == "text/event-json":
        return decode_event_json(frame.body)
    if content_type == "text/event-plain":
        return decode_event_plain(frame.body)
    raise ProtocolError(f"not an event frame: Content-Type {content_type!r}")
