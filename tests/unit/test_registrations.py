"""The SIP registration tracker fed with the captured ``sofia::register`` and source-shaped unregister/expire.

The register event is the one FreeSWITCH 1.10.12 sent for sipp's REGISTER of user 1000
(esl_inbound_session.txt SESSION 2), through our real parser and decoder. ``sofia::unregister`` and
``sofia::expire`` were not captured: they are built with the headers sofia_reg.c adds
(sofia_reg_handle_register_token line 2213, sofia_reg_del_callback line 726), on the capture's core headers.
The recount goes through the real ``CommandSender``; a plain object stands in for the node's ``execute``
(the emulator test covers the real command).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import orjson
import pytest

from controller.calls.sender import CommandSender
from controller.calls.waiters import ChangeWaiters
from controller.freeswitch.commands import Command
from controller.freeswitch.connection import ConnectionLost
from controller.freeswitch.decode import decode_event_json
from controller.freeswitch.events import ChannelsResync, Event
from controller.registrations import (
    RECOUNT_COMMAND,
    RegistrationEvent,
    SipRegistrations,
    registration_event,
    registrations_from_rows,
)
from tests.unit.fixture_events import fs_events

CAPTURED_CALL_ID = "1-17687@127.0.0.1"
RESYNC = ChannelsResync("fs1", (), ())


def captured_register() -> Event:
    """The one sofia::register of the capture."""
    found = [e for e in fs_events("esl_inbound_session.txt", 1) if e.subclass == "sofia::register"]
    assert len(found) == 1
    return found[0]


def _custom(subclass: str, headers: dict[str, str]) -> Event:
    """A CUSTOM event on the capture's core headers (Core-UUID, hostname, ...), decoded by our decoder."""
    core = {k: v for k, v in captured_register().headers.raw.items() if k[0].isupper()}
    return decode_event_json(orjson.dumps({**core, "Event-Subclass": subclass, **headers}))


def register(user: str = "1000", call_id: str = CAPTURED_CALL_ID, profile: str = "internal") -> Event:
    """A sofia::register like the captured one, for another user / Call-ID / profile."""
    raw = dict(captured_register().headers.raw)
    raw.update({"from-user": user, "call-id": call_id, "profile-name": profile})
    return decode_event_json(orjson.dumps(raw))


def unregister(user: str = "1000", call_id: str = CAPTURED_CALL_ID) -> Event:
    """sofia::unregister (REGISTER with Expires: 0): sofia_reg.c's headers, then the directory vars."""
    return _custom(
        "sofia::unregister",
        {
            "profile-name": "internal", "username": user, "from-user": user, "from-host": "127.0.0.1",
            "contact": f'"" <sip:{user}@127.0.0.1:5070>', "call-id": call_id, "rpid": "unknown",
            "realm": "127.0.0.1", "network-ip": "127.0.0.1", "network-port": "5070", "user-agent": "SIPp",
            "expires": "0", "user_name": user, "domain_name": "127.0.0.1",
        },
    )  # fmt: skip


def expire(user: str = "1000", call_id: str = CAPTURED_CALL_ID) -> Event:
    """sofia::expire: sofia_reg_del_callback's headers (``user``/``host``, no ``from-*``)."""
    return _custom(
        "sofia::expire",
        {
            "profile-name": "internal", "call-id": call_id, "user": user, "username": user,
            "host": "127.0.0.1", "contact": f'"" <sip:{user}@127.0.0.1:5070>', "expires": "1795216034",
            "user-agent": "SIPp", "realm": "127.0.0.1", "network-ip": "127.0.0.1", "network-port": "5070",
        },
    )  # fmt: skip


def table(*rows: tuple[str, str, str]) -> str:
    """``show registrations as json`` as mod_commands.c prints it, for (user, Call-ID, url) rows."""
    if not rows:
        return '{"row_count": 0}\n'
    rest = {
        "expires": "1795216034", "network_ip": "127.0.0.1", "network_port": "5070", "network_proto": "udp",
        "hostname": "fs-host", "metadata": "",
    }  # fmt: skip
    out = [
        {"reg_user": user, "realm": "127.0.0.1", "token": call_id, "url": url, **rest}
        for user, call_id, url in rows
    ]
    return json.dumps({"row_count": len(out), "rows": out}, separators=(",", ":"))


class Node:
    """Stands in for ``FreeSwitchNode``: records commands, answers with ``reply`` (awaited if a future)."""

    connected = True

    def __init__(self, reply: str | BaseException | asyncio.Future[str] = '{"row_count": 0}\n') -> None:
        self.reply = reply
        self.commands: list[str] = []

    async def execute(
        self,
        command: Command,
        timeout: float | None = None,
        *,
        check: bool = True,
        job_uuid: str | None = None,
    ) -> str:
        self.commands.append(command.line)
        if isinstance(self.reply, BaseException):
            raise self.reply
        if isinstance(self.reply, asyncio.Future):
            return await self.reply
        return self.reply


def tracker(node: Node | None = None, **kw: Any) -> SipRegistrations:
    return SipRegistrations(CommandSender({"fs1": node or Node()}, ChangeWaiters()), ["fs1"], **kw)


async def recounted(regs: SipRegistrations, node: str = "fs1") -> None:
    task = regs.recount_task(node)
    assert task is not None
    await asyncio.wait_for(task, 1)


def test_captured_register_names_the_contact() -> None:
    assert registration_event(captured_register()) == RegistrationEvent(
        "register", "internal", "1000", "127.0.0.1", CAPTURED_CALL_ID
    )
    assert registration_event(expire()) == RegistrationEvent(
        "expire", "internal", "1000", "127.0.0.1", CAPTURED_CALL_ID
    )
    assert registration_event(unregister()).kind == "unregister"  # type: ignore[union-attr]


def test_other_events_of_the_captures_change_nothing() -> None:
    regs = tracker()
    for event in fs_events("esl_inbound_session.txt"):
        regs.apply("fs1", event)
    for event in fs_events("esl_playback_queue.txt"):
        regs.apply("fs1", event)
    assert regs.counts() == {("fs1", "internal"): 1}  # the one REGISTER of SESSION 2


def test_refresh_counts_once_unregister_and_expire_remove() -> None:
    regs = tracker()
    assert regs.counts() == {("fs1", "internal"): 0}  # the registrar profile shows from the start
    regs.apply("fs1", captured_register())
    regs.apply("fs1", captured_register())  # refresh: same user, host and Call-ID
    regs.apply("fs1", register("1001", "77-1@127.0.0.1"))
    assert regs.counts() == {("fs1", "internal"): 2}
    regs.apply("fs1", unregister())
    assert regs.counts() == {("fs1", "internal"): 1}
    regs.apply("fs1", expire("1001", "another-call-id"))  # not that contact: nothing expires
    assert regs.counts() == {("fs1", "internal"): 1}
    regs.apply("fs1", expire("1001", "77-1@127.0.0.1"))
    regs.apply("fs1", expire("1001", "77-1@127.0.0.1"))  # late duplicates are harmless
    assert regs.counts() == {("fs1", "internal"): 0}


def test_new_call_id_replaces_unless_multiple_registrations() -> None:
    single, multiple = tracker(), tracker(multiple_registrations=True)
    for regs in (single, multiple):
        regs.apply("fs1", captured_register())
        regs.apply("fs1", register(call_id="rebooted@127.0.0.1"))
    assert single.counts() == {("fs1", "internal"): 1}
    assert multiple.counts() == {("fs1", "internal"): 2}
    for regs in (single, multiple):
        regs.apply("fs1", unregister(call_id="rebooted@127.0.0.1"))
    assert single.counts() == {("fs1", "internal"): 0}  # sofia drops all of the user's contacts
    assert multiple.counts() == {("fs1", "internal"): 1}  # only that Call-ID's


def test_profiles_and_nodes_are_counted_apart() -> None:
    regs = tracker()
    regs.apply("fs1", register(profile="external"))
    regs.apply("fs2", captured_register())
    regs.apply("fs1", unregister())  # its profile-name says internal, but the contact is keyed by user/host
    regs.apply("fs1", register("1002", "x@h", profile="external"))
    assert regs.counts() == {
        ("fs1", "internal"): 0, ("fs1", "external"): 1, ("fs2", "internal"): 1,
    }  # fmt: skip


def test_rows_of_other_modules_are_not_counted() -> None:
    rows = json.loads(table(("1000", "a@h", "sofia/internal/sip:1000@10.0.0.7:5062"), ("7", "t", "rtmp/x")))
    assert registrations_from_rows(rows["rows"]) == [
        RegistrationEvent("register", "internal", "1000", "127.0.0.1", "a@h")
    ]


async def test_resync_recounts_from_show_registrations() -> None:
    node = Node(table(("1000", CAPTURED_CALL_ID, "sofia/internal/sip:1000@127.0.0.1:5070")))
    regs = tracker(node)
    regs.apply("fs1", register("1009", "gone-while-away"))
    regs.apply("fs1", RESYNC)
    await recounted(regs)
    assert node.commands == ["show registrations as json"] == [RECOUNT_COMMAND.line]
    assert regs.counts() == {("fs1", "internal"): 1}
    assert regs.recounts == 1
    regs.apply("fs1", captured_register())  # the listed contact refreshing: still one
    assert regs.counts() == {("fs1", "internal"): 1}
    node.reply = table()
    regs.apply("fs1", RESYNC)
    await recounted(regs)
    assert regs.counts() == {("fs1", "internal"): 0}


async def test_events_during_the_recount_apply_on_top_of_its_answer() -> None:
    reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    regs = tracker(Node(reply))
    regs.apply("fs1", RESYNC)
    await asyncio.sleep(0)  # the command is out; FreeSWITCH reads its table ...
    regs.apply("fs1", unregister())  # ... then 1000 unregisters (the table still lists it: queued SQL)
    regs.apply("fs1", register("1001", "new@h"))  # ... and 1001 registers after the table was read
    assert regs.counts() == {("fs1", "internal"): 1}
    reply.set_result(table(("1000", CAPTURED_CALL_ID, "sofia/internal/sip:1000@127.0.0.1:5070")))
    await recounted(regs)
    assert regs.counts() == {("fs1", "internal"): 1}  # 1001 only
    regs.apply("fs1", unregister("1001", "new@h"))
    assert regs.counts() == {("fs1", "internal"): 0}


@pytest.mark.parametrize(
    "reply", [ConnectionLost("connection ended"), "not json", '{"rows": []}'], ids=["lost", "text", "shape"]
)
async def test_failed_recount_keeps_the_counted_contacts(
    reply: str | BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    regs = tracker(Node(reply))
    regs.apply("fs1", captured_register())
    regs.apply("fs1", RESYNC)
    with caplog.at_level(logging.WARNING, "controller.registrations"):
        await recounted(regs)
    regs.apply("fs1", register("1001", "later@h"))
    assert regs.counts() == {("fs1", "internal"): 2}
    assert regs.recounts == 0
    assert "registrations not recounted" in caplog.text


async def test_a_new_resync_replaces_the_pending_recount() -> None:
    first: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    node = Node(first)
    regs = tracker(node)
    regs.apply("fs1", RESYNC)
    await asyncio.sleep(0)
    stale = regs.recount_task("fs1")
    regs.apply("fs1", captured_register())  # journalled by the first recount
    node.reply = table()
    regs.apply("fs1", RESYNC)  # reconnected again: the first answer would be older than this one
    await recounted(regs)
    assert stale is not None
    assert stale.cancelled()
    assert regs.counts() == {("fs1", "internal"): 0}
    assert regs.recount_task("fs1") is None
    await regs.aclose()
