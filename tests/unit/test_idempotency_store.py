"""Idempotency-Key entries on disk: a restarted controller (a new IdempotencyKeys on the same file) replays
kept answers, answers 409 for a request it was running when it died, and forgets released or old keys."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from aiohttp import web

from controller.api.idempotency import LOST_ANSWER, IdempotencyKeys, KeyRefused
from controller.api.idemstore import SqliteKeyStore

SCOPE = ("ops", "/v1/calls", "order-1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def keys_on(path: Path, wall: Clock, ttl_s: float = 60.0, max_keys: int = 100) -> IdempotencyKeys:
    keys = IdempotencyKeys(ttl_s, max_keys, 1.0, store=SqliteKeyStore(path), wall=wall)
    await keys.restore()
    return keys


def answer(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, headers={"Location": "/v1/calls/abc"})


async def test_a_kept_answer_is_replayed_after_a_restart(tmp_path: Path) -> None:
    wall, db = Clock(), tmp_path / "keys.sqlite3"
    first = await keys_on(db, wall)
    said = await first.respond(SCOPE, "d1", lambda: asyncio.sleep(0, answer(201, "placed")))
    await first.aclose()
    runs: list[int] = []
    second = await keys_on(db, wall)

    async def run_again() -> web.Response:
        runs.append(1)
        return answer(201, "placed twice")

    replay = await second.respond(SCOPE, "d1", run_again)
    with pytest.raises(KeyRefused) as other_body:
        await second.respond(SCOPE, "d2", run_again)
    await second.aclose()
    assert isinstance(said, web.Response)
    assert isinstance(replay, web.Response)
    assert (replay.status, replay.body, replay.headers["Location"]) == (201, said.body, "/v1/calls/abc")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert runs == []
    assert other_body.value.status == 422


async def test_a_request_running_when_the_controller_died_is_never_run_again(tmp_path: Path) -> None:
    wall, db = Clock(), tmp_path / "keys.sqlite3"
    first = await keys_on(db, wall)
    running = asyncio.create_task(first.respond(SCOPE, "d1", lambda: asyncio.sleep(3600, answer(201, "x"))))
    await asyncio.sleep(0.05)  # the key is on disk before the request runs
    running.cancel()  # the controller dies: its database thread never writes an answer
    await asyncio.gather(running, return_exceptions=True)
    second = await keys_on(db, wall)
    lost = await second.respond(SCOPE, "d1", lambda: asyncio.sleep(0, answer(201, "again")))
    await second.aclose()
    await first.aclose()
    assert isinstance(lost, web.Response)
    assert isinstance(lost.body, bytes)
    assert lost.status == 409
    assert json.loads(lost.body)["error"]["reason"] == LOST_ANSWER


async def test_released_and_expired_keys_are_forgotten_on_disk(tmp_path: Path) -> None:
    wall, db = Clock(), tmp_path / "keys.sqlite3"
    first = await keys_on(db, wall)
    await first.respond(SCOPE, "d1", lambda: asyncio.sleep(0, answer(503, "nothing done")))  # released
    await first.respond(("ops", "/v1/calls", "old"), "d", lambda: asyncio.sleep(0, answer(201, "old")))
    await first.aclose()
    wall.now += 61  # past ttl_s
    second = await keys_on(db, wall)
    assert len(second) == 0
    await second.aclose()
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT count(*) FROM keys").fetchone()[0] == 0


async def test_a_store_that_cannot_write_refuses_the_request_before_it_runs(tmp_path: Path) -> None:
    wall = Clock()
    keys = await keys_on(tmp_path / "keys.sqlite3", wall)
    assert keys.store is not None
    await keys.store.aclose()  # the file is gone from under it
    keys.store = SqliteKeyStore(tmp_path / "keys.sqlite3")  # never opened: every write fails
    runs: list[int] = []

    async def run() -> web.Response:
        runs.append(1)
        return answer(201, "placed")

    with pytest.raises(KeyRefused) as refused:
        await keys.respond(SCOPE, "d1", run)
    assert refused.value.status == 503
    assert runs == []
    assert len(keys) == 0  # the key stays free for a retry
