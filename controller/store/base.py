"""The CDR store interface every backend implements (SQLite now, PostgreSQL later), and its errors.

A store keeps one row per call id. ``begin`` writes the open record when a call starts (and again whenever it
changes while up); ``finish`` writes the closed record when it ends. A closed row is never turned back into an
open one, so a late ``begin`` (a replayed start after the end was already written) cannot undo an end.
``discard`` drops the open row of a call that was merged into another one. ``open_records`` is what the
controller reads after a restart to close the rows of calls that ended while it was down.

Every write is committed when its coroutine returns. Backends map their driver's exceptions once, here at the
boundary, with ``raise StoreError(...) from exc``.

Exception tree::

    StoreError                  the store failed: database or file-system error (chained), used before
    │                           open() or after aclose(), unknown schema version, unreadable stored row
    └── InvalidCursor           a malformed ``CdrQuery.cursor`` (also a ValueError: the client's fault)

A record of the wrong status passed to ``begin`` / ``finish`` raises a plain ``ValueError`` (a bug in the
caller, not a store failure); invalid field values raise pydantic's ``ValidationError`` when the record is
built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from types import TracebackType
from typing import Self

from controller.store.records import CdrPage, CdrQuery, CdrRecord

__all__ = ["CdrStore", "InvalidCursor", "StoreError"]


class StoreError(Exception):
    """The CDR store could not do what was asked; ``__cause__`` holds the driver's error, if any."""


class InvalidCursor(StoreError, ValueError):
    """A page cursor that this store did not hand out (bad encoding, bad JSON or missing fields)."""


class CdrStore(ABC):
    """Where call detail records are kept: one row per call id, open while the call is up.

    Use as ``async with store:`` (``open`` on entry, ``aclose`` on exit). Every method except ``open`` and
    ``aclose`` raises ``StoreError`` before ``open`` and after ``aclose``.
    """

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    @abstractmethod
    async def open(self) -> None:
        """Connect and create the schema if the database is new.

        Raises:
            StoreError: the database cannot be opened, or its schema version is unknown.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Release the connection and any worker thread; idempotent. The store cannot be reopened."""

    @abstractmethod
    async def begin(self, record: CdrRecord) -> None:
        """Insert or replace the open row of ``record.call_id``; a closed row is left as it is.

        Args:
            record: the call's record, with ``status="open"``.

        Raises:
            ValueError: ``record.status`` is not ``"open"``.
            StoreError: the write failed.
        """

    @abstractmethod
    async def finish(self, record: CdrRecord) -> None:
        """Insert or replace the row of ``record.call_id`` with the closed record; idempotent.

        Args:
            record: the call's final record, with ``status="closed"``.

        Raises:
            ValueError: ``record.status`` is not ``"closed"``.
            StoreError: the write failed.
        """

    @abstractmethod
    async def discard(self, call_id: str) -> None:
        """Delete the row of ``call_id`` if it is open (a call merged into another); closed rows stay.

        Raises:
            StoreError: the write failed.
        """

    @abstractmethod
    async def get(self, call_id: str) -> CdrRecord | None:
        """The record of ``call_id``, open or closed, or None if there is none.

        Raises:
            StoreError: the read failed or the stored row is unreadable.
        """

    @abstractmethod
    async def query(self, query: CdrQuery) -> CdrPage:
        """One page of the records matching ``query``, newest first by ``(created_at, call_id)``.

        Pass the page's ``next_cursor`` back in ``query.cursor`` (same filters) for the next page; keyset
        paging returns every matching row exactly once even while new calls are being written.

        Raises:
            InvalidCursor: ``query.cursor`` is malformed.
            StoreError: the read failed or a stored row is unreadable.
        """

    @abstractmethod
    async def open_records(self, node: str | None = None) -> list[CdrRecord]:
        """The records still open, oldest first; only those of ``node`` if it is given.

        Raises:
            StoreError: the read failed or a stored row is unreadable.
        """

    async def touch(self, node: str, seen_at: datetime) -> None:
        """Set ``last_seen_at`` of every open row of ``node`` (the controller still follows its calls).

        This generic form rewrites each row; a backend may do it in one statement.

        Raises:
            StoreError: the read or a write failed.
        """
        for record in await self.open_records(node):
            await self.begin(record.model_copy(update={"last_seen_at": seen_at}))
