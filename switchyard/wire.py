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

The text messages after the metadata, both ways, are typed in :mod:`switchyard.messages`.

Exceptions::

    WireError            a frame breaks the protocol; .code/.reason say how to close
"""

from __future__ import annotations

import json
import re
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "CLOSE_BAD_DATA",
    "CLOSE_FULL",
    "CLOSE_GOING_AWAY",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CallType",
    "StreamMetadata",
    "WireError",
    "check_audio_frame",
    "encode_metadata",
    "parse_metadata",
]

# RFC 6455 section 7.4.1 close codes.
CLOSE_GOING_AWAY: Final = 1001
CLOSE_BAD_DATA: Final = 1003  # "received a type of data it cannot accept"
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_FULL: Final = 1013  # "try again later": the worker is at capacity

CallType = Literal["sip", "webrtc"]
"""Where a call comes from: a SIP phone or trunk, or a browser through Janus."""


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
    token: str | None = Field(None, max_length=96, description="switchyard.streamauth: controller-signed")


# JSON escapes FreeSWITCH would undo before the worker sees them (tests/fsemu/argsplit.py has the measured
# rules): ``\\``, ``\"``, ``\n``, ``\t``… become the bare characters; ``\uXXXX`` passes untouched.
_SHORT_ESCAPE: Final = re.compile(r'\\(["\\/bfnrt])')
_ESCAPED: Final = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def encode_metadata(meta: StreamMetadata) -> str:
    r"""``meta`` as compact JSON that survives FreeSWITCH's un-escaping of the api argument unchanged.

    Pure ASCII, and every ``"``, ``\``, ``'`` or control character inside a string is a ``\uXXXX``
    escape (non-ASCII too, as surrogate pairs beyond the BMP): the text then holds no backslash but those
    of ``\u`` and no single quote, which FreeSWITCH 1.10.12 passes as they are. The token is left out
    (``controller.workers.streams`` adds one per attempt).
    """
    text = json.dumps(meta.model_dump(exclude={"token"}), ensure_ascii=True, separators=(",", ":"))

    def unicode_escape(match: re.Match[str]) -> str:
        return f"\\u{ord(_ESCAPED[match.group(1)]):04x}"

    return _SHORT_ESCAPE.sub(unicode_escape, text).replace("'", "\\u0027")


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
