"""FreeSWITCH restarts under the controller: reconnect, resync, and a call model that matches again."""

from __future__ import annotations

import asyncio
import uuid

from controller.calls.model import CallModel
from controller.freeswitch.events import ChannelsResync, Event
from controller.freeswitch.node import FreeSwitchNode
from tests.fsemu import FreeSwitchEmulator
from tests.integration.conftest import EslTarget


class Follower:
    """Applies a node's events to a call model in the background, counting resyncs."""

    def __init__(self, node: FreeSwitchNode) -> None:
        self.node = node
        self.model = CallModel()
        self.resyncs = 0
        self.events = 0
        self.changed = asyncio.Event()

    async def run(self) -> None:
        async for event in self.node.events():
            self.model.apply(self.node.name, event)
            if isinstance(event, ChannelsResync):
                self.resyncs += 1
            elif isinstance(event, Event):
                self.events += 1
            self.changed.set()

    async def wait_for(self, predicate: object, timeout: float) -> None:
        assert callable(predicate)
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def test_restart_reconnects_and_resyncs_live_channels(emulator: FreeSwitchEmulator) -> None:
    target = EslTarget("emulator", "127.0.0.1", emulator.port, emulator.config.password, emulator)
    # The node's own resync reads the table as it is; the lag (a channel created just before the connect is
    # listed late) is the controller's to cover (controller/calls/snapshot.py, test_restart_adopt.py).
    emulator.coredb.lag = 0.0
    kept, lost = str(uuid.uuid4()), str(uuid.uuid4())
    async with FreeSwitchNode(target.node_settings()) as node:
        follower = Follower(node)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(follower.run())
            await node.wait_connected(5)
            for call in (kept, lost):
                await node.bgapi(f"originate {{origination_uuid={call}}}loopback/7101/default &park()")
            await follower.wait_for(lambda: len(follower.model.channels) == 4, 5)
            assert set(follower.model.channels) == set(emulator.channels)

            await emulator.stop()  # FreeSWITCH goes away; its channels stay up (emulator keeps state)
            await emulator.caller_hangup(lost)  # ... one call ends while we are not listening
            appeared = await emulator.inject_inbound_call(caller="1000", destination="7102")
            await emulator.start()

            await follower.wait_for(lambda: follower.resyncs == 2, 10)
            assert node.connects == 2
            assert set(follower.model.channels) == set(emulator.channels)
            assert lost not in follower.model.channels
            assert kept in follower.model.channels
            assert appeared in follower.model.channels
            assert follower.model.channels[appeared].parked

            await node.api(f"uuid_kill {kept}")  # events flow again on the new connection
            await follower.wait_for(lambda: kept not in follower.model.channels, 5)
            await node.aclose()
            await task
