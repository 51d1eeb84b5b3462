"""``switchyard.retry.Reconnect``, the loop of the FreeSWITCH node and the Janus adapter, on a fake clock.

The clock and the sleep are injected: ``Clock.sleep`` advances time instead of waiting, so the test reads
the exact waits and how long each connection was held.
"""

from __future__ import annotations

import logging

import pytest

from switchyard.retry import Backoff, BackoffSettings, Reconnect

POLICY = BackoffSettings(initial=1.0, maximum=8.0, multiplier=2.0, quick_failure=5.0)
log = logging.getLogger("test.reconnect")


class Refused(Exception):
    """A retryable connect failure."""


class WrongPassword(Refused):
    """A failure no retry can fix."""


class Clock:
    """Time that moves only when the loop sleeps or a connection is held."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class Server:
    """Answers the loop's opens from a script: an exception to raise, or how long the connection lives."""

    def __init__(self, clock: Clock, script: list[Exception | float]) -> None:
        self.clock, self.script, self.held = clock, script, 0

    async def open(self) -> float:
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def hold(self, lives: float) -> str:
        self.held += 1
        self.clock.now += lives
        return f"dropped after {lives:g} s"

    def done(self) -> bool:
        return not self.script


def _loop(clock: Clock, server: Server) -> Reconnect[float]:
    return Reconnect(
        "test", server.open, server.hold, Backoff(POLICY, lambda: 1.0), (Refused,), log,
        fatal=(WrongPassword,), stopped=server.done, sleep=clock.sleep, monotonic=lambda: clock.now,
    )  # fmt: skip


async def test_failures_back_off_and_a_long_life_starts_over(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    # refused twice; a connection dying at once (no reset); refused; one living 10 s (reset); refused.
    server = Server(clock, [Refused("no"), Refused("no"), 0.5, Refused("no"), 10.0, Refused("no")])
    with caplog.at_level(logging.WARNING, "test.reconnect"):
        await _loop(clock, server).run()
    assert clock.waits == [1.0, 2.0, 4.0, 8.0, 1.0, 2.0]  # the draw at the top of each cap
    assert server.held == 2
    assert "test: connect failed (no); retry in 1.00s" in caplog.text
    assert "test: connection lost (dropped after 0.5 s); reconnect in 4.00s" in caplog.text


async def test_a_fatal_failure_ends_the_loop() -> None:
    clock = Clock()
    server = Server(clock, [Refused("no"), WrongPassword("denied"), 1.0])
    with pytest.raises(WrongPassword):
        await _loop(clock, server).run()
    assert clock.waits == [1.0]
    assert server.held == 0


async def test_a_stopped_loop_neither_opens_nor_waits() -> None:
    clock = Clock()
    server = Server(clock, [])
    await _loop(clock, server).run()
    assert clock.waits == []
