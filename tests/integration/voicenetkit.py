"""What the network voice provider tests share: a fast retry policy and ``drain``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

FAST_RETRY = {"attempts": 3, "initial_s": 0.01, "maximum_s": 0.02}
T = TypeVar("T")


async def drain(items: AsyncIterator[T], into: list[T]) -> None:
    """Iterate ``items`` into ``into``, so what came before a failure stays visible."""
    async for item in items:
        into.append(item)
