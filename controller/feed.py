"""The call event feed: every call-model change as one JSON object, to every subscriber.

Each subscriber has a bounded queue; a subscriber that falls ``capacity`` events behind is dropped (its
WebSocket is closed with 1013 "try again later") rather than slowing the controller down. Events look like::

    {"type":"channel_answered","node":"fs1","call_id":"…","uuid":"…","ts":1763683200.123}

Changes that carry a final ``Channel``/``Call`` (``channel_removed``, ``call_ended``) carry the hangup cause
and times instead of the object.

A subscription may be scoped (``subscribe(accept)``): a browser's feed token sees only the calls it placed
(``CallerScope``: calls with a leg whose SIP digest user is the browser's), and none of the events that are
not about a call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from controller.calls.changes import (
    CallChange,
    CallEnded,
    CallMerged,
    ChannelChange,
    ChannelRemoved,
)
from controller.calls.channel import AudioStreamState, Channel
from controller.calls.registry import CallRegistry
from switchyard.messages import to_json

__all__ = ["Accept", "CallerScope", "EventFeed", "Subscription", "change_to_json"]

Accept = Callable[[str, CallChange], bool]
"""Whether a scoped subscriber gets the change (node, change); called after the model applied it."""

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
        elif f.name == "message":  # a transcript turn or an agent action, decoded (None: not one we know)
            value = None if value is None else to_json(value)
        out[f.name] = value
    if isinstance(change, ChannelRemoved):
        out["hangup_cause"] = change.channel.hangup_cause
    elif isinstance(change, CallEnded):
        out["hangup_cause"] = change.call.hangup_cause
        out["legs"] = list(change.call.legs)
    return out


class Subscription:
    """One subscriber's queue of encoded events; ``b""`` (and ``dropped``) once it fell too far behind."""

    def __init__(self, capacity: int, accept: Accept | None = None) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(capacity)
        self.dropped = False
        self.accept = accept


class CallerScope:
    """Accepts the changes of the calls that have a leg whose SIP digest user (``sip_auth_username``, set by
    mod_sofia when the INVITE's credentials were checked) is ``user``.

    Calls already live when the scope is made are found in the model; later ones at their first change
    (``ChannelAdded`` comes right after the leg appears, whose variables are read from CHANNEL_CREATE). A
    merge carries the scope over to the surviving call; an ended call is forgotten after its last change.
    """

    def __init__(self, model: CallRegistry, user: str) -> None:
        self._model = model
        self.user = user
        self.calls = {ch.call_id for ch in model.channels.values() if self._mine(ch)}

    def _mine(self, ch: Channel | None) -> bool:
        return ch is not None and ch.variables.get("sip_auth_username") == self.user

    def _claims(self, change: CallChange) -> bool:
        if isinstance(change, CallMerged):
            return change.merged_id in self.calls
        if isinstance(change, ChannelChange):
            return self._mine(self._model.channel(change.uuid))
        call = self._model.call(change.call_id)  # CallStarted: its first leg is in the model already
        return call is not None and any(self._mine(self._model.channel(uuid)) for uuid in call.legs)

    def __call__(self, node: str, change: CallChange) -> bool:
        call_id = change.call_id
        if call_id not in self.calls:
            if not self._claims(change):
                return False
            self.calls.add(call_id)
        if isinstance(change, CallMerged):
            self.calls.discard(change.merged_id)
        elif isinstance(change, CallEnded):
            self.calls.discard(call_id)
        return True


class EventFeed:
    """Fans the call-model changes out to subscribers; feed it the changes."""

    def __init__(
        self, capacity: int = 1000, clock: Callable[[], float] = time.time, max_subscribers: int = 100
    ) -> None:
        self._capacity = capacity
        self.max_subscribers = max_subscribers  # the API refuses more (503) before the upgrade
        self._clock = clock
        self._subscribers: set[Subscription] = set()

    def subscribe(self, accept: Accept | None = None) -> Subscription:
        """A new subscription (``unsubscribe`` it when done); ``accept`` scopes it to some calls' changes."""
        sub = Subscription(self._capacity, accept)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``."""
        self._subscribers.discard(sub)

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event that is not a call-model change (e.g. a route reload) to unscoped subscribers."""
        targets = [sub for sub in self._subscribers if sub.accept is None]
        if targets:
            self._deliver(orjson.dumps(event), targets)

    def apply(self, node: str, change: CallChange) -> None:
        """Encode the change once and queue it for every subscriber that accepts it."""
        if not self._subscribers:
            return
        targets = [sub for sub in self._subscribers if sub.accept is None or sub.accept(node, change)]
        if targets:
            self._deliver(orjson.dumps(change_to_json(node, change, self._clock())), targets)

    def _deliver(self, data: bytes, targets: list[Subscription]) -> None:
        for sub in targets:
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
    def full(self) -> bool:
        """``max_subscribers`` are connected: refuse the next one."""
        return len(self._subscribers) >= self.max_subscribers

    @property
    def subscribers(self) -> int:
        """How many subscribers are connected."""
        return len(self._subscribers)
