"""An ESL client that writes a ``Transcript`` of everything it sends and receives (the IO half of it).

Commands go one at a time (ESL replies are FIFO: the first non-event message after a command is its
reply). Polling commands can be left out of the transcript (``record=False``); the events that arrive
meanwhile are kept. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.fsemu.fixtures import Message, ParsedEvent, parse_json_event, parse_plain_event
from tests.fsemu.replay import EslPeer
from tests.fsemu.transcript import DETAIL, Transcript, event_key

REPLY_DEADLINE = 15.0
EVENT_TYPES = ("text/event-json", "text/event-plain")


def _event(msg: Message) -> ParsedEvent | None:
    if msg.content_type == "text/event-json":
        return parse_json_event(msg.body)
    if msg.content_type == "text/event-plain":
        return parse_plain_event(msg.body)
    return None


class EslRecorder:
    """One inbound ESL connection and its transcript."""

    def __init__(self, peer: EslPeer, transcript: Transcript) -> None:
        self.peer = peer
        self.transcript = transcript
        self._flushed = 0
        self._skip: set[int] = set()
        self._mark, self._mark_time = 0, time.monotonic()  # where and when the last recorded command went

    @classmethod
    async def open(cls, host: str, port: int, password: str, transcript: Transcript) -> EslRecorder:
        """Connect and authenticate (the password is written as ``<password>``)."""
        rec = cls(await EslPeer.connect(host, port), transcript)
        await rec._wait(lambda: len(rec.peer.received) >= 1, REPLY_DEADLINE)
        rec.flush()
        reply = await rec.command(f"auth {password}", shown="auth <password>")
        if reply.header("Reply-Text") != "+OK accepted":
            raise ConnectionError(f"ESL auth refused: {reply.header('Reply-Text')}")
        return rec

    async def close(self) -> None:
        """Close the connection (what arrived is flushed first)."""
        self.flush()
        await self.peer.close()

    def flush(self, upto: int | None = None) -> None:
        """Move received messages (up to index ``upto``) into the transcript."""
        end = len(self.peer.received) if upto is None else upto
        for index in range(self._flushed, end):
            if index not in self._skip:
                self.transcript.add_message(self.peer.received[index])
        self._flushed = max(self._flushed, end)

    async def command(self, line: str, *, record: bool = True, shown: str | None = None) -> Message:
        """Send one command and return its reply (``record=False``: neither appears in the transcript)."""
        self.flush()
        start = len(self.peer.received)
        if record:
            self.transcript.add_command(shown or line)
            self._mark, self._mark_time = start, time.monotonic()
        self.peer.send(f"{line}\n\n".encode())
        found: list[int] = []

        def replied() -> bool:
            for index in range(start, len(self.peer.received)):
                if self.peer.received[index].content_type not in EVENT_TYPES:
                    found.append(index)
                    return True
            return False

        await self._wait(replied, REPLY_DEADLINE)
        if not record:
            self._skip.add(found[0])
        self.flush(found[0] + 1)
        return self.peer.received[found[0]]

    async def api(self, command: str, *, record: bool = True) -> str:
        """``api <command>``: the reply body."""
        return (await self.command(f"api {command}", record=record)).body.decode()

    async def timed_api(self, command: str) -> tuple[str, float]:
        """``api <command>`` and how long the reply took (seconds)."""
        started = time.monotonic()
        body = await self.api(command)
        return body, time.monotonic() - started

    def events(self) -> list[ParsedEvent]:
        """Every event received so far."""
        return [e for e in (_event(m) for m in self.peer.received) if e is not None]

    async def until_event(
        self, match: Callable[[ParsedEvent], bool], *, count: int = 1, timeout: float = 10.0
    ) -> float:
        """Wait until ``count`` events received since the last recorded command match; returns the seconds
        from that command."""
        start = self._mark

        def seen() -> bool:
            later = (_event(m) for m in self.peer.received[start:])
            return sum(1 for e in later if e is not None and match(e)) >= count

        await self._wait(seen, timeout)
        self.flush()
        return time.monotonic() - self._mark_time

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                if self.peer._task.done():
                    raise ConnectionError("ESL connection closed")
                await asyncio.sleep(0.002)


def is_event(key: str, uuid: str | None = None, detail: str | None = None) -> Callable[[ParsedEvent], bool]:
    """A matcher: Event-Name (or ``CUSTOM <subclass>``), optionally of channel ``uuid``, optionally with
    Channel-State / Hangup-Cause ... ``detail``."""

    def match(event: ParsedEvent) -> bool:
        if event_key(event) != key or (uuid is not None and event.get("Unique-ID") != uuid):
            return False
        header = DETAIL.get(key)
        return detail is None or (header is not None and event.get(header) == detail)

    return match
