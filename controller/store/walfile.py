"""Opening one of the controller's SQLite files: WAL mode, autocommit, the schema created or checked.

Used by the CDR store (``controller.store.sqlite``) and the Idempotency-Key store
(``controller.api.idemstore``); both run it, and everything else on the connection, on one worker thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from controller.store.base import StoreError

__all__ = ["open_wal"]


def open_wal(path: Path, schema: Sequence[str], version: int, busy_timeout_s: float) -> sqlite3.Connection:
    """``path`` (created with its directory when missing) in WAL mode with ``synchronous=NORMAL``.

    ``isolation_level=None``: autocommit, each statement is its own committed transaction. A new file gets
    ``schema`` and ``PRAGMA user_version = version``; an existing one must be at ``version``.

    Raises:
        StoreError: WAL mode refused or another schema version.
        sqlite3.Error, OSError: the file cannot be opened.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {round(busy_timeout_s * 1000)}")
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: cannot use WAL mode (journal_mode is {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        _migrate(conn, path, schema, version)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path, schema: Sequence[str], version: int) -> None:
    # IMMEDIATE: two processes opening a new file at once must not both create the schema.
    conn.execute("BEGIN IMMEDIATE")
    try:
        (found,) = conn.execute("PRAGMA user_version").fetchone()
        if found == 0:
            for statement in schema:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
        elif found != version:
            raise StoreError(f"{path}: schema version {found}, expected {version}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
