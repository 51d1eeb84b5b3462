"""The calls the controller originated and what became of each, known by the uuid the controller chose.

An originate is ``bgapi originate {origination_uuid=<uuid>,...}`` whose Job-UUID is that same uuid
(``controller.calls.originate``). Its outcome normally comes as the BACKGROUND_JOB: ``+OK <uuid>`` once the
far end answered, ``-ERR <CAUSE>`` otherwise (mod_commands.c originate_function). That answer can be lost:
the ESL connection is dropped when *any* command misses its deadline (a late reply would poison the reply
FIFO: ``controller.freeswitch.connection``), and the job's result can outlive its own deadline. FreeSWITCH
goes on placing the call either way, so failing the originate then would invite a client to place it twice.
Instead its outcome is read from whatever FreeSWITCH says next about the uuid::

    BACKGROUND_JOB, Job-UUID = uuid     FreeSWITCH sends it to every connection subscribed to
                                        BACKGROUND_JOB, so a late one reaches the reconnected node
    the leg's changes in the call model answered (CHANNEL_ANSWER, or answered in the resync after the
                                        reconnect) -> answered; removed unanswered -> failed, its cause
    ``uuid_exists <uuid>``              asked when both stay silent for ``probe_s``: ``false`` while the
                                        model has no such leg -> failed (never placed, or over unseen)

Records are bounded: at most ``capacity`` (the oldest goes first), each kept ``retain_s`` after it began.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from controller.calls.changes import CallChange, ChannelChange, ChannelRemoved
from controller.calls.channel import Channel
from controller.calls.sender import CallError, CommandSender
from controller.freeswitch import commands as fc
from controller.freeswitch.events import BackgroundJob, ChannelsResync, Event
from switchyard.tasks import cancel_all

__all__ = ["NOT_FOUND", "OriginateStatus", "Origination", "Originations"]

log = logging.getLogger(__name__)

NOT_FOUND: Final = "LOST_WITH_ESL_CONNECTION"
"""The cause of an originate FreeSWITCH has no channel for after its answer was lost."""

PROBES: Final = 3
"""``uuid_exists`` attempts while the node stays unreachable."""


class OriginateStatus(StrEnum):
    """Where an originate stands."""

    PENDING = "pending"
    ANSWERED = "answered"
    FAILED = "failed"


@dataclass(eq=False, slots=True)
class Origination:
    """One originate: its leg's uuid (= the call id), node, status and, once failed, FreeSWITCH's cause."""

    uuid: str
    node: str
    started: float
    status: OriginateStatus = OriginateStatus.PENDING
    cause: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)


def job_outcome(text: str) -> tuple[OriginateStatus, str]:
    """The outcome an originate's BACKGROUND_JOB body (or bgapi result) states: ``+OK <uuid>`` or
    ``-ERR <CAUSE>``; anything else is a failure with that text as the cause."""
    text = text.strip()
    if text.startswith("+OK"):
        return OriginateStatus.ANSWERED, ""
    return OriginateStatus.FAILED, text.removeprefix("-ERR").strip() or text or "NO_RESULT"


class Originations:
    """The originates of this controller (see the module docstring); fed the call model's changes and the
    nodes' events like the other consumers."""

    def __init__(
        self,
        sender: CommandSender,
        channel: Callable[[str], Channel | None],
        probe_s: float = 5.0,
        *,
        capacity: int = 10_000,
        retain_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sender = sender
        self._channel = channel
        self.probe_s = probe_s
        self._capacity = capacity
        self._retain_s = retain_s
        self._clock = clock
        self._records: OrderedDict[str, Origination] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def track(self, uuid: str, node: str) -> Origination:
        """Start following the originate of leg ``uuid`` (before its command is sent)."""
        self._expire()
        while len(self._records) >= self._capacity:
            self._records.popitem(last=False)
        record = Origination(uuid, node, self._clock())
        self._records[uuid] = record
        return record

    def get(self, uuid: str) -> Origination | None:
        """The originate of leg ``uuid``, while remembered."""
        self._expire()
        return self._records.get(uuid)

    def __len__(self) -> int:
        return len(self._records)

    def _expire(self) -> None:
        horizon = self._clock() - self._retain_s
        while self._records:
            record = next(iter(self._records.values()))
            if record.started > horizon:
                return
            self._records.popitem(last=False)

    def finish(self, record: Origination, status: OriginateStatus, cause: str = "") -> None:
        """Record the outcome; the first one stands."""
        if record.done.is_set() or status is OriginateStatus.PENDING:
            return
        record.status, record.cause = status, cause
        record.done.set()

    # ---- what FreeSWITCH says ----------------------------------------------------------------------------

    def on_event(self, node: str, event: Event | ChannelsResync) -> None:
        """A BACKGROUND_JOB whose Job-UUID names a pending originate settles it (however late)."""
        if type(event) is not BackgroundJob:
            return
        record = self._records.get(event.job_uuid)
        if record is not None:
            self.finish(record, *job_outcome(event.body or ""))

    def apply(self, node: str, change: CallChange) -> None:
        """The leg answered (answered at all, e.g. in a resync row) or was removed unanswered."""
        if not isinstance(change, ChannelChange):
            return
        record = self._records.get(change.uuid)
        if record is None or record.done.is_set():
            return
        if isinstance(change, ChannelRemoved):
            final = change.channel
            answered = final.answered
            self.finish(record, OriginateStatus.ANSWERED if answered else OriginateStatus.FAILED,
                        "" if answered else final.hangup_cause or "NORMAL_CLEARING")  # fmt: skip
            return
        ch = self._channel(change.uuid)
        if ch is not None and ch.answered:
            self.finish(record, OriginateStatus.ANSWERED)

    # ---- settling an originate whose answer was lost -------------------------------------------------------

    async def wait(self, record: Origination, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the outcome (returns either way)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.0)):
                await record.done.wait()

    def settle(self, record: Origination) -> None:
        """The originate's own answer was lost or is late: settle it from the events, else by asking."""
        if record.done.is_set() or self._closed:
            return  # closed: at shutdown, nothing is left to settle it for
        task = asyncio.create_task(self._settle(record), name=f"settle originate {record.uuid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, record: Origination) -> None:
        for _ in range(PROBES):
            await self.wait(record, self.probe_s)
            if record.done.is_set() or self._channel(record.uuid) is not None:
                return  # settled, or the model has the leg: its events settle it
            try:
                exists = await self._sender.run(record.node, fc.exists(record.uuid), self.probe_s)
            except CallError as exc:
                log.warning("originate %s: uuid_exists: %s", record.uuid, exc.reason)
                continue
            if exists.strip() != "false":
                return  # FreeSWITCH has it: its events (or the resync) are on their way
            if self._channel(record.uuid) is None:
                log.warning("originate %s: FreeSWITCH has no such channel", record.uuid)
                self.finish(record, OriginateStatus.FAILED, NOT_FOUND)
            return

    async def aclose(self, timeout: float = 2.0) -> None:
        """Stop settling (the records stay as they are)."""
        self._closed = True
        await cancel_all(list(self._tasks), timeout)
