"""The one backoff policy: capped exponential with full jitter, and a quick-failure breaker.

The n-th wait (n = 0, 1, …) is uniform in ``[0, min(maximum, initial * multiplier**n)]``: the "Full
Jitter" scheme of the AWS architecture blog ("Exponential Backoff And Jitter", Marc Brooker, 2015), which
spreads clients that failed together over the whole window, so they do not come back together. Used by
every reconnect and retry loop: the FreeSWITCH node and the Janus adapter (reconnects), the worker's
heartbeat to the controller and the voice providers' requests (``media_worker.netretry``).

A connection that dies sooner than ``quick_failure`` seconds after it was established does not count as a
success (:meth:`Backoff.connection_ended`), so a server that accepts and then drops us at once is not
hammered at the initial rate. The random draw is injectable; the time a connection lived is measured by
the caller, with its own (injectable) clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import Field

from switchyard.settings import SettingsModel

__all__ = ["Backoff", "BackoffSettings", "Reconnect", "RetrySettings"]

C = TypeVar("C")


class BackoffSettings(SettingsModel):
    """Reconnect policy: capped exponential backoff with full jitter and a quick-failure breaker."""

    initial: float = Field(0.2, gt=0, description="cap of the first wait, seconds")
    maximum: float = Field(30.0, gt=0, description="no wait is longer")
    multiplier: float = Field(2.0, ge=1)
    quick_failure: float = Field(
        5.0, ge=0, description="a connection that dies sooner than this does not reset the backoff"
    )


class RetrySettings(SettingsModel):
    """Retries of a network request: this many tries in all, waiting by :class:`Backoff` between them."""

    attempts: int = Field(3, ge=1, le=10, description="tries in all, the first included")
    initial_s: float = Field(0.2, gt=0)
    maximum_s: float = Field(2.0, gt=0)

    def backoff(self) -> BackoffSettings:
        """The waits between the tries (doubling from ``initial_s`` up to ``maximum_s``)."""
        return BackoffSettings(initial=self.initial_s, maximum=self.maximum_s, quick_failure=0)


class Backoff:
    """The waits of one retry loop.

    Args:
        settings: the policy.
        rng: a uniform draw in ``[0, 1)`` (``random.Random(seed).random`` in tests).
    """

    def __init__(self, settings: BackoffSettings, rng: Callable[[], float] = random.random) -> None:
        self._settings = settings
        self._rng = rng
        self.attempt = 0

    def cap(self) -> float:
        """The longest the next wait may be: ``min(maximum, initial * multiplier**attempt)``."""
        s = self._settings
        try:
            return min(s.maximum, s.initial * s.multiplier**self.attempt)
        except OverflowError:  # a loop failing for days: the power left the floats, far past maximum
            return s.maximum

    def next_delay(self) -> float:
        """The wait before the next attempt, uniform in ``[0, cap()]``; counts the attempt."""
        delay = self._rng() * self.cap()
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start over from the initial cap (after a success)."""
        self.attempt = 0

    def connection_ended(self, lived: float) -> None:
        """Record how long the last connection lived; only a long enough life resets the backoff."""
        if lived >= self._settings.quick_failure:
            self.reset()


@dataclass
class Reconnect(Generic[C]):
    """The reconnect loop of one supervised connection (the FreeSWITCH node, the Janus adapter).

    ``run`` opens a connection, holds it until it ends (``hold`` returns why, for the log), waits by
    ``backoff`` and opens again, until ``stopped()``. An ``open`` failing with one of ``retryable`` is
    retried after a wait, unless it is also one of ``fatal`` (a wrong password); anything else
    (cancellation included) ends the loop by propagating.
    ``sleep`` and ``monotonic`` are injectable for tests.
    """

    name: str
    open: Callable[[], Awaitable[C]]
    hold: Callable[[C], Awaitable[str]]
    backoff: Backoff
    retryable: tuple[type[Exception], ...]
    log: logging.Logger
    fatal: tuple[type[Exception], ...] = ()
    lost: str = "connection lost"  # how the log says a held connection ended ("session lost" for Janus)
    stopped: Callable[[], bool] = lambda: False
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    monotonic: Callable[[], float] = time.monotonic

    async def run(self) -> None:
        """Connect, hold, back off, again, until stopped."""
        while not self.stopped():
            try:
                conn = await self.open()
            except self.retryable as exc:
                if isinstance(exc, self.fatal):
                    raise
                await self._wait("connect failed (%s); retry in %.2fs", exc)
                continue
            started = self.monotonic()
            why = await self.hold(conn)
            self.backoff.connection_ended(self.monotonic() - started)
            if not self.stopped():
                await self._wait(self.lost + " (%s); reconnect in %.2fs", why or "closed")

    async def _wait(self, message: str, why: object) -> None:
        delay = self.backoff.next_delay()
        self.log.warning("%s: " + message, self.name, why, delay)
        await self.sleep(delay)
