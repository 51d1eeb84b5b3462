"""What the CDR store tests share: a fixed start time and builders of open, closed and fully filled
``CdrRecord`` values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controller.store import CdrLeg, CdrRecord, Disposition, StreamStats

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def open_record(call_id: str, created: datetime = T0, **fields: Any) -> CdrRecord:
    values: dict[str, Any] = {
        "call_id": call_id,
        "node": "fs1",
        "status": "open",
        "caller": "1000",
        "callee": "2000",
        "call_type": "sip",
        "created_at": created,
        "answered_at": None,
        "ended_at": None,
        "disposition": None,
    }
    values.update(fields)
    return CdrRecord(**values)


def closed(record: CdrRecord, disposition: Disposition = "answered", **fields: Any) -> CdrRecord:
    ended = record.created_at + timedelta(seconds=30)
    changes: dict[str, Any] = {
        "status": "closed",
        "ended_at": ended,
        "disposition": disposition,
        "hangup_cause": "NORMAL_CLEARING",
        "duration_s": 30.0,
    }
    changes.update(fields)
    return CdrRecord.model_validate(record.model_dump() | changes)


def full_record() -> CdrRecord:
    leg = CdrLeg(
        uuid="a-leg",
        name="sofia/internal/1000@example.com",
        direction="inbound",
        caller_id_number="1000",
        caller_id_name='Alice, "the" caller',
        destination_number="5000",
        created_at=at(0),
        answered_at=at(1.5),
        ended_at=at(61.25),
        hangup_cause="NORMAL_CLEARING",
    )
    return CdrRecord(
        call_id="a-leg",
        node="fs1",
        status="closed",
        caller="1000",
        callee="5000",
        call_type="webrtc",
        route="agent support",
        agent="support",
        created_at=at(0),
        answered_at=at(1.5),
        ended_at=at(61.25),
        hangup_cause="NORMAL_CLEARING",
        disposition="answered",
        duration_s=61.25,
        billsec_s=59.75,
        legs=(leg, leg.model_copy(update={"uuid": "b-leg", "direction": "outbound"})),
        stream=StreamStats(
            worker="ws://worker-1:8080/stream",
            attempts=2,
            connected_at=at(1.6),
            failures=1,
            playbacks=3,
            barge_ins=1,
            dtmf="12#",
        ),
        recording_paths=("/var/rec/a.wav", "/var/rec/b.wav"),
        closed_while_down=True,
        extra={"lang": "de", "turns": 4, "score": 0.5, "escalated": False, "note": None},
    )
