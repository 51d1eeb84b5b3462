"""The ``Idempotency-Key`` entries on disk, so a controller restart keeps them (``api.idempotency.path``).

One SQLite file in WAL mode (opened by ``controller.store.walfile``, as the CDR store's), one connection on
one worker thread. A key is written (``put``) *before* its first request runs, so a controller killed
while an originate was on its way still knows the key after its restart; its answer replaces the row when
there is one, and a request that did nothing deletes it (``release_soon``). Each write is committed when
its coroutine returns: durable across a crash of the controller (not of the OS: ``synchronous=NORMAL``).

Layout (``PRAGMA user_version`` = 1): table ``keys``, one row per scope (token name, path, key as JSON),
the body digest, the wall-clock time it was first seen, and the kept answer (NULL status: still pending
when written, which after a restart means the outcome was lost with the controller).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, ParamSpec, TypeVar

import orjson

from controller.store.walfile import open_wal

__all__ = ["KeyRow", "SqliteKeyStore"]

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

SCHEMA_VERSION: Final = 1
BUSY_TIMEOUT_S: Final = 5.0
_SCHEMA: Final = """CREATE TABLE keys (
    scope        TEXT PRIMARY KEY NOT NULL,
    digest       TEXT NOT NULL,
    created      REAL NOT NULL,
    status       INTEGER,
    body         BLOB,
    content_type TEXT,
    headers      TEXT
)"""

Scope = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One stored key; ``status`` None while (or if it stayed) pending."""

    scope: Scope
    digest: str
    created: float  # time.time()
    status: int | None = None
    body: bytes = b""
    content_type: str = ""
    headers: tuple[tuple[str, str], ...] = ()


class SqliteKeyStore:
    """The keys in ``path`` (created with its directory when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="idempotency-db")
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Open (or create) the file.

        Raises:
            StoreError: WAL mode refused or another schema version.
            sqlite3.Error, OSError: the file cannot be opened.
        """
        await self._run(self._open)

    async def load(self, since: float) -> list[KeyRow]:
        """Every key first seen at or after ``since`` (wall clock); older ones are deleted."""
        return await self._run(self._load, since)

    async def put(self, row: KeyRow) -> None:
        """Write a key's row: pending (before its first request runs) or with its answer."""
        await self._run(self._write, row)

    def release_soon(self, scope: Scope) -> None:
        """Forget a key without waiting (a failure is logged)."""
        if self._db is None:
            return
        done = asyncio.get_running_loop().run_in_executor(self._executor, self._delete, scope)
        done.add_done_callback(_logged)

    async def aclose(self) -> None:
        """Close the file (after every write already submitted)."""
        with contextlib.suppress(RuntimeError):  # the executor is shut down already (closed twice)
            await self._run(self._close)
        self._executor.shutdown(wait=False)

    # -- on the database thread --------------------------------------------------------------------------
    async def _run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))

    def _open(self) -> None:
        self._db = open_wal(self.path, (_SCHEMA,), SCHEMA_VERSION, BUSY_TIMEOUT_S)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.OperationalError(f"{self.path}: the Idempotency-Key store is not open")
        return self._db

    def _load(self, since: float) -> list[KeyRow]:
        db = self._conn()
        db.execute("DELETE FROM keys WHERE created < ?", (since,))
        rows = db.execute(
            "SELECT scope, digest, created, status, body, content_type, headers FROM keys ORDER BY created"
        ).fetchall()
        return [_row(values) for values in rows]

    def _write(self, row: KeyRow) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO keys VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                orjson.dumps(row.scope).decode(), row.digest, row.created, row.status, row.body,
                row.content_type, orjson.dumps(row.headers).decode(),
            ),
        )  # fmt: skip

    def _delete(self, scope: Scope) -> None:
        self._conn().execute("DELETE FROM keys WHERE scope = ?", (orjson.dumps(scope).decode(),))

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _row(values: tuple[Any, ...]) -> KeyRow:
    """A ``keys`` row (its columns in order) as a KeyRow."""
    scope, digest, created, status, body, content_type, headers = values
    pairs = tuple((str(name), str(value)) for name, value in orjson.loads(headers or "[]"))
    return KeyRow(tuple(orjson.loads(scope)), digest, created, status, body or b"", content_type or "", pairs)


def _logged(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and (exc := done.exception()) is not None:
        log.error("Idempotency-Key store: a key was not deleted: %r", exc)
