"""CDR records and the CSV export: validation of ``CdrRecord`` and its parts (timezones, dispositions,
strictness, field descriptions) and ``cdrs_to_csv`` (columns, formats, spreadsheet formula escaping).

No database is involved: these tests build records in memory.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from controller.store import CSV_COLUMNS, CdrLeg, CdrPage, CdrQuery, CdrRecord, StreamStats, cdrs_to_csv
from tests.unit.cdrkit import T0, at, closed, full_record, open_record

# --- records -------------------------------------------------------------------------------------------


def test_naive_datetime_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        open_record("c1", created=datetime(2024, 5, 1, 12, 0, 0))
    with pytest.raises(ValidationError, match="timezone-aware"):
        StreamStats(worker="w", connected_at=datetime(2024, 5, 1))
    with pytest.raises(ValidationError, match="timezone-aware"):
        CdrQuery(since=datetime(2024, 5, 1))
    with pytest.raises(ValidationError, match="timezone-aware"):
        CdrRecord.model_validate_json(open_record("c1").model_dump_json().replace("Z", ""))


def test_aware_datetime_is_converted_to_utc() -> None:
    cest = timezone(timedelta(hours=2))
    record = open_record("c1", created=datetime(2024, 5, 1, 14, 0, 0, tzinfo=cest))
    assert record.created_at == T0
    assert record.created_at.utcoffset() == timedelta(0)


def test_disposition_must_match_status() -> None:
    with pytest.raises(ValidationError, match="open record has no disposition"):
        open_record("c1", disposition="busy")
    with pytest.raises(ValidationError, match="closed record needs a disposition"):
        open_record("c1", status="closed")


def test_records_are_frozen_and_strict() -> None:
    record = open_record("c1")
    with pytest.raises(ValidationError):
        record.caller = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs"):
        open_record("c1", unknown="x")
    with pytest.raises(ValidationError):
        CdrQuery(limit=1001)
    with pytest.raises(ValidationError):
        CdrQuery(limit=0)


@pytest.mark.parametrize("model", [CdrLeg, StreamStats, CdrRecord, CdrQuery, CdrPage])
def test_every_field_is_described_for_openapi(model: type[BaseModel]) -> None:
    undescribed = [name for name, field in model.model_fields.items() if not field.description]
    assert undescribed == []
    assert model.model_json_schema()["title"] == model.__name__


# --- CSV ------------------------------------------------------------------------------------------------


def test_csv_export() -> None:
    record = full_record()
    hostile = closed(
        open_record("c2", created=at(10), caller="=1+2", callee='20,"00"', route="@SUM(A1)"), "busy"
    )
    text = cdrs_to_csv([record, hostile, open_record("c3")])
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 4
    first = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert first == {
        "call_id": "a-leg",
        "node": "fs1",
        "status": "closed",
        "caller": "1000",
        "callee": "5000",
        "call_type": "webrtc",
        "route": "agent support",
        "agent": "support",
        "created_at": "2024-05-01T12:00:00Z",
        "answered_at": "2024-05-01T12:00:01.500000Z",
        "ended_at": "2024-05-01T12:01:01.250000Z",
        "hangup_cause": "NORMAL_CLEARING",
        "disposition": "answered",
        "duration_s": "61.250",
        "billsec_s": "59.750",
        "worker": "ws://worker-1:8080/stream",
        "recording_paths": "/var/rec/a.wav;/var/rec/b.wav",
        "closed_while_down": "true",
    }
    second = dict(zip(CSV_COLUMNS, rows[2], strict=True))
    assert second["caller"] == "'=1+2"
    assert second["callee"] == '20,"00"'
    assert second["route"] == "'@SUM(A1)"
    assert second["disposition"] == "busy"
    third = dict(zip(CSV_COLUMNS, rows[3], strict=True))
    assert (third["status"], third["ended_at"], third["disposition"]) == ("open", "", "")
    assert third["closed_while_down"] == "false"


def test_csv_of_nothing_is_the_header() -> None:
    assert cdrs_to_csv([]) == ",".join(CSV_COLUMNS) + "\r\n"
