"""``controller.api.idempotency``: key validation, body digests, and the keys' replay, wait, release, TTL
and cap rules (the clock injected; responses are aiohttp's own objects)."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from aiohttp import web
from multidict import CIMultiDict
from pydantic import BaseModel

from controller.api.idempotency import IdempotencyKeys, KeyRefused, fingerprint, request_key


class Body(BaseModel):
    target: Literal["user", "extension"]
    variables: dict[str, str] = {}
    timeout_s: int = 30


@pytest.mark.parametrize("key", ["a", "A" * 128, "order-17:retry.2_x", "0"])
def test_keys_in_the_allowlist_pass(key: str) -> None:
    assert request_key(CIMultiDict({"Idempotency-Key": key})) == key


@pytest.mark.parametrize("key", ["", "a" * 129, "a b", "k/1", "ké", "k\t1", "k,1", "{k}", "k;1"])
def test_keys_outside_the_allowlist_are_422(key: str) -> None:
    with pytest.raises(KeyRefused) as refused:
        request_key(CIMultiDict({"Idempotency-Key": key}))
    assert refused.value.status == 422


def test_no_key_is_none_and_two_keys_are_refused() -> None:
    assert request_key(CIMultiDict()) is None
    with pytest.raises(KeyRefused):
        request_key(CIMultiDict([("Idempotency-Key", "a"), ("idempotency-key", "a")]))


def test_the_digest_ignores_key_order_and_spelt_out_defaults() -> None:
    a = Body.model_validate_json('{"target":"user","variables":{"x":"1","y":"2"}}')
    b = Body.model_validate_json('{"variables":{"y":"2","x":"1"},"timeout_s":30,"target":"user"}')
    c = Body.model_validate_json('{"target":"user","variables":{"x":"1","y":"3"}}')
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)
    assert fingerprint(a, None) != fingerprint(None, a)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Handler:
    """Counts runs; answers ``status`` with a body naming the run, after ``gate`` (if any) opens."""

    def __init__(self, status: int = 201, gate: asyncio.Event | None = None) -> None:
        self.status, self.gate, self.runs = status, gate, 0

    async def __call__(self) -> web.StreamResponse:
        self.runs += 1
        run = self.runs
        if self.gate is not None:
            await self.gate.wait()
        return web.Response(status=self.status, text=f'{{"run":{run}}}', content_type="application/json")


SCOPE = ("token:alpha", "POST", "/v1/calls", "k1")


async def _say(
    keys: IdempotencyKeys, handler: Handler, digest: str = "d1", scope: tuple[str, ...] = SCOPE
) -> tuple[int, object, str | None]:
    response = await keys.respond(scope, digest, handler)
    assert isinstance(response, web.Response)
    return response.status, response.body, response.headers.get("Idempotent-Replayed")


async def test_a_retry_gets_the_first_answer_and_runs_nothing() -> None:
    keys, handler = IdempotencyKeys(), Handler()
    first = await _say(keys, handler)
    again = await _say(keys, handler)
    assert first == (201, b'{"run":1}', None)
    assert again == (201, b'{"run":1}', "true")
    assert handler.runs == 1


async def test_another_body_under_the_key_is_422() -> None:
    keys, handler = IdempotencyKeys(), Handler()
    await _say(keys, handler)
    with pytest.raises(KeyRefused) as refused:
        await _say(keys, handler, digest="d2")
    assert refused.value.status == 422
    assert handler.runs == 1


async def test_a_concurrent_retry_waits_for_the_first_answer() -> None:
    gate = asyncio.Event()
    keys, handler = IdempotencyKeys(), Handler(gate=gate)
    first = asyncio.create_task(_say(keys, handler))
    second = asyncio.create_task(_say(keys, handler))
    await asyncio.sleep(0.01)
    assert not second.done()
    gate.set()
    assert (await first)[:2] == (await second)[:2] == (201, b'{"run":1}')
    assert handler.runs == 1


async def test_a_retry_that_waits_too_long_is_409() -> None:
    keys, handler = IdempotencyKeys(wait_s=0.05), Handler(gate=asyncio.Event())
    first = asyncio.create_task(_say(keys, handler))
    await asyncio.sleep(0.01)
    with pytest.raises(KeyRefused) as refused:
        await _say(keys, handler)
    assert refused.value.status == 409
    assert refused.value.retry_after is not None
    first.cancel()
    await keys.aclose()


async def test_an_answer_that_did_nothing_releases_the_key() -> None:
    keys = IdempotencyKeys()
    down = await _say(keys, Handler(503))
    up = await _say(keys, Handler(201))
    assert down[0] == 503
    assert up == (201, b'{"run":1}', None)


async def test_a_requester_that_goes_away_leaves_the_first_request_to_finish() -> None:
    gate = asyncio.Event()
    keys, handler = IdempotencyKeys(), Handler(gate=gate)
    gone = asyncio.create_task(_say(keys, handler))
    await asyncio.sleep(0.01)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    gate.set()
    again = await _say(keys, handler)
    assert again == (201, b'{"run":1}', "true")
    assert handler.runs == 1


async def test_keys_expire_after_the_ttl() -> None:
    clock = Clock()
    keys, handler = IdempotencyKeys(ttl_s=60, clock=clock), Handler()
    await _say(keys, handler)
    clock.now += 59
    assert (await _say(keys, handler))[2] == "true"
    clock.now += 2
    assert await _say(keys, handler) == (201, b'{"run":2}', None)
    assert len(keys) == 1


async def test_beyond_the_cap_the_oldest_key_goes() -> None:
    keys, handler = IdempotencyKeys(max_keys=2), Handler()
    for key in ("k1", "k2", "k3"):
        await _say(keys, handler, scope=(*SCOPE[:3], key))
    assert len(keys) == 2
    assert (await _say(keys, handler, scope=(*SCOPE[:3], "k3")))[2] == "true"
    assert (await _say(keys, handler, scope=(*SCOPE[:3], "k1")))[2] is None  # forgotten: ran again
    assert handler.runs == 4


async def test_keys_of_other_holders_are_other_entries() -> None:
    keys, handler = IdempotencyKeys(), Handler()
    await _say(keys, handler, scope=("token:alpha", "POST", "/v1/calls", "k"))
    beta = await _say(keys, handler, scope=("token:beta", "POST", "/v1/calls", "k"))
    assert beta == (201, b'{"run":2}', None)
