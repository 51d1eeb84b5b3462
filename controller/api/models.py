"""Request and response bodies of the call API (pydantic; the OpenAPI document is generated from them).

Everything that ends up inside an ESL command line is checked by pattern here, so a bad request is a 422
that names the field; the command builders (``controller.freeswitch.commands``, whose patterns these share)
check every argument again, so no space, newline, brace or comma can reach FreeSWITCH from a request.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controller.freeswitch.commands import (
    CONTEXT_PATTERN,
    DTMF_PATTERN,
    HANGUP_CAUSES,
    STREAM_URL_PATTERN,
    VAR_VALUE_PATTERN,
)

__all__ = [
    "ActionResult",
    "BridgeBody",
    "CallCreated",
    "CallList",
    "CallView",
    "DtmfBody",
    "HangupBody",
    "LegBody",
    "LegView",
    "OriginateBody",
    "OriginateView",
    "PlayBody",
    "RecordBody",
    "StreamBody",
    "TransferBody",
]

_ID = r"^[A-Za-z0-9-]{1,64}$"
_NUMBER = r"^[A-Za-z0-9_.+#*-]{1,64}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LegBody(_Body):
    """Acts on one leg of the call (default: its first live leg)."""

    leg: str | None = Field(
        None, pattern=_ID, description="uuid of the leg (default: the call's first live leg)"
    )


class HangupBody(LegBody):
    """Hang up a leg."""

    cause: str = Field("NORMAL_CLEARING", description="Q.850 hangup cause name")

    @field_validator("cause")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in HANGUP_CAUSES:
            raise ValueError(f"unknown hangup cause {value!r}")
        return value


class TransferBody(LegBody):
    """Blind transfer: the leg runs the dialplan again at ``destination``."""

    destination: str = Field(pattern=_NUMBER, description="extension to transfer to")
    context: str | None = Field(
        None, pattern=CONTEXT_PATTERN, description="dialplan context (default: calls.context)"
    )


class BridgeBody(LegBody):
    """Bridge a leg of this call with a leg of another call."""

    other: str = Field(pattern=_ID, description="id of the other call")
    other_leg: str | None = Field(None, pattern=_ID, description="leg of the other call (default: its first)")


class DtmfBody(LegBody):
    """Send DTMF digits to the far end of the leg."""

    digits: str = Field(pattern=DTMF_PATTERN, description="digits (w = 500 ms pause)")


class PlayBody(LegBody):
    """Play a file or tone to the leg (queued behind what is playing)."""

    file: str = Field(
        pattern=r"^(/[A-Za-z0-9_./-]+|tone_stream://[A-Za-z0-9%(),;=.-]+|silence_stream://[0-9,]+)$",
        max_length=512,
        description="absolute path on the FreeSWITCH host under calls.media_dirs or calls.recordings_dir "
        "(no . or .. segment), tone_stream://… or silence_stream://…",
    )

    @field_validator("file")
    @classmethod
    def _no_dot_segments(cls, file: str) -> str:
        if file.startswith("/") and any(part in ("", ".", "..") for part in file[1:].split("/")):
            raise ValueError("a path may not hold an empty, . or .. segment")
        return file


class RecordBody(LegBody):
    """Start or stop recording the leg (one file per start, under ``calls.recordings_dir/<call id>/``)."""

    action: Literal["start", "stop"]


class StreamBody(LegBody):
    """Start or stop the leg's audio stream (mod_audio_stream)."""

    action: Literal["start", "stop"]
    url: str | None = Field(
        None,
        pattern=STREAM_URL_PATTERN,
        max_length=512,
        description="worker WebSocket URL; default: the least-loaded healthy worker",
    )
    agent: str = Field(
        "default",
        pattern=CONTEXT_PATTERN,
        description="agent named in the metadata (default: the worker's shipped agent)",
    )
    rate: Literal[8000, 16000] | None = Field(None, description="sample rate (default: the leg's, 8k or 16k)")


class OriginateBody(_Body):
    """Place an outbound call; it parks when answered (or streams to ``agent``)."""

    target: Literal["user", "extension", "gateway"] = Field(description="what ``destination`` is")
    destination: str = Field(pattern=_NUMBER, description="SIP user, extension, or number via the gateway")
    gateway: str | None = Field(None, pattern=CONTEXT_PATTERN, description="gateway (target gateway)")
    context: str | None = Field(
        None,
        pattern=CONTEXT_PATTERN,
        description="context (target extension; default: calls.context)",
    )
    node: str | None = Field(None, description="FreeSWITCH node (default: the first connected)")
    agent: str | None = Field(None, pattern=CONTEXT_PATTERN, description="stream the call to this agent")
    caller_id_number: str | None = Field(None, pattern=_NUMBER, description="caller id number presented")
    caller_id_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.+-]{1,64}$", description="caller id name")
    timeout_s: int = Field(30, ge=1, le=300, description="ring time before giving up")
    variables: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="extra channel variables (names [a-z0-9_])"
    )

    @field_validator("variables")
    @classmethod
    def _safe(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", key):
                raise ValueError(f"variable name {key!r}: lower-case letters, digits and _ only")
            if not re.fullmatch(VAR_VALUE_PATTERN, item):
                raise ValueError(f"variable {key}: value has characters FreeSWITCH would misparse")
        return value


class CallCreated(BaseModel):
    """The new call: answered (201), or pending (202) when FreeSWITCH's answer to the originate was lost
    with the ESL connection or is late; GET /v1/calls/{call_id} then tells how it ended (``originate``).
    Do not retry a pending call blindly: a retry with the same Idempotency-Key gets this same call."""

    call_id: str = Field(description="id of the call (the uuid of its first leg, chosen by the controller)")
    node: str = Field(description="FreeSWITCH node that placed it")
    status: Literal["answered", "pending"] = Field("answered", description="where the originate stands")


class OriginateView(BaseModel):
    """The originate that placed a call (POST /v1/calls), while the controller remembers it."""

    status: Literal["pending", "answered", "failed"]
    cause: str = Field(
        description="why it failed: FreeSWITCH's cause (USER_BUSY...), or LOST_WITH_ESL_CONNECTION when "
        "FreeSWITCH had no such channel after the originate's answer was lost; '' otherwise"
    )


class ActionResult(BaseModel):
    """What an action did."""

    call_id: str = Field(description="the call acted on")
    leg: str = Field(description="the leg acted on")
    result: str = Field(description="e.g. answered, hungup, playing, queued, recording")
    files: list[str] = Field(default_factory=list, description="recording files concerned")


class LegView(BaseModel):
    """One leg of a call."""

    uuid: str
    name: str
    direction: str
    state: str = Field(description="new, ringing, early, answered or hangup")
    caller_id_number: str
    destination_number: str
    parked: bool
    held: bool
    bridged_to: str
    audio_stream: str
    playing: str
    recordings: list[str]
    created_at: datetime | None
    answered_at: datetime | None


class CallView(BaseModel):
    """A live (or just ended) call."""

    id: str
    node: str
    ended: bool
    created_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    hangup_cause: str
    legs: list[LegView]
    originate: OriginateView | None = Field(
        None, description="the originate that placed the call through the API (absent: none remembered)"
    )


class CallList(BaseModel):
    """The live calls."""

    items: list[CallView]
