"""Replay a captured ESL session against a server and compare what it sends with the capture.

Used by tests/integration/test_emulator_fixture_drift.py (and reusable against a live FreeSWITCH).
Comparison rules: replies in order with UUIDs mapped; events grouped per channel (Unique-ID mapped by
channel name and order of appearance; events without a channel in one "global" group) must have the same
(Event-Name, Event-Subclass) sequence and the same header names in the same order.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from tests.fsemu.fixtures import (
    Block,
    Message,
    ParsedEvent,
    parse_json_event,
    parse_plain_event,
    split_messages,
)

UUID_RE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Segment:
    """One client command (None for the greeting) and the server messages captured after it."""

    command: bytes | None
    expected: list[Message] = field(default_factory=list)


def segments(blocks: Iterable[Block]) -> list[Segment]:
    """Group a session's blocks into command segments."""
    out = [Segment(None)]
    for block in blocks:
        if block.direction == "APP>FS":
            out.append(Segment(block.data))
        else:
            out[-1].expected += split_messages(block.data)
    return out


class EslPeer:
    """A raw asyncio ESL client collecting every message the server sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received: list[Message] = []
        self._buf = b""
        self._task = asyncio.create_task(self._pump())

    @classmethod
    async def connect(cls, host: str, port: int) -> EslPeer:
        """Open a connection."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def _pump(self) -> None:
        while data := await self.reader.read(65536):
            self._buf += data
            while (msg := self._take()) is not None:
                self.received.append(msg)

    def _take(self) -> Message | None:
        end = self._buf.find(b"\n\n")
        if end < 0:
            return None
        match = re.search(rb"(?m)^Content-Length: (\d+)$", self._buf[:end])
        total = end + 2 + (int(match.group(1)) if match else 0)
        if len(self._buf) < total:
            return None
        msg = split_messages(self._buf[:total])[0]
        self._buf = self._buf[total:]
        return msg

    def send(self, data: bytes) -> None:
        """Write raw bytes."""
        self.writer.write(data)

    async def wait_count(self, count: int, timeout: float) -> None:
        """Wait until ``count`` messages arrived (or the deadline passes, or the peer closed)."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.received) < count and not self._task.done():  # noqa: ASYNC110 - polls a counter
                    await asyncio.sleep(0.005)
        except TimeoutError:
            return

    async def close(self) -> None:
        """Close and stop the reader."""
        self.writer.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


Hook = Callable[[int, "UuidMap"], Awaitable[None]]


class UuidMap:
    """Capture UUID -> replayed UUID."""

    def __init__(self) -> None:
        self.map: dict[bytes, bytes] = {}

    def add(self, captured: str, actual: str) -> None:
        """Remember a pair."""
        self.map.setdefault(captured.encode(), actual.encode())

    def apply(self, data: bytes) -> bytes:
        """Replace every known captured UUID."""
        return UUID_RE.sub(lambda m: self.map.get(m.group(0), m.group(0)), data)


async def replay(
    peer: EslPeer, segs: list[Segment], uuids: UuidMap, before: Hook | None = None, timeout: float = 6.0
) -> None:
    """Send each segment's command and wait for as many messages as the capture had (cumulatively)."""
    expected = 0
    for index, seg in enumerate(segs):
        if before is not None:
            await before(index, uuids)
        if seg.command is not None:
            peer.send(uuids.apply(seg.command))
        expected += len(seg.expected)
        await peer.wait_count(expected, timeout)


def decode(msg: Message) -> ParsedEvent | None:
    """The event inside a message, or None for replies."""
    if msg.content_type == "text/event-plain":
        return parse_plain_event(msg.body)
    if msg.content_type == "text/event-json":
        return parse_json_event(msg.body)
    return None


def channel_key(event: ParsedEvent) -> str | None:
    """The channel an event belongs to (its Unique-ID) or None."""
    return event.get("Unique-ID")


def group_events(messages: Iterable[Message]) -> dict[str, list[ParsedEvent]]:
    """Events grouped by '<Channel-Name>#<n>' (n = order of first appearance of that name's UUIDs)."""
    seen: dict[str, list[str]] = {}
    groups: dict[str, list[ParsedEvent]] = {}
    for msg in messages:
        event = decode(msg)
        if event is None:
            continue
        uuid, name = event.get("Unique-ID"), event.get("Channel-Name") or ""
        if uuid is None:
            key = "global"
        else:
            uuids = seen.setdefault(name, [])
            if uuid not in uuids:
                uuids.append(uuid)
            key = f"{name}#{uuids.index(uuid)}"
        groups.setdefault(key, []).append(event)
    return groups


def learn_uuids(captured: list[Message], actual: list[Message], uuids: UuidMap) -> None:
    """Map channel UUIDs by channel-name group and position (call before comparing replies)."""
    cap, act = group_events(captured), group_events(actual)
    for key, events in cap.items():
        for ce, ae in zip(events, act.get(key, []), strict=False):
            for header in ("Unique-ID", "Old-Unique-ID", "Other-Leg-Unique-ID", "Bridge-B-Unique-ID"):
                cv, av = ce.get(header), ae.get(header)
                if cv and av:
                    uuids.add(cv, av)
    for cjob, ajob in zip(_jobs(captured), _jobs(actual), strict=False):
        uuids.add(cjob, ajob)


def _jobs(messages: Iterable[Message]) -> list[str]:
    out = []
    for msg in messages:
        job = msg.header("Job-UUID")
        if job:
            out.append(job)
    return out


def replies(messages: Iterable[Message]) -> list[tuple[str, bytes]]:
    """Non-event messages as (Content-Type, body)."""
    return [(m.content_type, m.body) for m in messages if decode(m) is None]


def event_signature(event: ParsedEvent) -> tuple[str | None, str | None]:
    """(Event-Name, Event-Subclass)."""
    return event.get("Event-Name"), event.get("Event-Subclass")
