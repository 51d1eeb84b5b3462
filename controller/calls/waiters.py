"""Waiting for the call model to show that FreeSWITCH did what a command asked.

A call-control command is only done when FreeSWITCH confirms it, usually with an event (CHANNEL_ANSWER after
``uuid_answer``, CHANNEL_HOLD after ``uuid_hold``...). The waiter is registered *before* the command is sent,
so an event racing ahead of the command's reply is not missed. Waiters are fed the model's changes like
every other consumer.

Exceptions::

    ChannelGone   the leg was removed (CHANNEL_HANGUP_COMPLETE) before the awaited change came
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller.calls.changes import CallChange, ChannelChange, ChannelRemoved

__all__ = ["ChangeWaiters", "ChannelGone"]

Predicate = Callable[[ChannelChange], bool]


class ChannelGone(Exception):
    """The channel ended before the awaited change."""


@dataclass(eq=False, slots=True)
class _Waiter:
    uuids: tuple[str, ...]
    predicate: Predicate
    future: asyncio.Future[ChannelChange]


class ChangeWaiters:
    """Futures resolved by the first change of one of their legs that satisfies their predicate."""

    def __init__(self) -> None:
        self._by_uuid: dict[str, list[_Waiter]] = {}

    def expect(self, uuids: str | Iterable[str], predicate: Predicate) -> asyncio.Future[ChannelChange]:
        """A future for the first change of ``uuids`` matching ``predicate``; ``discard`` it when done."""
        legs = (uuids,) if isinstance(uuids, str) else tuple(uuids)
        waiter = _Waiter(legs, predicate, asyncio.get_running_loop().create_future())
        for uuid in legs:
            self._by_uuid.setdefault(uuid, []).append(waiter)
        waiter.future.add_done_callback(lambda _: self._remove(waiter))
        return waiter.future

    def _remove(self, waiter: _Waiter) -> None:
        for uuid in waiter.uuids:
            waiters = self._by_uuid.get(uuid)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._by_uuid[uuid]

    def apply(self, node: str, change: CallChange) -> None:
        """Resolve the waiters this change satisfies; fail those whose leg was removed."""
        if not self._by_uuid or not isinstance(change, ChannelChange):
            return
        waiters = self._by_uuid.get(change.uuid)
        if not waiters:
            return
        for waiter in list(waiters):
            if waiter.future.done():
                continue
            if waiter.predicate(change):
                waiter.future.set_result(change)
            elif isinstance(change, ChannelRemoved):
                waiter.future.set_exception(ChannelGone(f"channel {change.uuid} ended"))

    def __len__(self) -> int:
        return len({id(w) for waiters in self._by_uuid.values() for w in waiters})
