"""A raw ESL test session on top of EslPeer: api/bgapi replies and the json events it received, by channel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.fsemu.fixtures import Message, ParsedEvent, parse_json_event
from tests.fsemu.replay import EslPeer

# Headers that make an event's label more telling (see EslSession.names).
_DETAIL = {
    "CHANNEL_STATE": ("STATE", "Channel-State"),
    "CHANNEL_CALLSTATE": ("CALLSTATE", "Channel-Call-State"),
    "CHANNEL_EXECUTE": ("CHANNEL_EXECUTE", "Application"),
    "CHANNEL_EXECUTE_COMPLETE": ("CHANNEL_EXECUTE_COMPLETE", "Application"),
}


def label(event: ParsedEvent) -> str:
    """``CHANNEL_PARK``, ``STATE CS_ROUTING``, ``CALLSTATE HELD``, ``CHANNEL_EXECUTE park``; a CUSTOM event
    is named by its Action header (conference::maintenance) or its subclass."""
    name = event.get("Event-Name") or ""
    if name == "CUSTOM":
        return event.get("Action") or event.get("Event-Subclass") or name
    if name in _DETAIL:
        prefix, header = _DETAIL[name]
        return f"{prefix} {event.get(header)}"
    return name


class EslSession:
    """One authenticated inbound ESL connection subscribed with ``event json ...``."""

    def __init__(self, peer: EslPeer) -> None:
        self.peer = peer

    @classmethod
    async def open(cls, port: int, password: str, subscribe: str) -> EslSession:
        """Connect to 127.0.0.1:``port``, authenticate and send the ``subscribe`` command."""
        peer = await EslPeer.connect("127.0.0.1", port)
        peer.send(f"auth {password}\n\n{subscribe}\n\n".encode())
        await peer.wait_count(3, 3)
        return cls(peer)

    async def close(self) -> None:
        """Close the connection."""
        await self.peer.close()

    async def api(self, command: str) -> str:
        """Send ``api <command>`` and return the api/response body."""
        return await self._reply(f"api {command}", "api/response", lambda m: m.body.decode())

    async def bgapi(self, command: str) -> str:
        """Send ``bgapi <command>`` and return the Job-UUID."""
        return await self._reply(f"bgapi {command}", "command/reply", lambda m: m.header("Job-UUID") or "")

    async def _reply(self, line: str, kind: str, take: Callable[[Message], str]) -> str:
        start = len(self.peer.received)
        self.peer.send(f"{line}\n\n".encode())
        async with asyncio.timeout(10):
            while True:
                for msg in self.peer.received[start:]:
                    if msg.content_type == kind:
                        return take(msg)
                await asyncio.sleep(0.005)

    def events(self, uuid: str | None = None, start: int = 0) -> list[ParsedEvent]:
        """The json events received from the ``start``-th on (of every channel), optionally of one channel."""
        events = [parse_json_event(m.body) for m in self.peer.received if m.content_type == "text/event-json"]
        return [e for e in events[start:] if uuid is None or e.get("Unique-ID") == uuid]

    def names(self, uuid: str | None = None, start: int = 0) -> list[str]:
        """The labels (see ``label``) of ``events(uuid, start)``."""
        return [label(e) for e in self.events(uuid, start)]

    def last(self, name: str, uuid: str | None = None) -> ParsedEvent:
        """The last event labelled ``name``."""
        return next(e for e in reversed(self.events(uuid)) if label(e) == name)

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait for ``predicate`` to hold (TimeoutError after ``timeout`` seconds)."""
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110 - polls the list of received messages
                await asyncio.sleep(0.01)
