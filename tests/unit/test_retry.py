"""The one backoff policy (``switchyard.retry``): capped exponential, full jitter, quick-failure breaker; and
its users' waits: a FreeSWITCH node's reconnects and a worker's heartbeats. The random draw is injected.

Full jitter was the fix: ``controller.freeswitch.backoff`` called its draw "full jitter" but returned
``cap/2 + u*cap/2`` (equal jitter, never below half the cap), so nodes that lost FreeSWITCH together
came back within half a window of each other.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable
from statistics import mean

import pytest

from controller.freeswitch.node import FreeSwitchNode
from controller.settings import FreeSwitchNodeSettings
from media_worker.announce import heartbeat_backoff, next_beat
from switchyard.retry import Backoff, BackoffSettings, RetrySettings

POLICY = BackoffSettings(initial=0.1, maximum=1.0, multiplier=2.0, quick_failure=5.0)


def fixed(value: float) -> Callable[[], float]:
    """A draw that always returns ``value``."""
    return lambda: value


def caps(backoff: Backoff, n: int) -> list[float]:
    """The caps of the next ``n`` waits (the draw at its top)."""
    found = []
    for _ in range(n):
        found.append(backoff.cap())
        backoff.next_delay()
    return found


def test_the_cap_doubles_from_initial_up_to_maximum() -> None:
    assert caps(Backoff(POLICY), 7) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    tripling = POLICY.model_copy(update={"multiplier": 3.0})
    assert caps(Backoff(tripling), 4) == pytest.approx([0.1, 0.3, 0.9, 1.0])


def test_a_wait_is_the_draw_times_the_cap_from_zero_to_the_cap() -> None:
    assert [Backoff(POLICY, fixed(0.0)).next_delay() for _ in range(3)] == [0.0, 0.0, 0.0]
    top = Backoff(POLICY, fixed(0.999))
    assert [top.next_delay() for _ in range(5)] == pytest.approx([0.0999, 0.1998, 0.3996, 0.7992, 0.999])
    assert Backoff(POLICY, fixed(0.5)).next_delay() == pytest.approx(0.05)  # equal jitter gave 0.075


def test_full_jitter_spreads_waits_over_the_whole_window() -> None:
    draw = random.Random(7).random
    waits = []
    for _ in range(2000):
        backoff = Backoff(POLICY, draw)
        backoff.attempt = 10  # at the maximum
        waits.append(backoff.next_delay())
    assert all(0.0 <= wait <= 1.0 for wait in waits)
    assert min(waits) < 0.01
    assert max(waits) > 0.99
    assert mean(waits) == pytest.approx(0.5, abs=0.03)
    assert sum(wait < 0.5 for wait in waits) == pytest.approx(1000, abs=80)  # equal jitter: none


def test_only_a_connection_that_lived_long_enough_resets_the_backoff() -> None:
    backoff = Backoff(POLICY, fixed(1.0))
    caps(backoff, 3)
    backoff.connection_ended(4.9)  # dropped at once: a quick failure, keep backing off
    assert backoff.attempt == 3
    assert backoff.next_delay() == pytest.approx(0.8)
    backoff.connection_ended(5.0)
    assert backoff.attempt == 0
    assert backoff.next_delay() == pytest.approx(0.1)
    backoff.reset()
    assert backoff.cap() == pytest.approx(0.1)


def test_a_loop_failing_for_ever_stays_at_the_maximum() -> None:
    backoff = Backoff(POLICY, fixed(1.0))
    backoff.attempt = 5000  # 2.0**5000 is no float
    assert backoff.next_delay() == 1.0


def test_request_retries_use_the_same_policy_without_a_breaker() -> None:
    policy = RetrySettings(attempts=4, initial_s=0.1, maximum_s=0.25).backoff()
    assert (policy.initial, policy.maximum, policy.multiplier, policy.quick_failure) == (0.1, 0.25, 2.0, 0)
    assert caps(Backoff(policy), 3) == pytest.approx([0.1, 0.2, 0.25])


def test_heartbeats_keep_their_period_and_back_off_from_two_periods_after_failures() -> None:
    backoff = heartbeat_backoff(2.0, fixed(1.0))
    assert next_beat(2.0, backoff, failed=False, rng=fixed(0.0)) == pytest.approx(1.6)
    assert next_beat(2.0, backoff, failed=False, rng=fixed(1.0)) == pytest.approx(2.0)
    failed = [next_beat(2.0, backoff, failed=True) for _ in range(3)]
    assert failed == pytest.approx([4.0, 4.0, 4.0])  # capped at two periods when that exceeds 2 s
    quick = heartbeat_backoff(0.5, fixed(1.0))
    assert [next_beat(0.5, quick, failed=True) for _ in range(4)] == pytest.approx([1.0, 2.0, 2.0, 2.0])
    next_beat(2.0, backoff, failed=False)
    assert next_beat(2.0, backoff, failed=True) == pytest.approx(4.0)  # a delivered beat reset it
    assert next_beat(2.0, heartbeat_backoff(2.0, fixed(0.0)), failed=True) == 0.0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once it is closed


async def test_a_node_that_cannot_connect_waits_full_jitter_over_a_growing_cap() -> None:
    settings = FreeSwitchNodeSettings.model_validate(
        {"name": "fs1", "port": _closed_port(), "password": "pw", "keepalive": 0,
         "backoff": {"initial": 0.1, "maximum": 0.4}}
    )  # fmt: skip
    waits: list[float] = []
    enough = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 4:
            enough.set()
        await asyncio.sleep(0)

    async with FreeSwitchNode(settings, sleep=sleep, rng=fixed(0.5)):
        async with asyncio.timeout(10):
            await enough.wait()
    assert waits[:4] == pytest.approx([0.05, 0.1, 0.2, 0.2])  # equal jitter waited 0.075, 0.15, 0.3, 0.3
