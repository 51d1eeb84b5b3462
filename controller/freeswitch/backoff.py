"""Reconnect delays: capped exponential backoff with jitter and a quick-failure breaker.

A connection that dies sooner than ``quick_failure`` seconds after it was established does not count as
a success, so a server that accepts and then drops us at once is not hammered at the initial rate.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Backoff", "BackoffSettings"]


class BackoffSettings(BaseModel):
    """Reconnect policy: capped exponential backoff with full jitter and a quick-failure breaker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial: float = Field(0.2, gt=0)
    maximum: float = Field(30.0, gt=0)
    multiplier: float = Field(2.0, ge=1)
    quick_failure: float = Field(
        5.0, ge=0, description="a connection that dies sooner than this does not reset the backoff"
    )


class Backoff:
    """Delay generator for one node's reconnect loop (time and randomness are injectable)."""

    def __init__(self, settings: BackoffSettings, rng: Callable[[], float] = random.random) -> None:
        self._settings = settings
        self._rng = rng
        self.attempt = 0

    def next_delay(self) -> float:
        """The delay before the next attempt: half the capped exponential, plus up to the other half."""
        s = self._settings
        cap = min(s.maximum, s.initial * s.multiplier**self.attempt)
        self.attempt += 1
        return cap / 2 + self._rng() * cap / 2

    def connection_ended(self, lived: float) -> None:
        """Record how long the last connection lived; only a long enough life resets the backoff."""
        if lived >= self._settings.quick_failure:
            self.attempt = 0
