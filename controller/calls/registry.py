"""Storage of the call model: channels by uuid, calls by id, and the primitives that keep them consistent.

Grouping rules (shared by live events and resyncs):

* a new channel joins the live call of the first known peer among: its loopback peer
  (``variable_other_loopback_leg_uuid``), its ``variable_originator``, its ``Other-Leg-Unique-ID``,
  (on resync) its bridged partner from ``show calls`` or its ``call_uuid``; otherwise it starts a call whose
  id is its uuid;
* a bridge merges the other leg's call into the bridging leg's call (CHANNEL_BRIDGE fires on one leg only,
  esl_dtmf_and_bridge.txt finding 3); a loopback pair recognised late merges into the older call;
* a call ends when every leg reached CHANNEL_HANGUP_COMPLETE (or was lost during a reconnect).

Ended channels and calls are remembered, bounded, so that duplicate or late events cannot resurrect them
(CHANNEL_DESTROY and PLAYBACK_STOP do arrive after CHANNEL_HANGUP_COMPLETE, esl_inbound_session.txt).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TypeVar

from controller.calls.changes import (
    CallChange,
    CallEnded,
    CallMerged,
    CallStarted,
    ChannelAdded,
    ChannelAnswered,
    ChannelBridged,
    ChannelHungUp,
    ChannelRemoved,
    ChannelUnbridged,
    ChannelUpdated,
)
from controller.calls.channel import Call, Channel, ChannelState

__all__ = ["CallRegistry"]

_V = TypeVar("_V")

_STATE_FIELD = ("state",)


def _earliest(a: int, b: int) -> int:
    """The smaller of two timestamps, 0 meaning unknown."""
    if not a:
        return b
    if not b:
        return a
    return min(a, b)


class CallRegistry:
    """Channels and calls, with the bounded memory of ended ones.

    Args:
        recent_capacity: How many ended calls to remember (uuids of ended legs: four times as many).
        clock: Wall clock in seconds, for the end time of channels lost during a reconnect.
    """

    def __init__(self, *, recent_capacity: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self._channels: dict[str, Channel] = {}
        self._calls: dict[str, Call] = {}
        self._gone: dict[str, str] = {}  # uuid of a completed leg -> its call id
        self._ended: dict[str, Call] = {}
        self._capacity = recent_capacity
        self._clock = clock
        self._channels_view = MappingProxyType(self._channels)
        self._calls_view = MappingProxyType(self._calls)

    @property
    def channels(self) -> Mapping[str, Channel]:
        """Live channels by uuid (a read-only view)."""
        return self._channels_view

    @property
    def calls(self) -> Mapping[str, Call]:
        """Live calls by id (a read-only view)."""
        return self._calls_view

    def channel(self, uuid: str) -> Channel | None:
        """The live channel ``uuid``, or None."""
        return self._channels.get(uuid)

    def call(self, call_id: str) -> Call | None:
        """The live call ``call_id``, or None."""
        return self._calls.get(call_id)

    def call_of(self, uuid: str) -> Call | None:
        """The live call the channel ``uuid`` belongs to, or None."""
        ch = self._channels.get(uuid)
        return None if ch is None else self._calls.get(ch.call_id)

    def ended_call(self, call_id: str) -> Call | None:
        """A recently ended call (bounded memory), or None."""
        return self._ended.get(call_id)

    def is_gone(self, uuid: str) -> bool:
        """True when the channel ``uuid`` completed recently: events for it are ignored."""
        return uuid in self._gone

    def now_us(self) -> int:
        """The injected clock, in microseconds."""
        return int(self._clock() * 1_000_000)

    # -- primitives used by the event handlers and the resync ----------------------------------------------

    def _live_call_id(self, peer: str) -> str | None:
        ch = self._channels.get(peer)
        if ch is not None:
            return ch.call_id
        call_id = self._gone.get(peer)
        return call_id if call_id is not None and call_id in self._calls else None

    def _add(self, ch: Channel, peers: Iterable[str | None], changes: list[CallChange]) -> None:
        """Register a new channel in the call of its first known peer, or in a new call."""
        call: Call | None = None
        for peer in peers:
            if peer and peer != ch.uuid:
                call_id = self._live_call_id(peer)
                if call_id is not None:
                    call = self._calls[call_id]
                    break
        if call is None:
            call = Call(id=ch.uuid, node=ch.node, created_us=ch.created_us)
            self._calls[call.id] = call
            changes.append(CallStarted(call.id))
        ch.call_id = call.id
        call.legs.append(ch.uuid)
        call.live_legs.add(ch.uuid)
        call.created_us = _earliest(call.created_us, ch.created_us)
        call.answered_us = _earliest(call.answered_us, ch.answered_us)
        self._channels[ch.uuid] = ch
        changes.append(ChannelAdded(call.id, ch.uuid))

    def _advance(
        self, ch: Channel, state: ChannelState, changes: list[CallChange], ts: int, *, cause: str = "",
        answered_us: int = 0,
    ) -> None:  # fmt: skip
        """Move a channel forward to ``state`` (never back) and report it."""
        if state <= ch.state:
            return
        ch.state = state
        if state is ChannelState.HANGUP:
            self._hung_up(ch, ts, cause, changes)
        elif state is ChannelState.ANSWERED:
            ch.answered_us = answered_us or ts
            call = self._calls[ch.call_id]
            call.answered_us = _earliest(call.answered_us, ch.answered_us)
            changes.append(ChannelAnswered(ch.call_id, ch.uuid))
        else:
            changes.append(ChannelUpdated(ch.call_id, ch.uuid, _STATE_FIELD))

    def _hung_up(self, ch: Channel, ts: int, cause: str, changes: list[CallChange]) -> None:
        ch.hangup_us = ts
        self._set_cause(ch, cause)
        changes.append(ChannelHungUp(ch.call_id, ch.uuid, ch.hangup_cause))

    def _set_cause(self, ch: Channel, cause: str) -> None:
        """Record a hangup cause once; the call takes its first leg's (or the first seen until then)."""
        if not cause or ch.hangup_cause:
            return
        ch.hangup_cause = cause
        call = self._calls[ch.call_id]
        if not call.hangup_cause or call.legs[0] == ch.uuid:
            call.hangup_cause = cause

    def _complete(self, ch: Channel, changes: list[CallChange], ts: int, cause: str) -> None:
        """The channel is done: report the hangup if not yet, remove it, end its call after the last leg."""
        self._advance(ch, ChannelState.HANGUP, changes, ts, cause=cause)
        self._set_cause(ch, cause)
        if ts:
            ch.hangup_us = ts
        if ch.bridged_to:
            self._unbridge(ch, ch.bridged_to, changes)
        del self._channels[ch.uuid]
        self._remember(self._gone, ch.uuid, ch.call_id, 4 * self._capacity)
        changes.append(ChannelRemoved(ch.call_id, ch.uuid, ch))
        call = self._calls[ch.call_id]
        call.live_legs.discard(ch.uuid)
        if not call.live_legs:
            call.ended = True
            call.ended_us = ts or ch.hangup_us
            del self._calls[call.id]
            self._remember(self._ended, call.id, call, self._capacity)
            changes.append(CallEnded(call.id, call))

    @staticmethod
    def _remember(memory: dict[str, _V], key: str, value: _V, capacity: int) -> None:
        memory[key] = value
        while len(memory) > capacity:
            del memory[next(iter(memory))]

    def _merge(self, keep: Call, gone: Call, changes: list[CallChange]) -> None:
        """Move every leg of ``gone`` into ``keep``; ``gone`` disappears."""
        for uuid in gone.legs:
            keep.legs.append(uuid)
            ch = self._channels.get(uuid)
            if ch is not None:
                ch.call_id = keep.id
            elif uuid in self._gone:
                self._gone[uuid] = keep.id
        keep.live_legs |= gone.live_legs
        keep.bridges.extend(gone.bridges)
        keep.created_us = _earliest(keep.created_us, gone.created_us)
        keep.answered_us = _earliest(keep.answered_us, gone.answered_us)
        keep.hangup_cause = keep.hangup_cause or gone.hangup_cause
        del self._calls[gone.id]
        changes.append(CallMerged(keep.id, gone.id))

    def _join(self, a: Channel, b: Channel, changes: list[CallChange]) -> None:
        """Put ``b``'s call into ``a``'s (no-op when they already share one)."""
        if a.call_id != b.call_id:
            self._merge(self._calls[a.call_id], self._calls[b.call_id], changes)

    def _bridge(self, a: Channel, other: str, changes: list[CallChange]) -> None:
        """``a`` is bridged with ``other``: link both legs, merge their calls, report it once."""
        if a.bridged_to == other:
            return
        if a.bridged_to:
            self._unbridge(a, a.bridged_to, changes)
        a.bridged_to = other
        b = self._channels.get(other)
        if b is not None:
            if b.bridged_to and b.bridged_to != a.uuid:
                self._unbridge(b, b.bridged_to, changes)
            b.bridged_to = a.uuid
            self._join(a, b, changes)
        self._calls[a.call_id].bridges.append((a.uuid, other))
        changes.append(ChannelBridged(a.call_id, a.uuid, other))

    def _unbridge(self, a: Channel, other: str, changes: list[CallChange]) -> None:
        """The bridge ``a`` - ``other`` is gone: unlink both legs and report it (no-op if not bridged)."""
        other = other or a.bridged_to
        changed = a.bridged_to == other and bool(other)
        if changed:
            a.bridged_to = ""
        b = self._channels.get(other)
        if b is not None and b.bridged_to == a.uuid:
            b.bridged_to = ""
            changed = True
        call = self._calls.get(a.call_id)
        if call is not None:
            call.bridges[:] = [p for p in call.bridges if p not in ((a.uuid, other), (other, a.uuid))]
        if changed:
            changes.append(ChannelUnbridged(a.call_id, a.uuid, other))
