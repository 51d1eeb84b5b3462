"""CDR store: records, the SQLite store on a real file (WAL), keyset paging, cursors and the CSV export.

Every test uses its own database under ``tmp_path``; what the store wrote is checked through the store and,
where the file itself matters (WAL mode, schema version, a second reader), through a separate sqlite3
connection.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from controller.store import (
    CSV_COLUMNS,
    SCHEMA_VERSION,
    CdrLeg,
    CdrPage,
    CdrQuery,
    CdrRecord,
    Disposition,
    InvalidCursor,
    PageKey,
    SqliteCdrStore,
    StoreError,
    StreamStats,
    cdrs_to_csv,
)

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


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteCdrStore]:
    async with SqliteCdrStore(tmp_path / "cdrs.sqlite3") as opened:
        yield opened


async def walk(store: SqliteCdrStore, **filters: Any) -> list[list[str]]:
    """Every page of a query (call ids per page), following next_cursor to the end."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await store.query(CdrQuery(cursor=cursor, **filters))
        pages.append([record.call_id for record in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
        assert len(pages) < 100


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


# --- writes and reads ----------------------------------------------------------------------------------


async def test_begin_finish_get_round_trip(store: SqliteCdrStore) -> None:
    final = full_record()
    started = CdrRecord.model_validate(
        final.model_dump() | {"status": "open", "disposition": None, "ended_at": None}
    )
    await store.begin(started)
    assert await store.get("a-leg") == started
    await store.finish(final)
    got = await store.get("a-leg")
    assert got == final
    assert got is not None
    assert got.model_dump() == final.model_dump()
    assert await store.get("missing") is None


async def test_begin_replaces_an_open_row(store: SqliteCdrStore) -> None:
    await store.begin(open_record("c1"))
    answered = open_record("c1", answered_at=at(2), agent="support")
    await store.begin(answered)
    assert await store.get("c1") == answered


async def test_finish_is_idempotent(store: SqliteCdrStore) -> None:
    record = closed(open_record("c1"))
    await store.finish(record)
    await store.finish(record)
    assert await store.get("c1") == record
    page = await store.query(CdrQuery())
    assert page.items == (record,)


async def test_begin_after_finish_does_not_reopen(store: SqliteCdrStore) -> None:
    start = open_record("c1")
    end = closed(start)
    await store.begin(start)
    await store.finish(end)
    await store.begin(start.model_copy(update={"agent": "late"}))
    assert await store.get("c1") == end
    assert await store.open_records() == []


async def test_wrong_status_is_refused(store: SqliteCdrStore) -> None:
    with pytest.raises(ValueError, match="expected open"):
        await store.begin(closed(open_record("c1")))
    with pytest.raises(ValueError, match="expected closed"):
        await store.finish(open_record("c1"))
    assert await store.get("c1") is None


async def test_discard_removes_only_open_rows(store: SqliteCdrStore) -> None:
    await store.begin(open_record("open"))
    await store.finish(closed(open_record("done")))
    await store.discard("open")
    await store.discard("done")
    await store.discard("never-existed")
    assert await store.get("open") is None
    assert await store.get("done") is not None


async def test_open_records_by_node(store: SqliteCdrStore) -> None:
    await store.begin(open_record("b", created=at(2), node="fs1"))
    await store.begin(open_record("a", created=at(1), node="fs1"))
    await store.begin(open_record("c", created=at(3), node="fs2"))
    await store.finish(closed(open_record("d", created=at(0), node="fs1")))
    assert [r.call_id for r in await store.open_records()] == ["a", "b", "c"]
    assert [r.call_id for r in await store.open_records("fs1")] == ["a", "b"]
    assert [r.call_id for r in await store.open_records("fs2")] == ["c"]
    assert await store.open_records("fs3") == []


async def test_concurrent_writes_all_land(store: SqliteCdrStore) -> None:
    records = [open_record(f"c{i:03d}", created=at(i)) for i in range(200)]
    await asyncio.gather(*(store.begin(record) for record in records))
    await asyncio.gather(*(store.finish(closed(record)) for record in records))
    assert sum(len(page) for page in await walk(store, status="closed", limit=1000)) == 200


# --- queries and paging ---------------------------------------------------------------------------------


async def test_query_time_range_boundaries(store: SqliteCdrStore) -> None:
    for i in range(5):
        await store.finish(closed(open_record(f"c{i}", created=at(i))))
    page = await store.query(CdrQuery(since=at(1), until=at(3)))
    assert [r.call_id for r in page.items] == ["c2", "c1"]
    one_us = timedelta(microseconds=1)
    page = await store.query(CdrQuery(since=at(1) + one_us, until=at(3) + one_us))
    assert [r.call_id for r in page.items] == ["c3", "c2"]
    assert (await store.query(CdrQuery(since=at(4), until=at(4)))).items == ()


async def test_query_number_matches_caller_or_callee(store: SqliteCdrStore) -> None:
    await store.begin(open_record("from", created=at(1), caller="555", callee="100"))
    await store.begin(open_record("to", created=at(2), caller="100", callee="555"))
    await store.begin(open_record("other", created=at(3), caller="5555", callee="100"))
    page = await store.query(CdrQuery(number="555"))
    assert [r.call_id for r in page.items] == ["to", "from"]
    assert (await store.query(CdrQuery(number="55"))).items == ()


async def test_query_disposition_and_status(store: SqliteCdrStore) -> None:
    await store.begin(open_record("up", created=at(0)))
    await store.finish(closed(open_record("busy", created=at(1)), "busy"))
    await store.finish(closed(open_record("ok", created=at(2)), "answered"))
    await store.finish(closed(open_record("lost", created=at(3)), "lost", closed_while_down=True))
    by_disposition = await store.query(CdrQuery(disposition="busy"))
    assert [r.call_id for r in by_disposition.items] == ["busy"]
    assert [r.call_id for r in (await store.query(CdrQuery(status="open"))).items] == ["up"]
    closed_ids = [r.call_id for r in (await store.query(CdrQuery(status="closed"))).items]
    assert closed_ids == ["lost", "ok", "busy"]
    both = await store.query(CdrQuery(status="closed", disposition="lost", number="1000"))
    assert [r.call_id for r in both.items] == ["lost"]


async def test_pagination_walks_every_row_once_with_ties(store: SqliteCdrStore) -> None:
    # 23 calls on 6 distinct creation times: ties are broken by call id, descending.
    records = [open_record(f"c{i:02d}", created=at(i // 4)) for i in range(23)]
    for record in records:
        await store.begin(record)
    expected = sorted(records, key=lambda r: (r.created_at, r.call_id), reverse=True)
    pages = await walk(store, limit=4)
    assert [len(page) for page in pages] == [4, 4, 4, 4, 4, 3]
    assert [call_id for page in pages for call_id in page] == [r.call_id for r in expected]


async def test_pagination_ends_without_an_empty_page(store: SqliteCdrStore) -> None:
    for i in range(6):
        await store.begin(open_record(f"c{i}", created=at(0)))
    assert await walk(store, limit=3) == [["c5", "c4", "c3"], ["c2", "c1", "c0"]]
    assert await walk(store, limit=6) == [["c5", "c4", "c3", "c2", "c1", "c0"]]


async def test_pagination_with_filters_and_new_rows_between_pages(store: SqliteCdrStore) -> None:
    for i in range(10):
        await store.finish(closed(open_record(f"c{i}", created=at(i), caller="7" if i % 2 else "8")))
    first = await store.query(CdrQuery(number="7", limit=2))
    assert [r.call_id for r in first.items] == ["c9", "c7"]
    await store.finish(closed(open_record("newer", created=at(100), caller="7")))
    rest = await store.query(CdrQuery(number="7", limit=10, cursor=first.next_cursor))
    assert [r.call_id for r in rest.items] == ["c5", "c3", "c1"]
    assert rest.next_cursor is None


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("cursor", "problem"),
    [
        ("", "not urlsafe base64"),
        ("abc+/", "not urlsafe base64"),
        ("a", "bad base64"),
        ("x" * 5000, "longer than"),
        (b64(b"\xff\xfe"), "not a JSON document"),
        (b64(b"not json"), "not a JSON document"),
        (b64(b"[1, 2]"), "not a JSON object"),
        (b64(b'{"id": "c1"}'), "'t'"),
        (b64(b'{"t": "1", "id": "c1"}'), "'t'"),
        (b64(b'{"t": true, "id": "c1"}'), "'t'"),
        (b64(b'{"t": 99999999999999999999, "id": "c1"}'), "out of range"),
        (b64(b'{"t": 1}'), "'id'"),
        (b64(b'{"t": 1, "id": 7}'), "'id'"),
    ],
)
async def test_invalid_cursor(store: SqliteCdrStore, cursor: str, problem: str) -> None:
    with pytest.raises(InvalidCursor, match=problem) as caught:
        await store.query(CdrQuery(cursor=cursor))
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, StoreError)


def test_cursor_round_trip() -> None:
    key = PageKey(created_us=1_714_564_800_000_001, call_id="é-ü/+=")
    assert PageKey.decode(key.encode()) == key
    assert PageKey.of(open_record("c1")) == PageKey(1_714_564_800_000_000, "c1")


# --- the file -------------------------------------------------------------------------------------------


async def test_wal_mode_and_schema_version(store: SqliteCdrStore) -> None:
    with sqlite3.connect(store.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert other.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    other.close()


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "cdrs.sqlite3"
    record = full_record()
    async with SqliteCdrStore(path) as first:
        await first.finish(record)
        await first.begin(open_record("still-up"))
    async with SqliteCdrStore(path) as second:
        assert await second.get(record.call_id) == record
        assert [r.call_id for r in await second.open_records()] == ["still-up"]


async def test_second_store_sees_committed_rows(tmp_path: Path) -> None:
    path = tmp_path / "cdrs.sqlite3"
    async with SqliteCdrStore(path) as writer, SqliteCdrStore(path) as reader:
        await writer.begin(open_record("c1"))
        assert await reader.get("c1") == open_record("c1")
        await writer.finish(closed(open_record("c1")))
        assert await reader.get("c1") == closed(open_record("c1"))


async def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cdrs.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        await SqliteCdrStore(path).open()


async def test_database_errors_are_wrapped(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError) as caught:
        await SqliteCdrStore(blocker / "cdrs.sqlite3").open()
    assert isinstance(caught.value.__cause__, OSError)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database file" * 100)
    with pytest.raises(StoreError) as caught:
        await SqliteCdrStore(garbage).open()
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


async def test_unreadable_row_raises_store_error(store: SqliteCdrStore) -> None:
    await store.begin(open_record("c1"))
    with sqlite3.connect(store.path) as other:
        other.execute("UPDATE cdrs SET data = '{\"call_id\": 1}' WHERE call_id = 'c1'")
    other.close()
    with pytest.raises(StoreError, match="'c1' is unreadable"):
        await store.get("c1")


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("cdr-sqlite")]


async def test_methods_outside_open_and_aclose_raise(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdrs.sqlite3")
    with pytest.raises(StoreError, match="not open"):
        await store.get("c1")
    await store.open()
    await store.begin(open_record("c1"))
    assert worker_threads()
    with pytest.raises(StoreError, match="already open"):
        await store.open()
    await store.aclose()
    await store.aclose()
    assert worker_threads() == []
    calls = [
        store.begin(open_record("c2")),
        store.finish(closed(open_record("c2"))),
        store.discard("c1"),
        store.get("c1"),
        store.query(CdrQuery()),
        store.open_records(),
        store.open(),
    ]
    for call in calls:
        with pytest.raises(StoreError, match="closed"):
            await call


async def test_aclose_waits_for_submitted_writes(tmp_path: Path) -> None:
    path = tmp_path / "cdrs.sqlite3"
    store = SqliteCdrStore(path)
    await store.open()
    writes = [asyncio.create_task(store.begin(open_record(f"c{i}"))) for i in range(50)]
    await asyncio.sleep(0)
    await store.aclose()
    await asyncio.gather(*writes)
    async with SqliteCdrStore(path) as reopened:
        assert len(await reopened.open_records()) == 50


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
