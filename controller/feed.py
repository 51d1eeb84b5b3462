"""The call event feed: every call-model change as one JSON object, to every subscriber.

Each subscriber has a bounded queue; a subscriber that falls ``capacity`` events behind is dropped (its
WebSocket is closed with 1013 "try again later") rather than slowing the controller down. Events look like::

    {"type":"channel_answered","node":"fs1","call_id":"…","uuid":"…","ts":1763683200.123}

Changes that carry a final ``Channel``/``Call`` (``channel_removed``, ``call_ended``) carry the hangup cause
and times instead of the object.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from controller.calls.changes import AudioStreamMessage, CallChange, CallEnded, ChannelRemoved
from controller.calls.channel import AudioStreamState

__all__ = ["EventFeed", "Subscription", "change_to_json"]

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")
_NAMES: dict[type, str] = {}


def _type_name(kind: type) -> str:
    name = _NAMES.get(kind)
    if name is None:
        name = _NAMES[kind] = _SNAKE.sub("_", kind.__name__).lower()
    return name


def change_to_json(node: str, change: CallChange, now: float) -> dict[str, Any]:
    """The feed object of one change."""
    out: dict[str, Any] = {"type": _type_name(type(change)), "node": node, "ts": round(now, 3)}
    for f in dataclasses.fields(change):
        value = getattr(change, f.name)
        if isinstance(value, AudioStreamState):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        elif f.name in ("channel", "call"):
            continue
        out[f.name] = value
    if isinstance(change, AudioStreamMessage) and change.kind == "json":
        out["message"] = change.message()  # e.g. a transcript turn or an agent action, decoded
    elif isinstance(change, ChannelRemoved):
        out["hangup_cause"] = change.channel.hangup_cause
    elif isinstance(change, CallEnded):
        out["hangup_cause"] = change.call.hangup_cause
        out["legs"] = list(change.call.legs)
    return out


class Subscription:
    """One subscriber's queue of encoded events; ``b""`` (and ``dropped``) once it fell too far behind."""

    def __init__(self, capacity: int) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(capacity)
        self.dropped = False


class EventFeed:
    """Fans the call-model changes out to subscribers; feed it the changes."""

    def __init__(self, capacity: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self._capacity = capacity
        self._clock = clock
        self._subscribers: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        """A new subscription (``unsubscribe`` it when done)."""
        sub = Subscription(self._capacity)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``."""
        self._subscribers.discard(sub)

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event that is not a call-model change (e.g. a route reload)."""
        if self._subscribers:
            self._deliver(orjson.dumps(event))

    def apply(self, node: str, change: CallChange) -> None:
        """Encode the change once and queue it for every subscriber."""
        if self._subscribers:
            self._deliver(orjson.dumps(change_to_json(node, change, self._clock())))

    def _deliver(self, data: bytes) -> None:
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(data)
            except asyncio.QueueFull:
                self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        """Too far behind: empty its queue and leave the end marker (``b""``) for its reader."""
        sub.dropped = True
        self._subscribers.discard(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(b"")

    @property
    def subscribers(self) -> int:
        """How many subscribers are connected."""
        return len(self._subscribers)
