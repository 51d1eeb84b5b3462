"""CDR store: the SQLite store on a real file (WAL), writes and reads, keyset paging, cursors, and the
store's lifecycle (open, close, errors).

Every test uses its own database under ``tmp_path``; what the store wrote is checked through the store and,
where the file itself matters (WAL mode, schema version, a second reader), through a separate sqlite3
connection.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.store import (
    SCHEMA_VERSION,
    CdrQuery,
    CdrRecord,
    InvalidCursor,
    PageKey,
    SqliteCdrStore,
    StoreError,
)
from tests.unit.cdrkit import at, closed, full_record, open_record


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
