"""SIP contacts registered on each FreeSWITCH node, kept from sofia's events and recounted on (re)connect.

What FreeSWITCH 1.10.12 says, and where (src/mod/endpoints/mod_sofia unless noted):

* ``CUSTOM sofia::register`` (sofia_reg.c ``sofia_reg_handle_register_token``) fires for every accepted
  REGISTER with a non-zero expiry, refreshes included. ``from-user`` / ``from-host`` are the To user and the
  registrar host (sofia's ``sip_user`` / ``sip_host`` columns), ``call-id`` the REGISTER's Call-ID,
  ``profile-name`` the profile (captured: esl_inbound_session.txt SESSION 2).
* ``CUSTOM sofia::unregister`` fires for a REGISTER with ``Expires: 0`` (same function) and, with
  ``reason: socket-disconnection``, when the TCP/WS connection of a registration closes (sofia.c,
  ``nua_i_media_error``); both carry ``profile-name``, ``from-user``, ``from-host`` and ``call-id``.
* ``CUSTOM sofia::expire`` (sofia_reg.c ``sofia_reg_del_callback``) fires once per row that expired or was
  flushed. Its headers are ``user`` / ``host`` (no ``from-*``), ``call-id``, ``profile-name``.
* ``show registrations as json`` (mod_commands.c ``show_function``) lists the core ``registrations`` table
  (switch_core_sqldb.c): ``reg_user``, ``realm`` (= sofia's ``sip_host``), ``token`` (= the Call-ID) and
  ``url`` = ``sofia/<profile>/sip:<contact>`` (sofia_reg.c); mod_rtmp and mod_skinny add rows too, which
  fire no sofia event, so only ``sofia/`` rows count. The core writes this table through its SQL queue: it
  may lag an event by a moment.
* With ``multiple-registrations`` off (the default: the vanilla internal.xml and switch.conf.xml leave it
  commented out) a REGISTER replaces the user's earlier contacts (sofia_reg.c deletes ``where sip_user and
  sip_host``, ``switch_core_add_registration`` ``where reg_user and realm``) and an unregister drops them
  all; with it on, each Call-ID is a contact of its own.

A contact is therefore keyed by (user, host, Call-ID): a refresh (same Call-ID, RFC 3261 section 10.2.4)
changes nothing, an unregister or expiry removes it.

Recount: after each (re)connect the adapter puts a ``ChannelsResync`` into the node's event stream where
the subscription started. On it the tracker asks ``show registrations as json`` in the background and
journals the registration events it applies meanwhile; the answer replaces the node's contacts and the
journal is replayed on top (adding and removing are idempotent). The result is "the table, then every
event since the subscription", whether the reply came before or after those events. While a node is down
its last known contacts stay.

Listing and flushing go through the same sender: ``table`` is every configured node's ``show
registrations`` (``GET /v1/registrations``), ``flush`` removes a user's registrations on every connected
node with ``sofia profile internal flush_inbound_reg <user>@<domain> reboot`` (mod_sofia.c ``cmd_profile``:
a ``user@domain`` argument selects that user's rows in sofia_reg.c ``sofia_reg_expire_call_id``; ``reboot``
also sends the client a reboot NOTIFY), e.g. when a browser identity expires.

Exception tree: nothing is raised. A failed recount (the sender's ``CallError``, or a reply that is not the
JSON shape: ``ProtocolError``) is logged and the contacts kept from events stay; a node that cannot be
listed is named in ``RegistrationTable.unreachable``; a failed flush is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from controller.calls.sender import CallError, CommandSender
from controller.freeswitch.commands import SHOW_REGISTRATIONS, InvalidCommand, flush_inbound_reg
from controller.freeswitch.events import ChannelsResync, Event, OtherEvent
from controller.freeswitch.node import NodeEvent, parse_show_json
from controller.freeswitch.protocol import ProtocolError
from switchyard.tasks import cancel_all

__all__ = [
    "RECOUNT_COMMAND",
    "SUBCLASSES",
    "RegistrationEvent",
    "RegistrationTable",
    "SipRegistrations",
    "registration_event",
    "registrations_from_rows",
]

log = logging.getLogger(__name__)

RECOUNT_COMMAND: Final = SHOW_REGISTRATIONS
_ASK_DEADLINE_S: Final = 5.0  # listing and flushing, per node

RegistrationKind = Literal["register", "unregister", "expire"]

SUBCLASSES: Final[Mapping[str, RegistrationKind]] = {
    "sofia::register": "register",
    "sofia::unregister": "unregister",
    "sofia::expire": "expire",
}
"""The CUSTOM subclasses the tracker reads (mod_sofia.h MY_EVENT_REGISTER / _UNREGISTER / _EXPIRE)."""


@dataclass(frozen=True, slots=True)
class RegistrationEvent:
    """One registration change, reduced to what identifies the contact."""

    kind: RegistrationKind
    profile: str
    user: str
    host: str
    call_id: str


@dataclass(frozen=True, slots=True)
class RegistrationTable:
    """``show registrations`` of every configured node: (node, row) pairs, and the nodes not listed."""

    rows: tuple[tuple[str, Mapping[str, str]], ...]
    unreachable: tuple[str, ...]


def _text(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    return value if type(value) is str else ""


def registration_event(event: Event) -> RegistrationEvent | None:
    """The change a ``CUSTOM sofia::register`` / ``::unregister`` / ``::expire`` event carries, else None."""
    raw = event.headers.raw
    kind = SUBCLASSES.get(_text(raw, "Event-Subclass"))
    if kind is None or event.name != "CUSTOM":
        return None
    # sofia::expire names them user/host (sofia_reg_del_callback); register and unregister from-user/-host.
    user = _text(raw, "from-user") or _text(raw, "user")
    host = _text(raw, "from-host") or _text(raw, "host")
    return RegistrationEvent(kind, _text(raw, "profile-name"), user, host, _text(raw, "call-id"))


def registrations_from_rows(rows: Iterable[Mapping[str, str]]) -> list[RegistrationEvent]:
    """The sofia contacts of ``show registrations`` rows, as ``register`` changes (other modules' skipped)."""
    out = []
    for row in rows:
        url = row.get("url", "")
        if not url.startswith("sofia/"):
            continue
        profile = url.split("/", 2)[1]
        out.append(
            RegistrationEvent(
                "register", profile, row.get("reg_user", ""), row.get("realm", ""), row.get("token", "")
            )
        )
    return out


class _NodeContacts:
    """The contacts of one node: (user, host) -> {Call-ID: profile}; plus the journal of a recount."""

    __slots__ = ("by_user", "journal", "profiles")

    def __init__(self, profiles: Iterable[str]) -> None:
        self.by_user: dict[tuple[str, str], dict[str, str]] = {}
        self.profiles = set(profiles)
        self.journal: list[RegistrationEvent] | None = None

    def apply(self, change: RegistrationEvent, multiple: bool) -> None:
        self.profiles.add(change.profile)
        key = (change.user, change.host)
        held = self.by_user.get(key)
        if change.kind == "register":
            if held is None or not multiple:
                held = self.by_user[key] = {}
            held[change.call_id] = change.profile
        elif change.kind == "unregister" and not multiple:
            self.by_user.pop(key, None)
        elif held is not None:
            held.pop(change.call_id, None)
            if not held:
                del self.by_user[key]

    def replace(self, snapshot: Iterable[RegistrationEvent], multiple: bool) -> None:
        """The recount's contacts, then every change journalled since the recount started."""
        self.by_user = {}
        for change in (*snapshot, *(self.journal or ())):
            self.apply(change, multiple)
        self.journal = None

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.profiles, 0)
        for held in self.by_user.values():
            for profile in held.values():
                out[profile] += 1
        return out


class SipRegistrations:
    """Registered SIP contacts per node and sofia profile (see the module docstring).

    Args:
        sender: Sends the recount's command to a node.
        nodes: The configured nodes; each shows ``profiles`` (at 0) before anything registers.
        profiles: Profiles to show from the start (the rendered config registers phones and Janus on
            ``internal``); others appear when a contact registers on them and stay, at 0 when empty.
        multiple_registrations: The profiles' ``multiple-registrations`` setting (FreeSWITCH's default: off).
    """

    def __init__(
        self,
        sender: CommandSender,
        nodes: Iterable[str],
        *,
        profiles: Iterable[str] = ("internal",),
        multiple_registrations: bool = False,
    ) -> None:
        self._sender = sender
        self._profiles = tuple(profiles)
        self._multiple = multiple_registrations
        self._configured = tuple(nodes)
        self._nodes = {node: _NodeContacts(self._profiles) for node in self._configured}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.recounts = 0

    def apply(self, node: str, event: NodeEvent) -> None:
        """Follow one event of ``node``: registration events change the count, a resync recounts."""
        if type(event) is ChannelsResync:
            self._start_recount(node)
            return
        if type(event) is not OtherEvent:
            return
        change = registration_event(event)
        if change is None:
            return
        contacts = self._contacts(node)
        contacts.apply(change, self._multiple)
        if contacts.journal is not None:
            contacts.journal.append(change)

    def counts(self) -> dict[tuple[str, str], int]:
        """Registered contacts by (node, profile)."""
        return {
            (node, profile): n
            for node, contacts in self._nodes.items()
            for profile, n in contacts.counts().items()
        }

    async def table(self) -> RegistrationTable:
        """What every configured node lists now (a node down is waited for up to 5 s, then unreachable)."""
        rows: list[tuple[str, Mapping[str, str]]] = []
        unreachable: list[str] = []
        for node in self._configured:
            try:
                listed = parse_show_json(await self._sender.run(node, SHOW_REGISTRATIONS, _ASK_DEADLINE_S))
            except (CallError, ProtocolError) as exc:
                log.warning("node %s: show registrations: %s", node, exc)
                unreachable.append(node)
                continue
            rows += [(node, row) for row in listed]
        return RegistrationTable(tuple(rows), tuple(unreachable))

    async def flush(self, address: str) -> None:
        """Remove the registrations of ``user@domain`` on every connected node (failures are logged)."""
        try:
            command = flush_inbound_reg(address)
        except InvalidCommand as exc:
            log.warning("registrations of %r not flushed: %s", address, exc)
            return
        for node, up in self._sender.connected().items():
            if not up:
                continue
            try:
                await self._sender.run(node, command, _ASK_DEADLINE_S)
            except CallError as exc:
                log.warning("node %s: %s: %s", node, command, exc)

    def recount_task(self, node: str) -> asyncio.Task[None] | None:
        """The recount of ``node`` in progress (None when there is none)."""
        return self._tasks.get(node)

    async def aclose(self) -> None:
        """Cancel the recounts in progress (bounded wait)."""
        await cancel_all(self._tasks.values())
        self._tasks.clear()

    def _contacts(self, node: str) -> _NodeContacts:
        contacts = self._nodes.get(node)
        if contacts is None:
            contacts = self._nodes[node] = _NodeContacts(self._profiles)
        return contacts

    def _start_recount(self, node: str) -> None:
        previous = self._tasks.pop(node, None)
        if previous is not None:
            previous.cancel()
        contacts = self._contacts(node)
        contacts.journal = []
        task = asyncio.get_running_loop().create_task(
            self._recount(node, contacts), name=f"recount registrations {node}"
        )
        self._tasks[node] = task
        task.add_done_callback(lambda done: self._recount_done(node, done))

    async def _recount(self, node: str, contacts: _NodeContacts) -> None:
        try:
            rows = parse_show_json(await self._sender.run(node, RECOUNT_COMMAND))
        except (CallError, ProtocolError) as exc:
            log.warning("node %s: registrations not recounted (%s); keeping the counted ones", node, exc)
            contacts.journal = None
            return
        snapshot = registrations_from_rows(rows)
        contacts.replace(snapshot, self._multiple)
        self.recounts += 1
        log.info("node %s: %d SIP registration(s) after the recount", node, sum(contacts.counts().values()))

    def _recount_done(self, node: str, task: asyncio.Task[None]) -> None:
        failure = None if task.cancelled() else task.exception()
        current = self._tasks.get(node) is task  # else a newer recount owns the journal now
        if current:
            del self._tasks[node]
        if failure is not None:
            log.error("node %s: registration recount failed", node, exc_info=failure)
            if current:
                self._contacts(node).journal = None
