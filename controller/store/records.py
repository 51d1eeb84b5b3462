"""Call detail records as stored and served: frozen pydantic models, and the query / page shapes.

One ``CdrRecord`` per call, keyed by the call's id (the uuid of its first leg). It is written when the call
starts (``status="open"``) and rewritten when it ends (``status="closed"``, with a ``disposition``). The API's
OpenAPI document is generated from these models, hence a description on every field.

Every time is timezone-aware: a naive ``datetime`` is rejected and an aware one is converted to UTC, so the
stored JSON and the keyset cursor (``controller.store.cursor``) never depend on a local zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CallType",
    "CdrLeg",
    "CdrPage",
    "CdrQuery",
    "CdrRecord",
    "CdrStatus",
    "Disposition",
    "ExtraValue",
    "StreamStats",
    "TranscriptTurn",
    "UtcDatetime",
    "WebrtcStats",
]


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"naive datetime {value.isoformat()} has no time zone: CDR times must be timezone-aware (UTC)"
        )
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_require_aware)]
"""A timezone-aware ``datetime``, normalised to UTC; naive values fail validation."""

Disposition = Literal["answered", "no_answer", "busy", "cancelled", "rejected", "failed", "lost"]
"""How a call ended; ``lost`` means the controller never saw the end (closed after a restart or resync)."""

CdrStatus = Literal["open", "closed"]
"""``open`` while the call is up (or its end was not seen yet), ``closed`` once it ended."""

CallType = Literal["sip", "webrtc"]
"""Where the caller came from: a SIP endpoint, or a browser through Janus."""

ExtraValue = str | int | float | bool | None
"""A value of ``CdrRecord.extra``: JSON scalars only."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class CdrLeg(_Frozen):
    """One FreeSWITCH channel (leg) of the call, as it was when the record was written."""

    uuid: str = Field(description="FreeSWITCH Unique-ID of the channel")
    name: str = Field(description="channel name, e.g. sofia/internal/1000@example.com")
    direction: str = Field(description="'inbound' or 'outbound', as FreeSWITCH sees the channel")
    caller_id_number: str = Field(description="Caller-Caller-ID-Number of the channel")
    caller_id_name: str = Field(description="Caller-Caller-ID-Name of the channel")
    destination_number: str = Field(description="Caller-Destination-Number of the channel")
    created_at: UtcDatetime | None = Field(description="when the channel was created (UTC)")
    answered_at: UtcDatetime | None = Field(description="when the channel was answered (UTC), if it was")
    ended_at: UtcDatetime | None = Field(description="when the channel hung up (UTC), if it did")
    hangup_cause: str = Field(description="FreeSWITCH hangup cause, e.g. NORMAL_CLEARING; '' while up")


class TranscriptTurn(_Frozen):
    """One turn of the conversation with a voice agent, as the worker reported it."""

    turn: int = Field(ge=0, description="turn number within the call, from 1")
    caller: str = Field(description="what the caller said (ASR)")
    agent: str = Field(description="what the agent answered")
    latency_ms: dict[str, float] = Field(
        default_factory=dict, description="ms from the end of the caller's speech to each stage"
    )


class StreamStats(_Frozen):
    """The call's audio stream to a media worker (mod_audio_stream)."""

    worker: str = Field(description="id or URL of the media worker that served the call; '' if none")
    attempts: int = Field(0, ge=0, description="stream starts tried (one per worker tried)")
    connected_at: UtcDatetime | None = Field(None, description="when the stream first connected (UTC)")
    failures: int = Field(0, ge=0, description="stream starts or streams that failed")
    playbacks: int = Field(0, ge=0, description="audio clips the worker had played into the call")
    barge_ins: int = Field(0, ge=0, description="playbacks the caller interrupted by speaking")
    dtmf: str = Field("", description="DTMF digits the caller pressed, in order")


class WebrtcStats(_Frozen):
    """The browser side of a WebRTC call: the Janus handle that carried it and its media statistics, from
    Janus's event handler (``controller.janus.link``)."""

    janus_session: int = Field(description="Janus session id of the browser")
    janus_handle: int = Field(description="Janus SIP plugin handle id that carried the call")
    rtt_ms_avg: float | None = Field(None, ge=0, description="mean round-trip time (ms) over the reports")
    jitter_ms_max: float = Field(0.0, ge=0, description="worst jitter (ms), local or remote")
    packets_lost_in: int = Field(0, ge=0, description="packets from the browser lost, as Janus counted")
    packets_lost_out: int = Field(0, ge=0, description="packets to the browser lost, as it reported")
    reports: int = Field(0, ge=0, description="media statistics events the figures come from")


class CdrRecord(_Frozen):
    """The call detail record of one call.

    An open record has no ``disposition``; a closed one must have it.
    """

    call_id: str = Field(min_length=1, description="call id: the uuid of the call's first leg")
    node: str = Field(description="name of the FreeSWITCH node that carried the call")
    status: CdrStatus = Field(description="'open' while the call is up, 'closed' once it ended")
    caller: str = Field(description="caller number (or WebRTC user) as the call presented it")
    callee: str = Field(description="number or extension the caller dialled")
    call_type: CallType = Field(description="'sip' for SIP endpoints, 'webrtc' for browser calls")
    route: str = Field("", description="route action that handled the call, e.g. 'agent support'")
    agent: str = Field("", description="name of the voice agent that took the call; '' if none")
    created_at: UtcDatetime = Field(description="when the call's first leg was created (UTC)")
    answered_at: UtcDatetime | None = Field(description="when the call was answered (UTC), if it was")
    ended_at: UtcDatetime | None = Field(description="when the call ended (UTC); null while open")
    hangup_cause: str = Field("", description="hangup cause of the call, e.g. NORMAL_CLEARING")
    disposition: Disposition | None = Field(description="how the call ended; null while open")
    duration_s: float = Field(0.0, ge=0, description="seconds from creation to end")
    billsec_s: float = Field(0.0, ge=0, description="seconds from answer to end (0 if never answered)")
    legs: tuple[CdrLeg, ...] = Field((), description="the call's legs, first leg first")
    stream: StreamStats = Field(StreamStats(worker=""), description="the call's media worker stream")
    recording_paths: tuple[str, ...] = Field((), description="files the call was recorded to")
    transcript: tuple[TranscriptTurn, ...] = Field((), description="the voice agent conversation, by turn")
    webrtc: WebrtcStats | None = Field(
        None, description="the Janus handle and media statistics of a browser call; null otherwise"
    )
    closed_while_down: bool = Field(
        False,
        description="true if the record was closed at a restart or resync, without seeing the call end: "
        "times and cause are what was known then",
    )
    last_seen_at: UtcDatetime | None = Field(
        None,
        description="last time the controller knew the call was up (it touches open rows while it runs)",
    )
    close_reason: str = Field(
        "",
        description="why the row was closed without seeing the end, or why it is still open after a restart; "
        "'' when the end was seen",
    )
    extra: dict[str, ExtraValue] = Field(
        default_factory=dict, description="further scalar attributes by name (JSON scalars)"
    )

    @model_validator(mode="after")
    def _disposition_matches_status(self) -> Self:
        if self.status == "open" and self.disposition is not None:
            raise ValueError(f"an open record has no disposition (got {self.disposition!r})")
        if self.status == "closed" and self.disposition is None:
            raise ValueError("a closed record needs a disposition")
        return self


class CdrQuery(_Frozen):
    """Which records to list: filters combine with AND; results are newest first."""

    since: UtcDatetime | None = Field(None, description="only calls created at or after this time")
    until: UtcDatetime | None = Field(None, description="only calls created before this time")
    number: str | None = Field(None, description="only calls whose caller or callee is exactly this")
    disposition: Disposition | None = Field(None, description="only calls that ended this way")
    status: CdrStatus | None = Field(None, description="only open or only closed records")
    limit: int = Field(100, ge=1, le=1000, description="most records in one page")
    cursor: str | None = Field(
        None, description="opaque cursor from a previous page's next_cursor: continue after it"
    )


class CdrPage(_Frozen):
    """One page of records, newest first, and the cursor to the next page."""

    items: tuple[CdrRecord, ...] = Field(description="records of this page, newest first")
    next_cursor: str | None = Field(description="cursor for the next page; null on the last page")
