"""FreeSWITCH's core database as ``show channels`` / ``show calls`` read it: rows built from events, late.

switch_core_sqldb.c ``core_event_handler`` turns channel events into SQL that one SQL thread runs in
transactions; ``show channels`` selects from the ``channels`` table, ``show calls`` from the
``basic_calls`` view (a channel with, when it bridged as the caller, its callee as ``b_*``). So a row
shows what the EVENTS said (``application`` is the last CHANNEL_EXECUTE's, ``call_uuid`` is set by
CHANNEL_ORIGINATE and CHANNEL_BRIDGE only: a loopback B-leg has none), and it shows it late
(tests/fixtures/live/show_json.txt): FreeSWITCH 1.10.12 lists a new channel 0.06-0.18 s after
``originate`` returned and a killed one until 0.1-0.3 s after ``uuid_kill``, the rows of one moment
together (both legs, their states and applications). Here statements go in batches: the first statement
queued opens a batch that runs ``lag`` seconds later with everything queued until then (0: at once).

Per event (the ``exists`` guard of the source: only while the channel lives): CHANNEL_CREATE inserts
(uuid, direction, created, created_epoch, name, state, callstate, dialplan, context, hostname, and in 1.10
the ``initial_*`` caller-profile columns); CHANNEL_STATE sets ``state`` (nothing for CS_NEW/INIT/HANGUP/
REPORTING/DESTROY; CS_ROUTING also the caller ID, callee, destination, dialplan, context); CHANNEL_CALLSTATE
``callstate`` (not DOWN/HANGUP); CHANNEL_ANSWER/PROGRESS_MEDIA/CODEC the codecs; CHANNEL_EXECUTE/HOLD/UNHOLD
``application``/``application_data``; CHANNEL_ORIGINATE ``call_uuid``; CALL_UPDATE callee, caller ID and
``callee_direction``; CHANNEL_BRIDGE ``call_uuid`` of both legs and a ``calls`` row; CHANNEL_UNBRIDGE and
CHANNEL_DESTROY undo them; CHANNEL_UUID renames.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fsemu.wire import Event

CHANNEL_COLUMNS = (
    "uuid", "direction", "created", "created_epoch", "name", "state", "cid_name", "cid_num", "ip_addr",
    "dest", "application", "application_data", "dialplan", "context", "read_codec", "read_rate",
    "read_bit_rate", "write_codec", "write_rate", "write_bit_rate", "secure", "hostname", "presence_id",
    "presence_data", "accountcode", "callstate", "callee_name", "callee_num", "callee_direction", "call_uuid",
    "sent_callee_name", "sent_callee_num", "initial_cid_name", "initial_cid_num", "initial_ip_addr",
    "initial_dest", "initial_dialplan", "initial_context",
)  # fmt: skip
# The basic_calls view: these columns of the channel, b_* of its callee, then call_created_epoch.
CALL_COLUMNS = (
    "uuid", "direction", "created", "created_epoch", "name", "state", "cid_name", "cid_num", "ip_addr",
    "dest", "presence_id", "presence_data", "accountcode", "callstate", "callee_name", "callee_num",
    "callee_direction", "call_uuid", "hostname", "sent_callee_name", "sent_callee_num",
)  # fmt: skip
CALLEE_COLUMNS = tuple(c for c in CALL_COLUMNS if c not in ("call_uuid", "hostname"))
_GUARDED = frozenset(
    {
        "CHANNEL_UUID", "CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_HOLD",
        "CHANNEL_UNHOLD", "CHANNEL_EXECUTE", "CHANNEL_ORIGINATE", "CALL_UPDATE", "CHANNEL_CALLSTATE",
        "CHANNEL_STATE", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE",
    }
)  # fmt: skip
_ROUTING_COLUMNS = (
    ("cid_name", "Caller-Caller-ID-Name"), ("cid_num", "Caller-Caller-ID-Number"),
    ("callee_name", "Caller-Callee-ID-Name"), ("callee_num", "Caller-Callee-ID-Number"),
    ("sent_callee_name", "Sent-Callee-ID-Name"), ("sent_callee_num", "Sent-Callee-ID-Number"),
    ("ip_addr", "Caller-Network-Addr"), ("dest", "Caller-Destination-Number"),
    ("dialplan", "Caller-Dialplan"), ("context", "Caller-Context"), ("presence_id", "Channel-Presence-ID"),
    ("presence_data", "Channel-Presence-Data"),
)  # fmt: skip
_CODEC_COLUMNS = tuple(
    (f"{side}_{part}", f"Channel-{side.title()}-Codec-{label}")
    for side in ("read", "write")
    for part, label in (("codec", "Name"), ("rate", "Rate"), ("bit_rate", "Bit-Rate"))
)
_NO_STATE_UPDATE = frozenset({"0", "1", "10", "11", "12"})  # CS_NEW, INIT, HANGUP, REPORTING, DESTROY
Statement = Callable[["CoreTables"], None]


@dataclass
class Call:
    """A ``calls`` row (a bridge)."""

    call_uuid: str
    created_epoch: str
    caller: str
    callee: str


@dataclass
class CoreTables:
    """The ``channels`` rows (in insertion order) and ``calls`` rows."""

    channels: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def update(self, uuid: str, values: dict[str, str]) -> None:
        """``update channels set ... where uuid=...`` (no row: nothing)."""
        row = self.channels.get(uuid)
        if row is not None:
            row.update(values)


class CoreDb:
    """An event sink keeping the core database; ``channel_rows()`` / ``call_rows()`` read it."""

    def __init__(self, is_live: Callable[[str], bool], switchname: str, lag: float = 0.0) -> None:
        self.is_live = is_live
        self.switchname = switchname
        self.lag = lag
        self.tables = CoreTables()
        self._queue: deque[tuple[float, Statement]] = deque()
        self._batch = 0.0  # when the open batch runs

    # -- writing (the event handler) -----------------------------------------------------------
    def deliver(self, event: Event) -> None:
        """core_event_handler: queue the statements an event implies."""
        name = event.name
        handler = _HANDLERS.get(name)
        if handler is None:
            return
        uuid = event.get("Unique-ID") or ""
        if name in _GUARDED and not self.is_live(uuid):
            return
        statement = handler(self, event, uuid)
        if statement is not None:
            now = time.monotonic()
            if self._batch <= now:
                self._batch = now + self.lag
            self._queue.append((self._batch, statement))

    def _run_due(self) -> None:
        now = time.monotonic()
        while self._queue and self._queue[0][0] <= now:
            self._queue.popleft()[1](self.tables)

    # -- reading -------------------------------------------------------------------------------
    def channel_rows(self) -> list[dict[str, str]]:
        """``select * from channels`` ordered by creation (NULL as "")."""
        self._run_due()
        return [{c: row.get(c, "") for c in CHANNEL_COLUMNS} for row in self.tables.channels.values()]

    def call_rows(self) -> list[dict[str, str]]:
        """``select * from basic_calls``: unbridged channels first, then bridges by their creation."""
        self._run_due()
        tables = self.tables
        callees = {call.callee for call in tables.calls}
        out: list[tuple[str, dict[str, str]]] = []
        for uuid, row in tables.channels.items():
            call = next((c for c in tables.calls if c.caller == uuid), None)
            if call is None and uuid in callees:
                continue
            view = {c: row.get(c, "") for c in CALL_COLUMNS}
            peer = tables.channels.get(call.callee, {}) if call is not None else {}
            view.update({f"b_{c}": peer.get(c, "") for c in CALLEE_COLUMNS})
            view["call_created_epoch"] = call.created_epoch if call is not None else ""
            out.append((view["call_created_epoch"], view))
        return [view for _, view in sorted(out, key=lambda item: item[0])]


def _get(event: Event, name: str) -> str:
    return event.get(name) or ""


def _create(db: CoreDb, event: Event, uuid: str) -> Statement:
    stamp = _get(event, "Event-Date-Timestamp")
    row = {
        "uuid": uuid, "direction": _get(event, "Call-Direction"), "created": _get(event, "Event-Date-Local"),
        "created_epoch": str(int(stamp) // 1_000_000) if stamp.isdigit() else str(int(time.time())),
        "name": _get(event, "Channel-Name"), "state": _get(event, "Channel-State"),
        "callstate": _get(event, "Channel-Call-State"), "dialplan": _get(event, "Caller-Dialplan"),
        "context": _get(event, "Caller-Context"), "hostname": db.switchname,
        "accountcode": _get(event, "variable_accountcode"),
        "initial_cid_name": _get(event, "Caller-Caller-ID-Name"),
        "initial_cid_num": _get(event, "Caller-Caller-ID-Number"),
        "initial_ip_addr": _get(event, "Caller-Network-Addr"),
        "initial_dest": _get(event, "Caller-Destination-Number"),
        "initial_dialplan": _get(event, "Caller-Dialplan"), "initial_context": _get(event, "Caller-Context"),
    }  # fmt: skip

    def insert(tables: CoreTables) -> None:
        tables.channels[uuid] = row

    return insert


def _set(uuid: str, values: dict[str, str]) -> Statement:
    return lambda tables: tables.update(uuid, values)


def _state(db: CoreDb, event: Event, uuid: str) -> Statement | None:
    number = _get(event, "Channel-State-Number")
    if number in _NO_STATE_UPDATE or not number:
        return None
    values = {"state": _get(event, "Channel-State")}
    if number == "2":  # CS_ROUTING
        values.update({column: _get(event, header) for column, header in _ROUTING_COLUMNS})
    return _set(uuid, values)


def _callstate(db: CoreDb, event: Event, uuid: str) -> Statement | None:
    if _get(event, "Channel-Call-State-Number") in ("0", "7", ""):  # CCS_DOWN, CCS_HANGUP
        return None
    return _set(uuid, {"callstate": _get(event, "Channel-Call-State")})


def _codecs(db: CoreDb, event: Event, uuid: str) -> Statement:
    return _set(uuid, {column: _get(event, header) for column, header in _CODEC_COLUMNS})


def _execute(db: CoreDb, event: Event, uuid: str) -> Statement:
    values = {"application": _get(event, "Application"), "application_data": _get(event, "Application-Data")}
    values.update({"presence_id": _get(event, "Channel-Presence-ID")})
    values.update({"presence_data": _get(event, "Channel-Presence-Data")})
    return _set(uuid, values)


def _originate(db: CoreDb, event: Event, uuid: str) -> Statement:
    values = {"presence_id": _get(event, "Channel-Presence-ID")}
    values.update({"presence_data": _get(event, "Channel-Presence-Data")})
    values["call_uuid"] = _get(event, "Channel-Call-UUID")
    return _set(uuid, values)


def _call_update(db: CoreDb, event: Event, uuid: str) -> Statement:
    return _set(
        uuid,
        {
            "callee_name": _get(event, "Caller-Callee-ID-Name"),
            "callee_num": _get(event, "Caller-Callee-ID-Number"),
            "sent_callee_name": _get(event, "Sent-Callee-ID-Name"),
            "sent_callee_num": _get(event, "Sent-Callee-ID-Number"),
            "callee_direction": _get(event, "Direction"),
            "cid_name": _get(event, "Caller-Caller-ID-Name"),
            "cid_num": _get(event, "Caller-Caller-ID-Number"),
        },
    )


def _bridge(db: CoreDb, event: Event, uuid: str) -> Statement:
    a_uuid, b_uuid = _get(event, "Bridge-A-Unique-ID"), _get(event, "Bridge-B-Unique-ID")
    if not a_uuid or not b_uuid:
        a_uuid, b_uuid = _get(event, "Caller-Unique-ID"), _get(event, "Other-Leg-Unique-ID")
    call_uuid = _get(event, "Channel-Call-UUID")
    stamp = _get(event, "Event-Date-Timestamp")
    epoch = str(int(stamp) // 1_000_000) if stamp.isdigit() else str(int(time.time()))

    def bridge(tables: CoreTables) -> None:
        for leg in (a_uuid, b_uuid):
            tables.update(leg, {"call_uuid": call_uuid})
        tables.calls.append(Call(call_uuid, epoch, a_uuid, b_uuid))

    return bridge


def _unbridge(db: CoreDb, event: Event, uuid: str) -> Statement:
    caller, call_uuid = _get(event, "Caller-Unique-ID"), _get(event, "Channel-Call-UUID")

    def unbridge(tables: CoreTables) -> None:
        for row in tables.channels.values():
            if row.get("call_uuid") == call_uuid:
                row["call_uuid"] = row["uuid"]
        tables.calls = [c for c in tables.calls if caller not in (c.caller, c.callee)]

    return unbridge


def _destroy(db: CoreDb, event: Event, uuid: str) -> Statement:
    def delete(tables: CoreTables) -> None:
        tables.channels.pop(uuid, None)
        tables.calls = [c for c in tables.calls if uuid not in (c.caller, c.callee)]

    return delete


def _rename(db: CoreDb, event: Event, uuid: str) -> Statement:
    old = _get(event, "Old-Unique-ID")

    def rename(tables: CoreTables) -> None:
        row = tables.channels.pop(old, None)
        if row is not None:
            row["uuid"] = uuid
            tables.channels[uuid] = row
        for other in tables.channels.values():
            if other.get("call_uuid") == old:
                other["call_uuid"] = uuid

    return rename


_HANDLERS: dict[str, Callable[[CoreDb, Event, str], Statement | None]] = {
    "CHANNEL_CREATE": _create, "CHANNEL_STATE": _state, "CHANNEL_CALLSTATE": _callstate,
    "CHANNEL_ANSWER": _codecs, "CHANNEL_PROGRESS_MEDIA": _codecs, "CODEC": _codecs,
    "CHANNEL_EXECUTE": _execute, "CHANNEL_HOLD": _execute, "CHANNEL_UNHOLD": _execute,
    "CHANNEL_ORIGINATE": _originate, "CALL_UPDATE": _call_update, "CHANNEL_BRIDGE": _bridge,
    "CHANNEL_UNBRIDGE": _unbridge, "CHANNEL_DESTROY": _destroy, "CHANNEL_UUID": _rename,
}  # fmt: skip
