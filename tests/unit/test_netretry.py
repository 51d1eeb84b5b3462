"""The voice providers' network policy: backoff, what is retried, streams, error mapping, wait budgets.

The backoff's sleep is injected (a recorder), so no test waits for real backoff.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Callable

import aiohttp
import pytest

from media_worker.errors import ProviderError, ProviderReplyError, ProviderTimeout, ProviderUnavailable
from media_worker.netretry import (
    WaitBudget,
    error_for_status,
    mapped_errors,
    stream_with_retries,
    with_retries,
)
from switchyard.retry import Backoff, RetrySettings

RETRY = RetrySettings(attempts=4, initial_s=0.1, maximum_s=0.25)


class Sleeps:
    """Records the backoff waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def failing(*errors: BaseException) -> tuple[Callable[[], asyncio.Future[str]], list[int]]:
    """An attempt factory raising ``errors`` in turn, then answering ``"ok"``; and its call count."""
    calls = [0]

    def attempt() -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if calls[0] < len(errors):
            future.set_exception(errors[calls[0]])
        else:
            future.set_result("ok")
        calls[0] += 1
        return future

    return attempt, calls


def test_backoff_is_full_jitter_under_a_capped_exponential() -> None:
    draw = random.Random(7).random
    for _ in range(200):
        backoff = Backoff(RETRY.backoff(), draw)
        delays = [backoff.next_delay() for _ in range(RETRY.attempts - 1)]
        for n, delay in enumerate(delays):
            assert 0.0 <= delay <= min(0.25, 0.1 * 2**n)


async def test_retryable_errors_are_retried_with_backoff() -> None:
    sleeps = Sleeps()
    attempt, calls = failing(ProviderUnavailable("p", "reset"), ProviderTimeout("p", "slow"))
    assert await with_retries(RETRY, attempt, sleep=sleeps, rng=random.Random(1).random) == "ok"
    assert calls[0] == 3
    assert len(sleeps.waits) == 2


async def test_a_reply_error_is_not_retried() -> None:
    sleeps = Sleeps()
    attempt, calls = failing(ProviderReplyError("p", "HTTP 401"))
    with pytest.raises(ProviderReplyError):
        await with_retries(RETRY, attempt, sleep=sleeps)
    assert calls[0] == 1
    assert sleeps.waits == []


async def test_the_last_error_is_raised_after_every_attempt() -> None:
    sleeps = Sleeps()
    attempt, calls = failing(*[ProviderUnavailable("p", f"HTTP 50{i}") for i in range(4)])
    with pytest.raises(ProviderUnavailable, match=r"HTTP 503 \(after 4 attempts\)") as raised:
        await with_retries(RETRY, attempt, sleep=sleeps)
    assert calls[0] == 4
    assert len(sleeps.waits) == 3
    assert isinstance(raised.value.__cause__, ProviderUnavailable)


async def test_a_single_attempt_raises_the_error_itself() -> None:
    original = ProviderUnavailable("p", "reset")
    attempt, calls = failing(original)
    with pytest.raises(ProviderUnavailable) as raised:
        await with_retries(RetrySettings(attempts=1), attempt, sleep=Sleeps())
    assert raised.value is original
    assert calls[0] == 1


async def test_cancellation_is_never_retried_or_swallowed() -> None:
    sleeps = Sleeps()
    attempt, calls = failing(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await with_retries(RETRY, attempt, sleep=sleeps)
    assert calls[0] == 1


def stream_failing(fail_at: list[int | None], closed: list[int]) -> Callable[[], AsyncGenerator[int, None]]:
    """Attempt n yields 0, 1, 2 but raises ProviderUnavailable before item ``fail_at[n]``."""
    tries = [0]

    async def attempt() -> AsyncGenerator[int, None]:
        mine = tries[0]
        tries[0] += 1
        try:
            for item in range(3):
                if fail_at[min(mine, len(fail_at) - 1)] == item:
                    raise ProviderUnavailable("p", f"cut in attempt {mine}")
                yield item
        finally:
            closed.append(mine)

    return attempt


async def test_a_stream_is_retried_only_before_its_first_item() -> None:
    closed: list[int] = []
    stream = stream_with_retries(RETRY, stream_failing([0, 0, None], closed), sleep=Sleeps())
    assert [item async for item in stream] == [0, 1, 2]
    assert closed == [0, 1, 2]

    got: list[int] = []
    closed.clear()
    stream = stream_with_retries(RETRY, stream_failing([2], closed), sleep=Sleeps())
    with pytest.raises(ProviderUnavailable, match=r"cut in attempt 0$"):
        await _drain(stream, got)
    assert got == [0, 1]
    assert closed == [0]


async def test_closing_a_stream_early_closes_the_attempt() -> None:
    closed: list[int] = []
    stream = stream_with_retries(RETRY, stream_failing([None], closed), sleep=Sleeps())
    assert await anext(stream) == 0
    await stream.aclose()
    assert closed == [0]


async def _drain(stream: AsyncGenerator[int, None], into: list[int]) -> None:
    async for item in stream:
        into.append(item)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
        (429, ProviderUnavailable),
        (400, ProviderReplyError),
        (401, ProviderReplyError),
        (404, ProviderReplyError),
    ],
)
def test_status_mapping(status: int, kind: type[ProviderError]) -> None:
    error = error_for_status("p", status, "why")
    assert type(error) is kind
    assert error.reason == f"HTTP {status}: why"


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (TimeoutError(), ProviderTimeout),
        (aiohttp.ServerTimeoutError("read"), ProviderTimeout),
        (aiohttp.ServerDisconnectedError(), ProviderUnavailable),
        (aiohttp.ClientPayloadError("cut"), ProviderUnavailable),
        (aiohttp.InvalidURL("nope"), ProviderReplyError),
    ],
)
def test_library_errors_are_mapped_from_the_original(raised: Exception, kind: type[ProviderError]) -> None:
    with pytest.raises(kind) as caught, mapped_errors("p", "GET /x"):
        raise raised
    assert caught.value.__cause__ is raised
    assert caught.value.provider == "p"


def test_cancellation_passes_the_mapping_untouched() -> None:
    with pytest.raises(asyncio.CancelledError), mapped_errors("p", "GET /x"):
        raise asyncio.CancelledError


async def test_wait_budget_adds_up_the_waits() -> None:
    budget = WaitBudget(0.2)
    await budget.wait(asyncio.sleep(0.05))
    assert 0.1 <= budget.remaining_s <= 0.151
    with pytest.raises(TimeoutError):
        await budget.wait(asyncio.sleep(1.0), gap_s=0.02)
    with pytest.raises(TimeoutError):
        await budget.wait(asyncio.sleep(1.0))
    assert budget.remaining_s <= 0.0
