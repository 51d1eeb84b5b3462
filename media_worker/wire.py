"""What mod_audio_stream and the controller send over a stream's WebSocket, and what the worker answers.

Sans-IO: functions take frame payloads and return typed values or raise :class:`WireError` carrying the
WebSocket close code and reason to use. Facts from ../shared/fixtures/freeswitch/audio_stream_wire.txt:

* the first frame is TEXT: the metadata argument of ``uuid_audio_stream <uuid> start … [metadata]``;
* then BINARY frames of raw L16 little-endian, one per media-bug read, so the size follows the channel's
  ptime (320 B = 20 ms at 8 kHz, 480 B = 30 ms at 8 kHz, 640 B = 20 ms at 16 kHz) and may change mid-call;
* later TEXT frames are ``uuid_audio_stream <uuid> send_text <json>`` from the controller: only the first
  space-separated word is sent, so the controller writes JSON without spaces;
* the worker answers with ``streamAudio`` (FreeSWITCH writes ``<temp_dir>/<uuid>_<n>.tmp.r16`` for the n-th
  one and fires ``mod_audio_stream::play``) or any other JSON, relayed as ``mod_audio_stream::json``.

Exceptions::

    WireError            a frame breaks the protocol; .code/.reason say how to close
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "CLOSE_BAD_DATA",
    "CLOSE_FULL",
    "CLOSE_GOING_AWAY",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "BargeIn",
    "CallType",
    "ControlMessage",
    "Dtmf",
    "PlaybackEvent",
    "StreamMetadata",
    "WireError",
    "action_message",
    "barge_in_message",
    "check_audio_frame",
    "parse_control",
    "parse_metadata",
    "stream_audio_message",
    "transcript_message",
]

# RFC 6455 section 7.4.1 close codes.
CLOSE_GOING_AWAY: Final = 1001
CLOSE_BAD_DATA: Final = 1003  # "received a type of data it cannot accept"
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_FULL: Final = 1013  # "try again later": the worker is at capacity

CallType = Literal["sip", "webrtc"]
"""Where a call comes from: a SIP phone or trunk, or a browser through Janus."""

_PLAY_FILE = re.compile(r"_(\d+)\.tmp\.[A-Za-z0-9]+$")


class WireError(Exception):
    """A frame the worker cannot accept; close the socket with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class StreamMetadata(BaseModel):
    """The metadata JSON the controller passes to ``uuid_audio_stream … start``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    call_id: str = Field(min_length=1, max_length=128)
    sample_rate: Literal[8000, 16000]
    call_type: CallType = "sip"
    caller: str = Field("", max_length=256)
    callee: str = Field("", max_length=256)
    agent: str = Field("default", min_length=1, max_length=64)
    language: str = Field("en", max_length=16)
    channels: Literal[1] = 1


def parse_metadata(text: str | None, path_call_id: str) -> StreamMetadata:
    """Validate the first text frame; its ``call_id`` must be the one in the URL path.

    Raises:
        WireError: missing, not JSON, invalid fields (1008 with the field and reason).
    """
    if text is None:
        raise WireError(CLOSE_POLICY, "metadata: the first frame must be the metadata text")
    try:
        meta = StreamMetadata.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "metadata"
        raise WireError(CLOSE_POLICY, f"metadata.{where}: {first['msg']}"[:120]) from exc
    if meta.call_id != path_call_id:
        raise WireError(CLOSE_POLICY, "metadata.call_id: differs from the URL path")
    return meta


def check_audio_frame(data: bytes, max_bytes: int) -> None:
    """A binary frame must hold whole 16-bit samples and be no longer than ``max_bytes``.

    Raises:
        WireError: 1009 when too long, 1003 for an odd byte count or an empty frame.
    """
    size = len(data)
    if size > max_bytes:
        raise WireError(CLOSE_TOO_BIG, f"audio frame of {size} bytes exceeds {max_bytes}")
    if size == 0 or size & 1:
        raise WireError(CLOSE_BAD_DATA, f"audio frame of {size} bytes is not whole L16 samples")


@dataclass(frozen=True, slots=True)
class PlaybackEvent:
    """The controller saw PLAYBACK_START/STOP of the n-th ``streamAudio`` file (``index``)."""

    started: bool
    file: str
    index: int | None
    status: str = ""


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A DTMF digit the caller pressed."""

    digit: str


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The controller broke the playback itself (e.g. an API call)."""


ControlMessage = PlaybackEvent | Dtmf | BargeIn


def parse_control(text: str) -> ControlMessage | None:
    """Decode a text frame after the metadata; ``None`` for a well-formed message of an unknown type.

    Raises:
        WireError: 1003 when the text is not a JSON object with a string ``type``.
    """
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise WireError(CLOSE_BAD_DATA, "text frame is not JSON") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise WireError(CLOSE_BAD_DATA, "text frame is not a JSON object with a type")
    kind = msg["type"]
    if kind == "playback":
        event, file = msg.get("event"), msg.get("file")
        if event not in ("start", "stop") or not isinstance(file, str):
            raise WireError(CLOSE_BAD_DATA, "playback: needs event start|stop and file")
        match = _PLAY_FILE.search(file)
        index = int(match.group(1)) if match else None
        return PlaybackEvent(event == "start", file, index, str(msg.get("status", "")))
    if kind == "dtmf":
        digit = msg.get("digit")
        if not isinstance(digit, str) or len(digit) != 1 or digit not in "0123456789*#ABCDabcd":
            raise WireError(CLOSE_BAD_DATA, "dtmf: digit must be one of 0-9 * # A-D")
        return Dtmf(digit.upper())
    if kind == "barge_in":
        return BargeIn()
    return None


def stream_audio_message(pcm16k: bytes) -> str:
    """``streamAudio`` with raw 16 kHz L16 (FreeSWITCH writes it to a ``.r16`` file)."""
    audio = base64.b64encode(pcm16k).decode("ascii")
    return (
        '{"type":"streamAudio","data":{"audioDataType":"raw","sampleRate":16000,"audioData":"' + audio + '"}}'
    )


def action_message(action: str, argument: str = "") -> str:
    """Ask the controller to act on the call once the agent's queued speech has played
    (``transfer`` to an extension, ``hangup``, ``dtmf`` digits)."""
    body: dict[str, str] = {"type": "action", "action": action}
    if argument:
        body["argument"] = argument
    return orjson.dumps(body).decode()


def transcript_message(turn: int, caller: str, agent: str, latency_ms: dict[str, float]) -> str:
    """One finished turn for the controller's event feed and the CDR."""
    body = {"type": "transcript", "turn": turn, "caller": caller, "agent": agent, "latency_ms": latency_ms}
    return orjson.dumps(body).decode()


def barge_in_message() -> str:
    """Tell the controller to break the agent's playback (relayed as ``mod_audio_stream::json``)."""
    return '{"type":"barge_in"}'
