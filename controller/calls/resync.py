"""Reconciling the call model with a node's live channels after a (re)connect.

The FreeSWITCH adapter emits ``ChannelsResync(node, channels, calls)`` with the rows of
``show channels as json`` and ``show calls as json``. Their columns come from FreeSWITCH's core database
(switch_core_sqldb.c): the ``channels`` table (uuid, direction, created, created_epoch, name, state,
cid_name, cid_num, ip_addr, dest, application, application_data, dialplan, context, read_codec, read_rate,
..., callstate, ..., call_uuid, ...) and the ``basic_calls`` view, which adds the bridged peer as ``b_uuid``,
``b_name``, ``b_callstate`` ... from the ``calls`` table that CHANNEL_BRIDGE fills (caller = Bridge-A,
callee = Bridge-B) and CHANNEL_UNBRIDGE empties.

Rules, for the channels of that node only (other nodes are untouched):

* a channel we hold that is not in the snapshot ended while we were away: it completes with cause
  ``LOST_DURING_RECONNECT`` (unless it already had one) at the injected clock's time;
* a row we do not hold is added, unless the uuid completed recently (the core database is written through a
  queue and may list a channel for a moment after CHANNEL_HANGUP_COMPLETE). Its state comes from
  ``callstate``, ``parked`` from ``application == "park"`` (a parked channel that is playing a broadcast
  shows ``playback``: it is not recognised as parked). Rows are taken oldest first so the older leg founds
  the call;
* channels we hold move forward to the row's state; ``application == "park"`` parks them (rows never unpark:
  see above);
* bridged pairs from ``show calls`` link and merge; a bridge we hold that the snapshot lacks is dropped.

With the channel's own ``uuid_dump`` (``snapshot.details``, filled by ``controller.calls.snapshot``) a new
channel takes its state from ``Answer-State``, its times from ``Caller-Channel-Created-Time`` /
``-Answered-Time`` (microseconds, where the row has whole seconds and no answer time), its caller profile,
loopback peer and variables; a channel we hold learns an answer time it missed. Rows go oldest first by
those times. A vanished channel ends when the node was last known up (``down_since_us``, the end of the
previous connection) if that is known, else now. A ``late`` snapshot (a second look, see
``controller.app``) only adds the channels the model does not hold: it removes and unbridges nothing.

Adoption: a new channel whose dump carries ``switchyard_route`` was routed by an earlier controller. It is
reported ``ChannelAdopted`` (route, argument, worker, and whether mod_audio_stream's bug is still on it)
right after ``ChannelAdded`` and before any ``ChannelParked``, so the router knows it before it could route
it again (``controller.calls.router``). Only channels without it are new to routing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from controller.calls.changes import CallChange, ChannelAdopted, ChannelParked
from controller.calls.channel import Channel, ChannelState
from controller.calls.headers import derive_state, header_int, header_str, read_profile, read_variables
from controller.calls.snapshot import ROUTE_ARG_VARIABLE, ROUTE_VARIABLE, WORKER_VARIABLE
from controller.freeswitch.events import EventHeaders

if TYPE_CHECKING:
    from controller.calls.registry import CallRegistry
    from controller.freeswitch.events import ChannelsResync

__all__ = ["LOST_CAUSE", "apply_resync"]

LOST_CAUSE: Final = "LOST_DURING_RECONNECT"
"""Hangup cause given to channels that vanished while the controller was not connected."""

_BY_CALLSTATE: Final = {
    "DOWN": ChannelState.NEW,
    "DIALING": ChannelState.NEW,
    "RINGING": ChannelState.RINGING,
    "RING_WAIT": ChannelState.RINGING,
    "EARLY": ChannelState.EARLY,
    "ACTIVE": ChannelState.ANSWERED,
    "HELD": ChannelState.ANSWERED,
    "UNHELD": ChannelState.ANSWERED,
    "HANGUP": ChannelState.HANGUP,
}

Row = Mapping[str, str]
Dump = Mapping[str, Any]


def _created_epoch(row: Row) -> int:
    value = row.get("created_epoch", "")
    return int(value) if value.isdigit() else 0


def _created_us(row: Row, details: Mapping[str, Dump]) -> int:
    """Creation time in µs: the channel's own when dumped, else the row's whole seconds."""
    dump = details.get(row["uuid"])
    exact = header_int(dump.get("Caller-Channel-Created-Time")) if dump else 0
    return exact or _created_epoch(row) * 1_000_000


def apply_resync(registry: CallRegistry, snapshot: ChannelsResync) -> list[CallChange]:
    """Reconcile ``registry`` with one node's snapshot and return what changed.

    Args:
        registry: The call model.
        snapshot: The node's ``show channels`` / ``show calls`` rows.

    Returns:
        The changes, in the order they happened.
    """
    node = snapshot.node
    rows: dict[str, Row] = {}
    for row in snapshot.channels:
        uuid = row.get("uuid", "")
        if uuid:
            rows[uuid] = row
    pairs = [
        (row.get("uuid", ""), row.get("b_uuid", ""))
        for row in snapshot.calls
        if row.get("uuid") and row.get("b_uuid")
    ]
    partner = dict(pairs) | {b: a for a, b in pairs}
    changes: list[CallChange] = []
    if snapshot.late:  # a second look: only what the first one could not list yet
        rows = {uuid: row for uuid, row in rows.items() if registry.channel(uuid) is None}
    else:
        lost_at = snapshot.down_since_us or registry.now_us()
        for ch in [c for c in registry.channels.values() if c.node == node and c.uuid not in rows]:
            registry._complete(ch, changes, ch.hangup_us or lost_at, LOST_CAUSE)
    for row in sorted(rows.values(), key=lambda r: _created_us(r, snapshot.details)):
        _sync_row(registry, snapshot, row, partner.get(row["uuid"], ""), changes)
    _sync_bridges(registry, node, pairs, changes, drop=not snapshot.late)
    return changes


def _sync_row(
    registry: CallRegistry, snapshot: ChannelsResync, row: Row, partner: str, changes: list[CallChange]
) -> None:
    uuid, node = row["uuid"], snapshot.node
    dump = snapshot.details.get(uuid)
    state = _BY_CALLSTATE.get(row.get("callstate", ""), ChannelState.NEW)
    if dump:
        state = derive_state(header_str(dump, "Answer-State"), header_str(dump, "Channel-Call-State"))
    application = header_str(dump, "variable_current_application") if dump else ""
    parked = (application or row.get("application", "")) == "park"  # the session's, else the table's
    ch = registry.channel(uuid)
    if ch is None:
        if registry.is_gone(uuid):
            return
        ch = _channel_from_row(node, row, state, dump)
        peers = (ch.loopback_peer, partner, row.get("call_uuid", ""))
        registry._add(ch, peers, changes)
        if dump:
            _adopt(ch, dump, uuid in snapshot.streaming, changes)
    else:
        if state > ch.state:
            answered = header_int(dump.get("Caller-Channel-Answered-Time")) if dump else 0
            registry._advance(ch, state, changes, registry.now_us(), answered_us=answered)
        if dump and not ch.answered_us:
            _learn_answer(registry, ch, dump)
    if parked and not ch.parked and ch.state is not ChannelState.HANGUP:
        ch.parked = True
        changes.append(ChannelParked(ch.call_id, uuid))


def _learn_answer(registry: CallRegistry, ch: Channel, dump: Dump) -> None:
    """A held channel's answer time it missed while we were away (its state said answered already)."""
    answered = header_int(dump.get("Caller-Channel-Answered-Time"))
    call = registry.call(ch.call_id)
    if answered and call is not None:
        ch.answered_us = answered
        call.answered_us = min(call.answered_us or answered, answered)


def _adopt(ch: Channel, dump: Dump, streaming: bool, changes: list[CallChange]) -> None:
    route = header_str(dump, f"variable_{ROUTE_VARIABLE}")
    if route:
        arg = header_str(dump, f"variable_{ROUTE_ARG_VARIABLE}")
        worker = header_str(dump, f"variable_{WORKER_VARIABLE}")
        changes.append(ChannelAdopted(ch.call_id, ch.uuid, route, arg, worker, streaming))


def _channel_from_row(node: str, row: Row, state: ChannelState, dump: Dump | None) -> Channel:
    ch = Channel(
        uuid=row["uuid"], node=node, call_id="", name=row.get("name", ""), direction=row.get("direction", ""),
        state=state, created_us=_created_epoch(row) * 1_000_000, caller_id_number=row.get("cid_num", ""),
        caller_id_name=row.get("cid_name", ""), destination_number=row.get("dest", ""),
        context=row.get("context", ""), call_state=row.get("callstate", ""),
    )  # fmt: skip
    application = row.get("application", "")
    if application:
        ch.applications.append((application, row.get("application_data", "")))
    for column in ("read_codec", "read_rate"):
        value = row.get(column, "")
        if value:
            ch.variables[column] = value
    if dump:
        _from_dump(ch, dump)
    return ch


def _from_dump(ch: Channel, dump: Dump) -> None:
    """What the channel's own record adds to its row: exact times, profile, variables, loopback peer."""
    ch.created_us = header_int(dump.get("Caller-Channel-Created-Time")) or ch.created_us
    ch.answered_us = header_int(dump.get("Caller-Channel-Answered-Time"))
    ch.answer_state = header_str(dump, "Answer-State")
    ch.call_state = header_str(dump, "Channel-Call-State") or ch.call_state
    ch.loopback_peer = header_str(dump, "variable_other_loopback_leg_uuid")
    ch.headers = EventHeaders(dump)
    read_profile(ch, dump)
    read_variables(ch, dump)


def _sync_bridges(
    registry: CallRegistry, node: str, pairs: list[tuple[str, str]], changes: list[CallChange], *, drop: bool
) -> None:
    paired: set[str] = set()
    for a_uuid, b_uuid in pairs:
        a = registry.channel(a_uuid)
        if a is None or a.node != node:
            continue
        paired.add(a_uuid)
        paired.add(b_uuid)
        registry._bridge(a, b_uuid, changes)
    if not drop:
        return
    for ch in list(registry.channels.values()):
        if ch.node == node and ch.bridged_to and ch.uuid not in paired:
            registry._unbridge(ch, ch.bridged_to, changes)
