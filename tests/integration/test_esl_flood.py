"""A listener flood: 10k realistic events must be consumed without falling behind (no drop, no loss)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from controller.calls.changes import CallEnded
from controller.calls.model import CallModel
from controller.freeswitch.events import ChannelsResync, Event
from controller.freeswitch.node import CUSTOM_EVENTS, SUBSCRIBED_EVENTS, FreeSwitchNode
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.burst import captured_channel_events, realistic_burst
from tests.fsemu.wire import Event as WireEvent
from tests.integration.conftest import EslTarget

FLOOD = 10_000
RATE = 10_000  # events/s: several times a busy node's rate, on the one core the emulator shares with us
CHUNK = 100


async def flood(fs: FreeSwitchEmulator, burst: list[WireEvent]) -> None:
    """Fire the burst at RATE in chunks, as FreeSWITCH's event threads would, while the listener drains."""
    for start in range(0, len(burst), CHUNK):
        await fs.emit_burst(burst[start : start + CHUNK], yield_every=CHUNK)
        await asyncio.sleep(CHUNK / RATE)


async def test_flood_of_10k_events_is_consumed_without_falling_behind(tmp_path: Path) -> None:
    # A small listener queue: a client that does not keep up is dropped after max_missed lost events.
    config = EmulatorConfig(
        password=secrets.token_hex(8), temp_dir=tmp_path, listener_queue_max=1000, max_missed=500
    )
    templates = captured_channel_events(names=SUBSCRIBED_EVENTS, subclasses=CUSTOM_EVENTS)
    burst = realistic_burst(FLOOD, templates)
    for wire_event in burst:
        wire_event.json_frame()  # serialise up front (cached): the flood itself is then as fast as FreeSWITCH
    async with FreeSwitchEmulator(config) as fs:
        target = EslTarget("emulator", "127.0.0.1", fs.port, config.password, fs)
        model = CallModel()
        received = ended = 0
        async with FreeSwitchNode(target.node_settings()) as node:
            events = node.events()
            first = await anext(events)
            assert isinstance(first, ChannelsResync)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(flood(fs, burst))
                async with asyncio.timeout(30):
                    async for event in events:
                        assert isinstance(event, Event), event  # a ChannelsResync would mean a reconnect
                        ended += sum(isinstance(c, CallEnded) for c in model.apply(node.name, event))
                        received += 1
                        if received == FLOOD:
                            break
            assert fs.connections == 1  # still the first connection: never dropped
            assert node.connects == 1
            assert node.overflows == 0
    assert received == FLOOD
    assert ended >= FLOOD // len(templates) - 1  # every replayed call really went through the model
