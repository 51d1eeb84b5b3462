"""The SQLite CDR store: one file in WAL mode, one connection, one worker thread.

sqlite3 calls block, so the connection lives on a dedicated single-thread executor and every call goes there
through ``loop.run_in_executor``; the event loop never waits on the disk. One thread also serialises the
connection's use, and its FIFO queue means ``aclose`` runs after every call already submitted.

Durability: the connection is in autocommit mode, so each ``begin`` / ``finish`` / ``discard`` is one small
transaction, committed when its coroutine returns. With ``journal_mode=WAL`` and ``synchronous=NORMAL`` a
commit survives a crash of the controller; only an OS crash or power loss can undo the last commits (the WAL
is synced at checkpoints, not per commit — SQLite "WAL mode" docs, synchronous=NORMAL). That keeps a commit
well under a millisecond, plenty for hundreds of calls starting and ending per second.

Layout (``PRAGMA user_version`` = 1): table ``cdrs``, one row per call id, with the full record as JSON in
``data`` and the columns the queries filter and sort on beside it. Errors: see ``controller.store.base``;
sqlite3 and file-system errors become ``StoreError`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Final, ParamSpec, TypeVar

from pydantic import ValidationError

from controller.store.base import CdrStore, StoreError
from controller.store.cursor import PageKey, epoch_us
from controller.store.records import CdrPage, CdrQuery, CdrRecord
from controller.store.walfile import open_wal

__all__ = ["SCHEMA_VERSION", "SqliteCdrStore"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = (
    """CREATE TABLE cdrs (
        call_id     TEXT PRIMARY KEY NOT NULL,
        node        TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('open', 'closed')),
        created_us  INTEGER NOT NULL,
        ended_us    INTEGER,
        caller      TEXT NOT NULL,
        callee      TEXT NOT NULL,
        disposition TEXT,
        data        TEXT NOT NULL
    )""",
    # Listing order (newest first) and the keyset cursor; with since/until as a range on it.
    "CREATE INDEX cdrs_created ON cdrs (created_us, call_id)",
    # Filters, each followed by the listing order so a time range narrows them too.
    "CREATE INDEX cdrs_caller ON cdrs (caller, created_us, call_id)",
    "CREATE INDEX cdrs_callee ON cdrs (callee, created_us, call_id)",
    "CREATE INDEX cdrs_disposition ON cdrs (disposition, created_us, call_id)",
    # open_records() at start-up: a few open rows among millions of closed ones.
    "CREATE INDEX cdrs_open ON cdrs (node, created_us, call_id) WHERE status = 'open'",
)

_COLUMNS: Final = "call_id, node, status, created_us, ended_us, caller, callee, disposition, data"
_UPSERT: Final = f"""
    INSERT INTO cdrs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (call_id) DO UPDATE SET
        node = excluded.node, status = excluded.status, created_us = excluded.created_us,
        ended_us = excluded.ended_us, caller = excluded.caller, callee = excluded.callee,
        disposition = excluded.disposition, data = excluded.data
"""
# begin(): an open record may replace an open row only; a closed row stays closed.
_UPSERT_OPEN: Final = _UPSERT + " WHERE cdrs.status = 'open'"
_DELETE_OPEN: Final = "DELETE FROM cdrs WHERE call_id = ? AND status = 'open'"
# touch(): one statement for every open row of a node (SQLite's JSON functions, built in since 3.38).
_TOUCH_OPEN: Final = (
    "UPDATE cdrs SET data = json_set(data, '$.last_seen_at', ?) WHERE status = 'open' AND node = ?"
)
_SELECT_ONE: Final = "SELECT call_id, data FROM cdrs WHERE call_id = ?"
_SELECT_OPEN: Final = "SELECT call_id, data FROM cdrs WHERE status = 'open'"
_OLDEST_FIRST: Final = " ORDER BY created_us, call_id"

_Row = tuple[object, ...]


def _row_values(record: CdrRecord) -> _Row:
    return (
        record.call_id,
        record.node,
        record.status,
        epoch_us(record.created_at),
        None if record.ended_at is None else epoch_us(record.ended_at),
        record.caller,
        record.callee,
        record.disposition,
        record.model_dump_json(),
    )


def _decode(call_id: str, data: str) -> CdrRecord:
    try:
        return CdrRecord.model_validate_json(data)
    except ValidationError as exc:
        raise StoreError(f"stored record of call {call_id!r} is unreadable: {exc}") from exc


def _page_sql(query: CdrQuery) -> tuple[str, list[object]]:
    """SELECT for one page of ``query``, fetching one row more than the limit to tell if a page follows."""
    where: list[str] = []
    params: list[object] = []
    if query.since is not None:
        where.append("created_us >= ?")
        params.append(epoch_us(query.since))
    if query.until is not None:
        where.append("created_us < ?")
        params.append(epoch_us(query.until))
    if query.number is not None:
        where.append("(caller = ? OR callee = ?)")
        params += [query.number, query.number]
    if query.disposition is not None:
        where.append("disposition = ?")
        params.append(query.disposition)
    if query.status is not None:
        where.append("status = ?")
        params.append(query.status)
    if query.cursor is not None:
        key = PageKey.decode(query.cursor)
        where.append("(created_us, call_id) < (?, ?)")
        params += [key.created_us, key.call_id]
    sql = "SELECT call_id, data FROM cdrs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    params.append(query.limit + 1)
    return sql + " ORDER BY created_us DESC, call_id DESC LIMIT ?", params


class _Database:
    """The blocking side of the store: every method runs on the store's worker thread."""

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None

    def connect(self) -> None:
        self._conn = open_wal(self._path, _SCHEMA, SCHEMA_VERSION, self._busy_timeout_s)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def write(self, sql: str, params: Sequence[object]) -> None:
        self._connection().execute(sql, params)

    def fetch(self, sql: str, params: Sequence[object]) -> list[CdrRecord]:
        rows = self._connection().execute(sql, params).fetchall()
        return [_decode(call_id, data) for call_id, data in rows]

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the CDR store is not open")
        return self._conn


class SqliteCdrStore(CdrStore):
    """CDR store in one SQLite file (WAL mode), driven from a dedicated worker thread.

    Args:
        path: the database file; it and its parent directory are created if missing.
        busy_timeout_s: how long a statement waits for another connection's lock before failing.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        if busy_timeout_s < 0:
            raise ValueError(f"busy_timeout_s must be >= 0, got {busy_timeout_s}")
        self._path = path
        self._db = _Database(path, busy_timeout_s)
        self._executor: ThreadPoolExecutor | None = None
        self._is_open = False
        self._closed = False

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    async def open(self) -> None:
        """Start the worker thread, open the database in WAL mode and create the schema if it is new.

        Raises:
            StoreError: already open, closed, or the database cannot be opened or has an unknown schema.
        """
        if self._closed:
            raise StoreError("the CDR store is closed")
        if self._executor is not None:
            raise StoreError("the CDR store is already open")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdr-sqlite")
        self._executor = executor
        try:
            await self._on_worker(executor, self._db.connect)
        except BaseException:
            # A failed open may be retried. A cancelled one may still connect: _stop closes after it.
            if self._executor is executor:  # else aclose() ran meanwhile and stopped the thread
                self._executor = None
                with contextlib.suppress(StoreError):
                    await self._stop(executor)
            raise
        if self._closed:
            raise StoreError("the CDR store was closed while opening")
        self._is_open = True

    async def aclose(self) -> None:
        """Close the connection after the calls already submitted and stop the worker thread; idempotent."""
        self._closed = True
        self._is_open = False
        executor, self._executor = self._executor, None
        if executor is not None:
            await self._stop(executor)

    async def begin(self, record: CdrRecord) -> None:
        """Write the open record of a call, unless its row is already closed (see ``CdrStore.begin``)."""
        _expect_status(record, "open")
        await self._run(self._db.write, _UPSERT_OPEN, _row_values(record))

    async def finish(self, record: CdrRecord) -> None:
        """Write the closed record of a call over whatever row it had (see ``CdrStore.finish``)."""
        _expect_status(record, "closed")
        await self._run(self._db.write, _UPSERT, _row_values(record))

    async def discard(self, call_id: str) -> None:
        """Delete the row of ``call_id`` if it is still open (see ``CdrStore.discard``)."""
        await self._run(self._db.write, _DELETE_OPEN, (call_id,))

    async def touch(self, node: str, seen_at: datetime) -> None:
        """Mark the open rows of ``node`` seen at ``seen_at``, in one statement (see ``CdrStore.touch``)."""
        stamp = seen_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        await self._run(self._db.write, _TOUCH_OPEN, (stamp, node))

    async def get(self, call_id: str) -> CdrRecord | None:
        """The record of ``call_id`` or None (see ``CdrStore.get``)."""
        records = await self._run(self._db.fetch, _SELECT_ONE, (call_id,))
        return records[0] if records else None

    async def query(self, query: CdrQuery) -> CdrPage:
        """One page of matching records, newest first (see ``CdrStore.query``)."""
        self._check_open()
        sql, params = _page_sql(query)
        records = await self._run(self._db.fetch, sql, params)
        if len(records) <= query.limit:
            return CdrPage(items=tuple(records), next_cursor=None)
        items = tuple(records[: query.limit])
        return CdrPage(items=items, next_cursor=PageKey.of(items[-1]).encode())

    async def open_records(self, node: str | None = None) -> list[CdrRecord]:
        """Open records, oldest first, of one node or all (see ``CdrStore.open_records``)."""
        if node is None:
            return await self._run(self._db.fetch, _SELECT_OPEN + _OLDEST_FIRST, ())
        return await self._run(self._db.fetch, _SELECT_OPEN + " AND node = ?" + _OLDEST_FIRST, (node,))

    def _check_open(self) -> ThreadPoolExecutor:
        if self._closed:
            raise StoreError("the CDR store is closed")
        if not self._is_open or self._executor is None:
            raise StoreError("the CDR store is not open")
        return self._executor

    async def _run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await self._on_worker(self._check_open(), fn, *args, **kwargs)

    async def _on_worker(
        self, executor: ThreadPoolExecutor, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """Run ``fn`` on the worker thread; sqlite3 and OS errors become ``StoreError`` here."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, partial(fn, *args, **kwargs))
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"CDR store {self._path}: {exc}") from exc

    async def _stop(self, executor: ThreadPoolExecutor) -> None:
        """Close the connection after the work queued before it, then end the worker thread."""
        closed = executor.submit(self._db.close)
        executor.shutdown(wait=False)
        try:
            # Shielded: if this wait is cancelled, the close still runs and the thread still ends.
            await asyncio.shield(asyncio.wrap_future(closed))
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"CDR store {self._path}: closing failed: {exc}") from exc
        # The queue is empty: the worker picks up the shutdown sentinel at once; this join is immediate.
        executor.shutdown(wait=True)


def _expect_status(record: CdrRecord, status: str) -> None:
    if record.status != status:
        raise ValueError(f"record of call {record.call_id!r} is {record.status}, expected {status}")
