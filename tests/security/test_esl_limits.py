"""Issue 17 item 6: the controller's ESL client holds a bounded number of bytes from FreeSWITCH.

A frame beyond ``max_header_bytes`` / ``max_body_bytes`` is a protocol error: the connection is dropped and
the node reconnects (and resyncs); a consumer that stops reading makes the node stop reading from the
socket (TCP backpressure) instead of buffering the flood, and gets every event once it reads again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.freeswitch.connection import READ_CHUNK
from controller.freeswitch.events import ChannelsResync, Event
from controller.freeswitch.node import CUSTOM_EVENTS, SUBSCRIBED_EVENTS, FreeSwitchNode, NodeEvent
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.burst import captured_channel_events, realistic_burst
from tests.integration.conftest import EslTarget

BODY_LIMIT = 64 * 1024
BACKLOG_LIMIT = 256 * 1024


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[EslTarget]:
    config = EmulatorConfig(password=secrets.token_hex(8), temp_dir=tmp_path)
    async with FreeSwitchEmulator(config) as fs:
        yield EslTarget("emulator", "127.0.0.1", fs.port, config.password, fs)


def emulator(target: EslTarget) -> FreeSwitchEmulator:
    assert target.emulator is not None
    return target.emulator


async def next_event(events: AsyncIterator[NodeEvent]) -> NodeEvent:
    async with asyncio.timeout(5):
        return await anext(events)


async def test_an_event_larger_than_the_body_limit_drops_the_connection_and_the_node_reconnects(
    target: EslTarget, caplog: pytest.LogCaptureFixture
) -> None:
    fs = emulator(target)
    settings = target.node_settings(max_body_bytes=BODY_LIMIT)
    huge = fs.build_event("CHANNEL_PARK", [("Unique-ID", "u-huge"), ("variable_blob", "x" * BODY_LIMIT)])
    after = fs.build_event("CHANNEL_PARK", [("Unique-ID", "u-after")])
    async with FreeSwitchNode(settings) as node:
        events = node.events()
        assert isinstance(await next_event(events), ChannelsResync)
        with caplog.at_level(logging.ERROR, "controller.freeswitch.connection"):
            await fs.emit_burst([huge])
            resync = await next_event(events)  # the huge event is never delivered: a new connection's resync
        assert isinstance(resync, ChannelsResync)
        assert node.connects == 2
        assert f"exceeds the limit of {BODY_LIMIT} bytes" in caplog.text
        await fs.emit_burst([after])  # and the new connection carries events as before
        event = await next_event(events)
        assert isinstance(event, Event)
        assert event.headers["Unique-ID"] == "u-after"


async def test_a_header_block_that_never_ends_drops_the_connection_and_the_node_reconnects(
    target: EslTarget, caplog: pytest.LogCaptureFixture
) -> None:
    fs = emulator(target)
    settings = target.node_settings(max_header_bytes=4096)
    async with FreeSwitchNode(settings) as node:
        events = node.events()
        assert isinstance(await next_event(events), ChannelsResync)
        with caplog.at_level(logging.ERROR, "controller.freeswitch.connection"):
            fs.send_raw(b"Content-Type: text/event-json\nX-Padding: " + b"a" * 8192)  # no blank line, ever
            assert isinstance(await next_event(events), ChannelsResync)
        assert node.connects == 2
        assert "header block longer than the limit of 4096 bytes" in caplog.text


async def test_a_consumer_that_stops_reading_pauses_the_socket_and_loses_nothing(target: EslTarget) -> None:
    fs = emulator(target)
    templates = captured_channel_events(names=SUBSCRIBED_EVENTS, subclasses=CUSTOM_EVENTS)
    calls = realistic_burst(2000, templates)  # sent 5 times: 10000 events of ~4.5 KiB
    burst = calls * 5
    flood_bytes = sum(len(e.json_frame()) for e in burst)
    largest = max(len(e.json_frame()) for e in calls)
    settings = target.node_settings(event_backlog_bytes=BACKLOG_LIMIT)
    bound = BACKLOG_LIMIT + READ_CHUNK + largest  # the backlog may pass its bound by one read's events
    assert flood_bytes > 20 * bound  # without the bound the node would have read it all
    async with FreeSwitchNode(settings) as node:
        events = node.events()
        assert isinstance(await next_event(events), ChannelsResync)
        await fs.emit_burst(burst)
        held: list[int] = []
        for _ in range(100):  # the consumer is busy for a second while FreeSWITCH floods
            await asyncio.sleep(0.01)
            held.append(node.buffered_bytes)
        assert node.backlog.full
        assert node.overflows == 1
        assert max(held) <= bound + READ_CHUNK  # + the partial frame and the rest of a read
        assert node.backlog.peak_bytes <= bound
        received: list[tuple[str, str | None]] = []
        async with asyncio.timeout(30):
            while len(received) < len(burst):
                event = await anext(events)
                assert isinstance(event, Event), event  # a ChannelsResync would mean a reconnect
                received.append((event.name, event.headers.get("Unique-ID")))
        assert received == [(e.name, e.get("Unique-ID")) for e in burst]  # all of them, in order
        assert node.connects == 1
        assert node.backlog.bytes == 0
        assert not node.backlog.full
