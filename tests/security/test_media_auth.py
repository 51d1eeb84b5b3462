"""Issue 17 item 4: who may stream to a worker, for how long, and who may say where a worker is.

Each test is an attack that worked on 5939257: a stream with no token (or someone else's), 200
metadata-less sockets filling the worker, sockets that idle or never end, and a worker token re-pointing a
live worker's URL at itself. All on loopback: a real worker app, the controller's heartbeat API over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from controller.api.spec import ApiSpec
from controller.api.workers import add_worker_routes
from controller.settings import ApiToken
from controller.workers.pool import WorkerPool
from media_worker.vad.silero import SileroModel
from switchyard.streamauth import sign
from tests.appkit import served
from tests.workerkit import STREAM_SECRET, RunningWorker, running_worker, stream_token

TOKEN = "security-api-token-0123456789"


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


async def _until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``condition`` (worker state the peer cannot see) until it holds; fail after ``timeout``."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def _meta(call_id: str, **extra: object) -> str:
    return json.dumps({"call_id": call_id, "sample_rate": 8000, "call_type": "sip", **extra})


async def _close_of(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> tuple[int | None, str]:
    """Read until the worker closes; its close code and reason."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return ws.close_code, str(msg.extra or "")


async def _refused(rw: RunningWorker, call_id: str, meta: str) -> tuple[int | None, str]:
    async with aiohttp.ClientSession() as http, http.ws_connect(rw.url(call_id)) as ws:
        await ws.send_str(meta)
        await ws.send_bytes(b"\x00" * 320)
        return await _close_of(ws)


async def test_a_stream_without_the_controllers_token_is_refused(model: SileroModel) -> None:
    now = int(time.time())
    key = STREAM_SECRET.encode()
    bad = {
        "none": _meta("c1"),
        "garbage": _meta("c1", token="12.34"),
        "other call": _meta("c1", token=stream_token("c2")),
        "other worker": _meta("c1", token=stream_token("c1", "worker-2")),
        "other key": _meta("c1", token=sign(b"not-the-stream-secret", "c1", "worker-1", now + 30)),
        "expired": _meta("c1", token=sign(key, "c1", "worker-1", now - 1)),
        "too far ahead": _meta("c1", token=sign(key, "c1", "worker-1", now + 3600)),
    }
    async with running_worker(model) as rw:
        for name, meta in bad.items():
            code, reason = await _refused(rw, "c1", meta)
            assert (code, reason.split(":")[0]) == (1008, "metadata.token"), name
            assert not rw.worker.sessions, name
        async with aiohttp.ClientSession() as http, http.ws_connect(rw.url("c1")) as ws:
            await ws.send_str(_meta("c1", token=stream_token("c1")))
            await ws.send_bytes(b"\x00" * 320)
            await _until(lambda: "c1" in rw.worker.sessions)


async def test_a_worker_without_a_stream_secret_refuses_every_stream(model: SileroModel) -> None:
    async with running_worker(model, stream_secret=None) as rw:
        code, reason = await _refused(rw, "c1", _meta("c1", token=stream_token("c1")))
    assert code == 1008
    assert "no stream_secret" in reason


async def test_sockets_without_metadata_cannot_fill_the_worker(model: SileroModel) -> None:
    async with (
        running_worker(model, max_connections=3, metadata_timeout_s=5) as rw,
        aiohttp.ClientSession() as http,
    ):
        idle = [await http.ws_connect(rw.url(f"idle{i}")) for i in range(3)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(rw.url("one-more"))
        assert refused.value.status == 503
        for ws in idle:
            await ws.close()
        await _until(lambda: not rw.worker.connections)
        async with http.ws_connect(rw.url("now-fits")) as ws:  # the slots are given back
            await ws.send_str(_meta("now-fits", token=stream_token("now-fits")))
            await _until(lambda: "now-fits" in rw.worker.sessions)


async def test_an_idle_stream_is_closed(model: SileroModel) -> None:
    async with (
        running_worker(model, idle_timeout_s=0.4) as rw,
        aiohttp.ClientSession() as http,
        http.ws_connect(rw.url("quiet")) as ws,
    ):
        await ws.send_str(_meta("quiet", token=stream_token("quiet")))
        await ws.send_bytes(b"\x00" * 320)
        started = time.monotonic()
        code, reason = await _close_of(ws)
    assert (code, reason) == (1008, "stream: no frame for 0.4 s")
    assert 0.3 < time.monotonic() - started < 2.0


async def test_a_stream_is_closed_at_its_maximum_length(model: SileroModel) -> None:
    async with (
        running_worker(model, idle_timeout_s=5, max_stream_s=0.6) as rw,
        aiohttp.ClientSession() as http,
        http.ws_connect(rw.url("endless")) as ws,
    ):
        await ws.send_str(_meta("endless", token=stream_token("endless")))

        async def talk() -> None:
            while not ws.closed:
                await ws.send_bytes(b"\x00" * 320)
                await asyncio.sleep(0.02)

        talker = asyncio.create_task(talk())
        try:
            code, reason = await _close_of(ws)
        finally:
            talker.cancel()
            await asyncio.gather(talker, return_exceptions=True)
    assert (code, reason) == (1008, "stream: open too long")


@asynccontextmanager
async def _heartbeat_api() -> AsyncIterator[tuple[WorkerPool, str]]:
    pool = WorkerPool(missed_beats=3, suspect_s=30)
    app = web.Application()
    add_worker_routes(
        app, ApiSpec("test", "1", (ApiToken(name="ops", token=SecretStr(TOKEN), scopes=("admin",)),)), pool
    )
    async with served(app) as port:
        yield pool, f"http://127.0.0.1:{port}/v1/workers/heartbeat"


async def _beat(http: aiohttp.ClientSession, url: str, worker_id: str, ws_url: str) -> int:
    body = {"worker_id": worker_id, "url": ws_url, "capacity": 10, "streams": 0, "heartbeat_s": 30}
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        return response.status


async def test_a_heartbeat_cannot_take_over_a_live_workers_id_or_url() -> None:
    async with _heartbeat_api() as (pool, url), aiohttp.ClientSession() as http:
        assert await _beat(http, url, "w1", "ws://10.0.0.1:8000") == 200
        assert await _beat(http, url, "w1", "ws://10.6.6.6:8000") == 409  # re-point w1 at the attacker
        assert await _beat(http, url, "evil", "ws://10.0.0.1:8000/") == 409  # claim w1's address
        assert await _beat(http, url, "w1", "ws://10.0.0.1:8000") == 200  # w1 itself keeps beating
        assert [(w["worker_id"], w["url"]) for w in pool.snapshot()] == [("w1", "ws://10.0.0.1:8000")]
