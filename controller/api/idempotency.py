"""``Idempotency-Key``: a client's retry of a non-idempotent request gets the first request's answer
instead of a second effect (POST /v1/calls: never a second originate). After the IETF httpapi draft
"The Idempotency-Key HTTP Header Field" (draft-ietf-httpapi-idempotency-key-header).

The rules, for an operation declared ``Operation(idempotent=True)``:

- The key is 1 to 128 characters of ``[A-Za-z0-9._:-]`` (else 422, field ``Idempotency-Key``); a request
  without one is not remembered.
- A key belongs to the bearer token's name and the request path: another token's same key is another entry.
- The same key and the same body (compared once validated: spacing and key order do not count) within
  ``api.idempotency.ttl_s`` answer what the first request answered: same status, same body, with
  ``Idempotent-Replayed: true``. A 202 (an originate still pending) replays as that 202; GET
  /v1/calls/{id} has its outcome.
- While the first request still runs, a retry waits for its answer (up to ``wait_s``, then 409 with
  Retry-After).
- The same key with another body: 422.
- Answers that mean the request did nothing are not kept, so the key stays usable: ``NOT_KEPT`` (for
  POST /v1/calls a 503 means no node was connected and nothing was sent).
- At most ``max_keys`` keys are kept, the oldest forgotten first. With a store (``api.idempotency.path``,
  :mod:`controller.api.idemstore`) they survive a controller restart: a key is on disk before its first
  request runs, and its answer once there is one. A key whose request was still running when the
  controller died answers 409 ``LOST_ANSWER`` after the restart: its originate may or may not have been
  placed (GET /v1/calls shows it), so it is never placed a second time under that key.
- The first request runs in a task of its own, so a client that goes away does not cut it short and its
  answer is kept for the retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web
from pydantic import BaseModel

from controller.api.idemstore import KeyRow, SqliteKeyStore
from switchyard.tasks import cancel_all

__all__ = [
    "KEY_HEADER",
    "NOT_KEPT",
    "REPLAYED_HEADER",
    "IdempotencyKeys",
    "fingerprint",
    "header_parameter",
    "request_key",
]

log = logging.getLogger(__name__)

KEY_HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
KEY_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,128}$"
NOT_KEPT: Final = frozenset({400, 401, 403, 404, 422, 429, 503})
"""Statuses of answers given before the operation acted: the key is released, not bound to them."""
_KEPT_HEADERS: Final = ("Location", "Retry-After")
_IN_PROGRESS_RETRY_S: Final = 5
LOST_ANSWER: Final = (
    "the request with this Idempotency-Key was running when the controller restarted; its outcome is lost "
    "(GET /v1/calls shows what it placed), and it is not run again"
)


class KeyRefused(Exception):
    """The request's key cannot be used: ``status`` 409 (still in progress) or 422 (another body, bad key)."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.retry_after = status, reason, retry_after


def request_key(headers: Any) -> str | None:
    """The request's ``Idempotency-Key`` (``headers``: a multidict), None without one.

    Raises:
        KeyRefused: 422, the header is repeated or outside the allowlist.
    """
    values = headers.getall(KEY_HEADER, [])
    if not values:
        return None
    if len(values) > 1:
        raise KeyRefused(422, f"give one {KEY_HEADER} header, not {len(values)}")
    key: str = values[0]
    if not re.fullmatch(KEY_PATTERN, key):
        raise KeyRefused(422, f"{KEY_HEADER}: 1 to 128 characters of A-Z a-z 0-9 . _ : -")
    return key


def fingerprint(*parts: BaseModel | None) -> str:
    """A digest of the validated body (and query): equal for requests that mean the same."""
    data = [None if part is None else part.model_dump(mode="json") for part in parts]
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def header_parameter() -> dict[str, Any]:
    """The header's OpenAPI parameter object."""
    return {
        "name": KEY_HEADER,
        "in": "header",
        "required": False,
        "description": "retries with the same key and body get the first answer again (same status and "
        "body, header Idempotent-Replayed: true) instead of acting twice; per token, kept on disk "
        "(api.idempotency.ttl_s, max_keys; a restart keeps them, and a request it cut short answers 409); "
        "the same key with another body is 422; a retry while the first runs waits for its answer (409 "
        "after api.idempotency.wait_s)",
        "schema": {"type": "string", "pattern": KEY_PATTERN, "minLength": 1, "maxLength": 128},
    }


@dataclass(frozen=True, slots=True)
class Answer:
    """A kept response."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, response: web.Response) -> Answer:
        """What ``response`` says, to say again."""
        kept = tuple((name, response.headers[name]) for name in _KEPT_HEADERS if name in response.headers)
        body = response.body if isinstance(response.body, bytes) else b""
        return cls(response.status, body, response.content_type, kept)

    @classmethod
    def of_row(cls, row: KeyRow) -> Answer:
        """The answer a store kept."""
        return cls(row.status or 0, row.body, row.content_type, row.headers)

    def response(self, replayed: bool) -> web.Response:
        """A fresh response saying it again."""
        headers = dict(self.headers)
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return web.Response(
            status=self.status, body=self.body, content_type=self.content_type, headers=headers
        )


@dataclass(eq=False, slots=True)
class _Entry:
    fingerprint: str
    created: float  # the monotonic clock's
    answer: asyncio.Future[Answer | None]  # None: released (the first request did nothing)
    wall: float  # time.time() when first seen (the store's)


def _lost() -> Answer:
    body = {"error": {"status": 409, "field": KEY_HEADER, "reason": LOST_ANSWER}}
    return Answer(409, orjson.dumps(body), "application/json", ())


Scope = tuple[str, ...]


class IdempotencyKeys:
    """The keys seen (see the module docstring); ``clock`` is injectable for the TTL."""

    def __init__(
        self,
        ttl_s: float = 86_400.0,
        max_keys: int = 10_000,
        wait_s: float = 330.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        store: SqliteKeyStore | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ttl_s, self.max_keys, self.wait_s = ttl_s, max_keys, wait_s
        self._clock, self._wall = clock, wall
        self.store = store
        self._entries: OrderedDict[Scope, _Entry] = OrderedDict()
        self._tasks: set[asyncio.Task[web.StreamResponse]] = set()

    async def restore(self) -> int:
        """Open the store and take up the keys it holds within ``ttl_s``; returns how many."""
        if self.store is None:
            return 0
        await self.store.open()
        now, wall = self._clock(), self._wall()
        for row in (await self.store.load(wall - self.ttl_s))[-self.max_keys :]:
            future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
            future.set_result(_lost() if row.status is None else Answer.of_row(row))
            self._entries[row.scope] = _Entry(row.digest, now - (wall - row.created), future, row.created)
        if self._entries:
            log.info("%d Idempotency-Key entries restored from %s", len(self._entries), self.store.path)
        return len(self._entries)

    def __len__(self) -> int:
        self._expire()
        return len(self._entries)

    async def respond(
        self, scope: Scope, digest: str, run: Callable[[], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """The answer for key ``scope`` (token, path, key) and body ``digest``: ``run()``'s for the first
        request, the kept one for a retry.

        Raises:
            KeyRefused: 422 another body under this key; 409 the first request is still running.
        """
        for _ in range(3):  # a released first request hands the key to one of its waiters
            self._expire()
            entry = self._entries.get(scope)
            if entry is None:
                return await self._first(scope, digest, run)
            if entry.fingerprint != digest:
                raise KeyRefused(422, f"this {KEY_HEADER} was used with another body")
            answer = await self._wait(entry)
            if answer is not None:
                return answer.response(replayed=True)
        raise KeyRefused(409, f"the request with this {KEY_HEADER} is still in progress", 1)

    async def _first(
        self, scope: Scope, digest: str, run: Callable[[], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        while len(self._entries) >= self.max_keys:
            oldest, _ = self._entries.popitem(last=False)  # one still running still answers its waiters
            self._forget(oldest)
        entry = _Entry(digest, self._clock(), asyncio.get_running_loop().create_future(), self._wall())
        self._entries[scope] = entry
        if self.store is not None:
            try:
                await self.store.put(KeyRow(scope, digest, entry.wall))
            except (sqlite3.Error, OSError) as exc:
                log.error("Idempotency-Key store %s: %s", self.store.path, exc)
                self._release(scope, entry)
                raise KeyRefused(503, f"the {KEY_HEADER} cannot be recorded; nothing was done", 1) from exc
        task = asyncio.create_task(self._run(scope, entry, run), name=f"idempotent {scope[-1]}")
        self._tasks.add(task)
        task.add_done_callback(_retrieved)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)  # a request cancelled meanwhile leaves the task to finish

    async def _run(
        self, scope: Scope, entry: _Entry, run: Callable[[], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await run()
        except BaseException:
            self._release(scope, entry)
            raise
        if not isinstance(response, web.Response):  # a stream cannot be said again
            self._release(scope, entry)
            return response
        answer = Answer.of(response)
        if answer.status in NOT_KEPT:
            self._release(scope, entry)
        elif not entry.answer.done():
            entry.answer.set_result(answer)
            await self._keep(scope, entry, answer)
        return answer.response(replayed=False)

    async def _keep(self, scope: Scope, entry: _Entry, answer: Answer) -> None:
        if self.store is None:
            return
        row = KeyRow(scope, entry.fingerprint, entry.wall, answer.status, answer.body, answer.content_type,
                     answer.headers)  # fmt: skip
        try:
            await self.store.put(row)
        except (sqlite3.Error, OSError) as exc:  # the answer stands; a retry after a restart gets 409
            log.error("Idempotency-Key store %s: answer not kept: %s", self.store.path, exc)

    def _forget(self, scope: Scope) -> None:
        """Delete ``scope``'s row, without waiting (the store's one thread keeps the order of writes)."""
        if self.store is not None:
            self.store.release_soon(scope)

    def _release(self, scope: Scope, entry: _Entry) -> None:
        if self._entries.get(scope) is entry:
            del self._entries[scope]
            self._forget(scope)
        if not entry.answer.done():
            entry.answer.set_result(None)

    async def _wait(self, entry: _Entry) -> Answer | None:
        try:
            async with asyncio.timeout(self.wait_s):
                return await asyncio.shield(entry.answer)
        except TimeoutError:
            raise KeyRefused(
                409, f"the request with this {KEY_HEADER} is still in progress", _IN_PROGRESS_RETRY_S
            ) from None

    def _expire(self) -> None:
        horizon = self._clock() - self.ttl_s
        while self._entries:
            scope, entry = next(iter(self._entries.items()))
            if entry.created > horizon:
                return
            if not entry.answer.done():
                return  # still running: kept until it answers
            del self._entries[scope]
            self._forget(scope)

    async def aclose(self, timeout: float = 2.0) -> None:
        """Cancel first requests still running (at shutdown)."""
        await cancel_all(list(self._tasks), timeout)
        if self.store is not None:
            await self.store.aclose()


def _retrieved(task: asyncio.Task[web.StreamResponse]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("idempotent request %s failed: %r", task.get_name(), exc)  # its requester may be gone
