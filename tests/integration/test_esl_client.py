"""Our ESL client and node adapter against a FreeSWITCH (emulated in CI, real with ``-m live``)."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from controller.freeswitch.connection import (
    AuthenticationError,
    CommandError,
    CommandTimeout,
    ConnectionLost,
    EslConnection,
)
from controller.freeswitch.events import BackgroundJob, ChannelsResync, Event
from controller.freeswitch.node import FreeSwitchNode, NodeEvent
from tests.integration.conftest import EslTarget


async def collect_until(
    node: FreeSwitchNode, predicate: object, timeout: float, sink: list[NodeEvent] | None = None
) -> list[NodeEvent]:
    """Read the node's events until ``predicate(event)`` is true; return everything read."""
    seen: list[NodeEvent] = [] if sink is None else sink
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        async for event in node.events():
            seen.append(event)
            if predicate(event):
                return seen
    raise AssertionError("event stream ended")


def originate(target: EslTarget, call_uuid: str) -> str:
    return (
        f"originate {{origination_uuid={call_uuid}}}loopback/{target.tone_extension}/{target.context} &park()"
    )


async def test_auth_api_and_command_errors(esl_target: EslTarget) -> None:
    conn = await EslConnection.open(esl_target.host, esl_target.port, esl_target.password)
    async with conn:
        status = await conn.api("status")
        assert "is ready" in status
        with pytest.raises(CommandError, match="-ERR"):
            await conn.api(f"uuid_kill {uuid.uuid4()}")
        text = await conn.api(f"uuid_kill {uuid.uuid4()}", check=False)
        assert text == "-ERR No such channel!\n"
    assert not conn.is_open
    assert conn.closed.done()
    assert conn.closed.exception() is None


async def test_wrong_password_is_final(esl_target: EslTarget) -> None:
    with pytest.raises(AuthenticationError):
        await EslConnection.open(esl_target.host, esl_target.port, esl_target.password + "x")
    node = FreeSwitchNode(esl_target.node_settings(password=esl_target.password + "x"))
    async with node:
        with pytest.raises(AuthenticationError):
            await node.wait_connected(3)
        with pytest.raises(AuthenticationError):
            await node.api("status")
        with pytest.raises(AuthenticationError):
            async for _ in node.events():
                pass
    assert node.connects == 0


async def test_bgapi_correlates_100_concurrent_jobs(esl_target: EslTarget) -> None:
    # 25 originates (50 sessions: a real FreeSWITCH refuses sessions beyond sessions-per-second, 100 in the
    # rendered switch.conf, with -ERR DESTINATION_OUT_OF_ORDER) among 75 msleeps of different lengths,
    # so that results come back out of order.
    calls = [str(uuid.uuid4()) for _ in range(25)]
    commands = [originate(esl_target, c) for c in calls] + [f"msleep {5 * (i % 15)}" for i in range(75)]
    expected = [f"+OK {c}\n" for c in calls] + ["+OK"] * 75
    async with FreeSwitchNode(esl_target.node_settings()) as node:
        await node.wait_connected(5)
        try:
            results = await asyncio.gather(*(node.bgapi(c) for c in commands))
            assert results == expected
        finally:
            await asyncio.gather(*(node.api(f"uuid_kill {c}", check=False) for c in calls))


async def test_command_timeout_drops_the_connection_and_reconnects(esl_target: EslTarget) -> None:
    async with FreeSwitchNode(esl_target.node_settings()) as node:
        await node.wait_connected(5)
        with pytest.raises(CommandTimeout):
            await node.api("msleep 1500", timeout=0.3)
        # The late "+OK" of msleep must not be taken as the reply to this command: a new connection.
        status = await node.api("status", timeout=5)
        assert "is ready" in status
        assert node.connects == 2
        # The first connection's resync queued behind msleep and died with it; the second one resyncs.
        seen = await collect_until(node, lambda e: isinstance(e, ChannelsResync), 5)
        assert sum(isinstance(e, ChannelsResync) for e in seen) == 1


async def test_events_follow_an_originated_call(esl_target: EslTarget) -> None:
    call = str(uuid.uuid4())
    async with FreeSwitchNode(esl_target.node_settings()) as node:
        await node.wait_connected(5)
        seen = await collect_until(node, lambda e: isinstance(e, ChannelsResync), 5)
        assert await node.bgapi(originate(esl_target, call)) == f"+OK {call}\n"
        await collect_until(node, lambda e: isinstance(e, Event) and e.name == "CHANNEL_PARK", 5, seen)
        await node.api(f"uuid_kill {call}")
        await collect_until(
            node,
            lambda e: (
                isinstance(e, Event)
                and e.name == "CHANNEL_HANGUP_COMPLETE"
                and e.headers["Unique-ID"] == call
            ),
            5,
            seen,
        )
    names = [e.name for e in seen if isinstance(e, Event) and e.headers.get("Unique-ID") == call]
    assert names[0] == "CHANNEL_CREATE"
    assert "CHANNEL_ANSWER" in names
    assert "CHANNEL_PARK" in names
    assert (
        names.index("CHANNEL_ANSWER") < names.index("CHANNEL_PARK") < names.index("CHANNEL_HANGUP_COMPLETE")
    )
    jobs = [e for e in seen if isinstance(e, BackgroundJob)]
    assert [j.body for j in jobs] == [f"+OK {call}\n"]


async def test_close_leaves_no_tasks_or_threads(esl_target: EslTarget) -> None:
    threads = threading.active_count()
    tasks = len(asyncio.all_tasks())
    for _ in range(3):
        async with FreeSwitchNode(esl_target.node_settings(keepalive=0.05)) as node:
            await node.wait_connected(5)
            await node.api("status")
            await asyncio.sleep(0.12)  # let the keepalive run
        with pytest.raises(ConnectionLost):
            await node.api("status", timeout=0.2)
    assert len(asyncio.all_tasks()) == tasks
    assert threading.active_count() == threads
