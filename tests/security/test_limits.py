"""Issue 17 item 6: limits. The controller's event feed took any number of subscribers (each a socket and
a 1000-event queue); now ``api.max_feed_subscribers`` are served and the next is refused with 503 before
the upgrade. (The worker's connection, idle and stream-length limits are in test_media_auth.py.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.controllerkit import running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator


async def test_the_event_feed_refuses_subscribers_beyond_its_limit(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, api={"max_feed_subscribers": 2}) as rc,
    ):
        url = f"{rc.base}/v1/events"
        first = await rc.http.ws_connect(url)
        second = await rc.http.ws_connect(url)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await rc.http.ws_connect(url)
        assert refused.value.status == 503
        await first.close()
        for _ in range(200):  # the handler unsubscribes once it sees the close
            if rc.controller.feed.subscribers < 2:
                break
            await asyncio.sleep(0.01)
        third = await rc.http.ws_connect(url)  # a freed place is given again
        await second.close()
        await third.close()
