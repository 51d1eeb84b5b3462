"""What a worker's heartbeat says about its open streams: the call ids, within the bounds both sides check.

A worker lists the call ids of its open streams in each heartbeat (``media_worker.announce``); the controller
validates the list (``controller.workers.pool.Heartbeat``) and moves a call its worker stopped listing
(``controller.workers.liveness``). Ids outside the allow-list are left out by the worker (the controller
would refuse the whole beat), and a worker with more streams than ``MAX_LISTED_CALLS`` lists none (``None``:
the controller then cannot tell, and checks only that the beats keep coming).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["CALL_ID_PATTERN", "MAX_LISTED_CALLS", "listed_calls"]

CALL_ID_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,128}$"
"""A call id in a heartbeat (the controller's call ids are channel UUIDs)."""

MAX_LISTED_CALLS: Final = 1000
"""At most this many ids per beat (about 40 kB of JSON; a worker's default capacity is 200)."""

_CALL_ID: Final = re.compile(CALL_ID_PATTERN)


def listed_calls(call_ids: Iterable[str]) -> list[str] | None:
    """The ids a heartbeat lists: those the controller accepts, or ``None`` when there are too many."""
    listed = sorted(c for c in call_ids if _CALL_ID.fullmatch(c))
    return listed if len(listed) <= MAX_LISTED_CALLS else None
