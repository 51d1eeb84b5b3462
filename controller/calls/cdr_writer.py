"""The CDR store's one writer: writes in order, each retried until it lands, failures surfaced.

Every CDR write (an open row, its rewrites, the closed row, a discard, a touch of a node's open rows) goes
through one FIFO queue, so a call's rows land in the order they were made. A write that fails with
``StoreError`` (the database is locked, the disk is full or gone) is retried with capped exponential backoff
(``CdrSettings.retry_initial_s`` doubling up to ``retry_max_s``) and the queue waits behind it: nothing is
skipped and nothing is dropped. After ``surface_after`` failed attempts the writer is ``failing``: the error
is logged, ``on_failure`` is told (the metric ``switchyard_cdr_write_failures_total``) and ``health()``
reports it (``/readyz`` answers 503), until a write lands again. At shutdown, a write still not done after
the drain deadline is logged in full (the record as JSON, at ERROR), so it can be replayed by hand.

A write the store refuses as a bug of ours (``ValueError``: a record of the wrong status) cannot succeed on a
retry: it is logged in full and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from controller.store import CdrRecord, CdrStore, StoreError

__all__ = ["CdrWriter", "RetryPolicy", "WriteHealth"]

log = logging.getLogger("switchyard.cdr")

Op = Literal["begin", "finish", "discard", "touch"]
Item = CdrRecord | str | tuple[str, datetime]


@dataclass(frozen=True)
class RetryPolicy:
    """How failed writes are retried."""

    initial_s: float = 0.05
    max_s: float = 5.0
    surface_after: int = 3


@dataclass(frozen=True)
class WriteHealth:
    """What ``/readyz`` shows of the CDR writer."""

    ok: bool
    pending: int
    error: str | None


class CdrWriter:
    """The queue of CDR writes and the task that drains it (see the module docstring)."""

    def __init__(
        self,
        store: CdrStore,
        policy: RetryPolicy | None = None,
        *,
        on_failure: Callable[[str], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._policy = policy or RetryPolicy()
        self._on_failure = on_failure
        self._sleep = sleep
        self._queue: asyncio.Queue[tuple[Op, Item]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._error: str | None = None
        self._current: tuple[Op, Item] | None = None  # the write under way (retried)
        self.finished = 0  # closed rows written

    def start(self) -> None:
        """Start the writer task (needs a running loop)."""
        self._task = asyncio.create_task(self._run(), name="cdr writer")

    def put(self, op: Op, item: Item) -> None:
        """Queue one write (never blocks)."""
        self._queue.put_nowait((op, item))

    def health(self) -> WriteHealth:
        """Failing or not, with the writes not done yet (queued or under way)."""
        pending = self._queue.qsize() + (self._current is not None)
        return WriteHealth(self._error is None, pending, self._error)

    async def _run(self) -> None:
        while True:
            op, item = await self._queue.get()
            self._current = (op, item)
            try:
                await self._until_done(op, item)
                self._current = None  # kept when cancelled: aclose logs it
            finally:
                self._queue.task_done()

    async def _until_done(self, op: Op, item: Item) -> None:
        delay, attempt = self._policy.initial_s, 0
        while True:
            attempt += 1
            try:
                await self._write(op, item)
            except StoreError as exc:
                self._failed(op, item, attempt, exc)
                await self._sleep(delay)
                delay = min(delay * 2, self._policy.max_s)
                continue
            except ValueError as exc:
                log.error("CDR %s refused, skipped: %s: %s", op, exc, _text(item))
                return
            if self._error is not None:
                log.warning("CDR writes work again (after %d attempt(s) of this one)", attempt)
                self._error = None
            return

    def _failed(self, op: Op, item: Item, attempt: int, exc: StoreError) -> None:
        if attempt < self._policy.surface_after:
            log.warning("CDR %s of %s failed (attempt %d), retrying: %s", op, _key(item), attempt, exc)
            return
        if attempt == self._policy.surface_after:
            log.error("CDR %s of %s keeps failing, retrying until it lands: %s", op, _key(item), exc)
            if self._on_failure is not None:
                self._on_failure(op)
        self._error = f"CDR {op} of {_key(item)} failing since attempt {self._policy.surface_after}: {exc}"

    async def _write(self, op: Op, item: Item) -> None:
        store = self._store
        if op == "touch" and isinstance(item, tuple):
            await store.touch(*item)
        elif op == "discard" and isinstance(item, str):
            await store.discard(item)
        elif op == "begin" and isinstance(item, CdrRecord):
            await store.begin(item)
        elif isinstance(item, CdrRecord):
            await store.finish(item)
            self.finished += 1

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued write is done (raises TimeoutError after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            await self._queue.join()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Drain the queue (bounded), log in full what is left, stop the task."""
        task = self._task
        if task is None:
            return
        try:
            await self.flush(timeout)
        except TimeoutError:
            log.error("CDR writer: %d write(s) not done at shutdown; they follow", self._queue.qsize())
        task.cancel()
        await asyncio.wait({task}, timeout=timeout)
        self._task = None
        if self._current is not None:
            log.error("CDR %s not written: %s", self._current[0], _text(self._current[1]))
        while not self._queue.empty():
            op, item = self._queue.get_nowait()
            log.error("CDR %s not written: %s", op, _text(item))


def _key(item: Item) -> str:
    if isinstance(item, CdrRecord):
        return f"call {item.call_id}"
    if isinstance(item, tuple):
        return f"node {item[0]}"
    return f"call {item}"


def _text(item: Item) -> str:
    return item.model_dump_json() if isinstance(item, CdrRecord) else str(item)
