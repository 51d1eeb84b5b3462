"""The events received from FreeSWITCH and not yet consumed: a queue bounded in count and bytes.

Policy: when either bound is reached, the connection stops reading from its socket until the consumer has
taken the backlog down to half of both bounds; we drop no event. The kernel's socket buffers fill, and
then FreeSWITCH queues the listener's events itself (mod_event_socket.c: ``MAX_QUEUE_LEN`` 100000 events
per listener); a listener whose queue stays full loses events and, past ``MAX_MISSED`` (500) of them, is
closed by FreeSWITCH. The node sees that as a lost connection, logs it, reconnects and resyncs, as on any
other loss: nothing is dropped silently. Replies travel behind the events on the same socket, so while
reading is paused a command waits too, and one whose deadline passes drops the connection as usual
(``CommandTimeout``).

Bytes are wire bytes (each event frame's body; the decoded objects take a few times that). The bound is
checked between reads, so the events of one read (``connection.READ_CHUNK``) may pass it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Final, Generic, TypeVar

__all__ = ["MAX_BACKLOG_BYTES", "MAX_BACKLOG_EVENTS", "EventBacklog"]

log = logging.getLogger(__name__)

MAX_BACKLOG_EVENTS: Final = 100_000
"""Default bound on the events held (FreeSWITCH's own per-listener queue holds as many)."""
MAX_BACKLOG_BYTES: Final = 64 * 1024 * 1024
"""Default bound on their wire bytes (a realistic channel event is 1-10 KiB)."""

T = TypeVar("T")


class EventBacklog(Generic[T]):
    """A FIFO of events, each with its size in wire bytes, that is ``full`` at either bound.

    ``full`` turns on when ``max_events`` or ``max_bytes`` is reached, and off once both the count and the
    bytes are down to half their bound; the reader awaits ``room()`` before each read.
    """

    __slots__ = ("_items", "_room", "bytes", "fills", "full", "max_bytes", "max_events", "name", "peak_bytes")

    def __init__(self, max_events: int, max_bytes: int, name: str = "event backlog") -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.name = name
        self._items: deque[tuple[T, int]] = deque()
        self.bytes = 0
        self.peak_bytes = 0
        self.fills = 0  # times the backlog filled and reading paused
        self.full = False
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._items)

    def append(self, item: T, size: int) -> None:
        """Queue ``item`` of ``size`` wire bytes."""
        self._items.append((item, size))
        self.bytes += size
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        if not self.full and (len(self._items) >= self.max_events or self.bytes >= self.max_bytes):
            self.full = True
            self.fills += 1
            self._room.clear()
            log.warning(
                "%s: %d events (%d bytes) unread; reading from FreeSWITCH paused until half are consumed",
                self.name, len(self._items), self.bytes,
            )  # fmt: skip

    def popleft(self) -> T:
        """Take the oldest item (IndexError when empty)."""
        item, size = self._items.popleft()
        self.bytes -= size
        if self.full and len(self._items) <= self.max_events // 2 and self.bytes <= self.max_bytes // 2:
            self.full = False
            self._room.set()
            log.debug("%s: reading from FreeSWITCH resumed", self.name)
        return item

    async def room(self) -> None:
        """Return at once unless full; else wait until the consumer has taken half the backlog."""
        if self.full:
            await self._room.wait()
