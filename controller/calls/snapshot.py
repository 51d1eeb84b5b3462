"""Completing a node's resync with what each channel says of itself, before the call model sees it.

``show channels`` comes from FreeSWITCH's core database: times to the second, no channel variables, and late
by up to ~0.3 s (tests/fixtures/live/show_json.txt: a new channel is listed 0.06-0.18 s after it exists, a
killed one until 0.1-0.3 s after it is gone). So after each (re)connect, before the snapshot is applied,
every listed channel, and every leg of the node's open CDR rows that the table lacks, is read from the session
itself (mod_commands, which locates the session, not the database):

* ``uuid_dump <uuid> json`` - the caller-profile times in microseconds (``Caller-Channel-Created-Time``,
  ``-Answered-Time``), ``Answer-State``, and the variables the controller set at routing time
  (:data:`ROUTE_VARIABLE`, :data:`ROUTE_ARG_VARIABLE`, :data:`WORKER_VARIABLE`). ``-ERR No such channel``:
  the channel is gone, its row (a ghost of the lagging table) is dropped;
* ``uuid_buglist <uuid>`` for a channel whose variables name a worker: whether mod_audio_stream's media bug
  (function ``audio_stream``, as MEDIA_BUG_STOP names it) is still attached.

A leg the table lacks but the session has (created within the table's lag) gets a row built from its dump.
``late`` is a second look a moment later (``controller.app``): rows the first could not list yet.
If the node goes away meanwhile, the snapshot is dropped: the next connect brings another one. The dumps run
a few at a time on the node's one connection (ESL replies are FIFO).

Why variables: they live on the channel, so they survive a controller restart with the call and need no
shared store; a restarted controller learns from them that a leg is routed and to what (``ChannelAdopted``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson

from controller.calls.sender import CallError, CommandSender
from controller.freeswitch import commands as fc
from controller.freeswitch.events import ChannelsResync
from controller.freeswitch.protocol import ProtocolError

__all__ = [
    "ROUTE_ARG_VARIABLE",
    "ROUTE_VARIABLE",
    "WORKER_VARIABLE",
    "SnapshotReader",
    "row_from_dump",
]

log = logging.getLogger("switchyard.resync")

ROUTE_VARIABLE: Final = "switchyard_route"
"""Set by the router when it acts on a leg: the route action's kind (``agent``, ``user``, ``echo``...)."""
ROUTE_ARG_VARIABLE: Final = "switchyard_route_arg"
"""Set with :data:`ROUTE_VARIABLE`: the action's argument (the agent's name for ``agent``)."""
WORKER_VARIABLE: Final = "switchyard_worker"
"""Set once a worker took the leg's stream (``::connect``): the worker's id."""

_CONCURRENCY: Final = 16
_BUG_FUNCTION: Final = "<function>audio_stream</function>"

Dump = Mapping[str, Any]


def _text(dump: Dump, name: str) -> str:
    value = dump.get(name)
    return value if isinstance(value, str) else ""


def row_from_dump(dump: Dump) -> dict[str, str]:
    """A ``show channels`` row for a channel the table does not list yet, from its ``uuid_dump``."""
    created = _text(dump, "Caller-Channel-Created-Time")
    columns = {
        "uuid": "Unique-ID", "direction": "Call-Direction", "name": "Channel-Name",
        "cid_name": "Caller-Caller-ID-Name", "cid_num": "Caller-Caller-ID-Number",
        "dest": "Caller-Destination-Number", "context": "Caller-Context", "callstate": "Channel-Call-State",
        "application": "variable_current_application",
        "application_data": "variable_current_application_data", "read_codec": "Channel-Read-Codec-Name",
        "read_rate": "Channel-Read-Codec-Rate", "call_uuid": "Channel-Call-UUID",
    }  # fmt: skip
    row = {column: _text(dump, header) for column, header in columns.items()}
    row["created_epoch"] = str(int(created) // 1_000_000) if created.isdigit() else ""
    return row


def _completed(
    snapshot: ChannelsResync, dumps: Mapping[str, Dump | None], extra: list[str], streaming: frozenset[str]
) -> ChannelsResync:
    """Ghost rows (dump: no such channel) dropped, the unlisted live legs added, the dumps attached."""
    alive = {uuid: dump for uuid, dump in dumps.items() if dump is not None}

    def kept(row: Mapping[str, str]) -> bool:
        uuid = row.get("uuid", "")
        return uuid in alive or uuid not in dumps

    found = [uuid for uuid in extra if uuid in alive]
    if found:
        log.info("node %s: leg(s) up but not listed by show channels yet: %s", snapshot.node, found)
    rows = [*(row for row in snapshot.channels if kept(row)), *(row_from_dump(alive[u]) for u in found)]
    return dataclasses.replace(
        snapshot,
        channels=tuple(rows),
        calls=tuple(row for row in snapshot.calls if kept(row)),
        details={uuid: dump for uuid, dump in alive.items() if dump},
        streaming=streaming,
    )


class SnapshotReader:
    """Reads each channel of a resync from its session (see the module docstring).

    Args:
        sender: the path to the nodes.
        timeout: deadline of each command, in seconds.
    """

    def __init__(self, sender: CommandSender, timeout: float = 5.0) -> None:
        self._sender = sender
        self._timeout = timeout

    async def complete(self, snapshot: ChannelsResync, expected: Iterable[str] = ()) -> ChannelsResync | None:
        """The snapshot with ``details`` and ``streaming``, its ghosts dropped and the ``expected`` legs
        the table lacks added; None when the node went away meanwhile.

        Args:
            snapshot: the node's ``show channels`` / ``show calls``.
            expected: uuids that should be up (the legs of the node's open CDR rows).
        """
        listed = [row["uuid"] for row in snapshot.channels if row.get("uuid")]
        extra = [uuid for uuid in dict.fromkeys(expected) if uuid and uuid not in set(listed)]
        try:
            dumps = await self._each(snapshot.node, [*listed, *extra], self._dump)
            named = [
                uuid for uuid, dump in dumps.items() if dump and _text(dump, f"variable_{WORKER_VARIABLE}")
            ]
            bugs = await self._each(snapshot.node, named, self._has_stream)
        except CallError as exc:
            log.warning("node %s: resync dropped, the channels could not be read: %s", snapshot.node, exc)
            return None
        return _completed(snapshot, dumps, extra, frozenset(u for u, on in bugs.items() if on))

    async def late(self, node: str, known: Iterable[str]) -> ChannelsResync | None:
        """A second look at ``node``'s channels: the rows of those not ``known``, completed; None when there
        are none or the node cannot be asked."""
        # Here, not at the top: controller.freeswitch.node imports the settings, which import the call layer.
        from controller.freeswitch.node import parse_show_json  # noqa: PLC0415

        try:
            channels = parse_show_json(await self._sender.run(node, fc.SHOW_CHANNELS, self._timeout))
            calls = parse_show_json(await self._sender.run(node, fc.SHOW_CALLS, self._timeout))
        except (CallError, ProtocolError) as exc:
            log.warning("node %s: no second look at the channels: %s", node, exc)
            return None
        held = set(known)
        rows = tuple(row for row in channels if row.get("uuid") and row["uuid"] not in held)
        if not rows:
            return None
        return await self.complete(ChannelsResync(node, rows, calls, late=True))

    async def _each(self, node: str, uuids: list[str], read: Any) -> dict[str, Any]:
        """``read(node, uuid)`` for every uuid, a few at a time; the first CallError ends them all."""
        gate = asyncio.Semaphore(_CONCURRENCY)
        results: dict[str, Any] = {}

        async def one(uuid: str) -> None:
            async with gate:
                results[uuid] = await read(node, uuid)

        try:
            async with asyncio.TaskGroup() as tg:
                for uuid in uuids:
                    tg.create_task(one(uuid))
        except* CallError as group:
            raise group.exceptions[0] from None
        return results

    async def _dump(self, node: str, uuid: str) -> Dump | None:
        """The channel's dump; None when FreeSWITCH has no such channel; {} when the dump is unreadable."""
        text = await self._sender.run(node, fc.dump(uuid), self._timeout, check=False)
        if text.startswith("-ERR"):
            return None
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            log.warning("%s: uuid_dump is not a JSON object: %r", uuid, text[:80])
            return {}
        return data

    async def _has_stream(self, node: str, uuid: str) -> bool:
        text = await self._sender.run(node, fc.buglist(uuid), self._timeout, check=False)
        return _BUG_FUNCTION in text
