"""A Janus restart re-adds the browsers' tokens (issue 18 item 3): the real Janus (Debian's) forgets every
token when it stops (src/auth.c keeps them in memory); the controller's adapter reconnects and adds the
live browser identities' tokens again, so a browser session minted before the restart still opens a Janus
session after it. Janus is stopped and started again by the PID this test started (``tests/januskit.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.controllerkit import running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.integration.test_janus_adapter import eventually
from tests.integration.test_webrtc_session import janus_create, janus_settings
from tests.januskit import requires_janus, running_janus

pytestmark = [requires_janus]

RESTORE_DEADLINE_S = 5.0  # after Janus answers again: a reconnect (backoff up to 0.5 s) and the Admin calls
FAST: dict[str, Any] = {
    "keepalive_s": 0.5,
    "request_timeout_s": 2.0,
    "connect_timeout_s": 3.0,
    "backoff": {"initial": 0.1, "maximum": 0.5, "quick_failure": 0},
}


async def test_browser_tokens_work_again_after_a_janus_restart(tmp_path: Path) -> None:
    async with (
        running_janus(tmp_path / "janus") as janus,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, janus={**janus_settings(janus, 120), **FAST}) as rc,
    ):
        adapter = rc.controller.janus
        assert adapter is not None
        await adapter.wait_healthy(10)
        tokens = []
        for name in ("Ann", "Bob"):
            async with rc.http.post(rc.base + "/v1/webrtc/session", json={"display_name": name}) as response:
                assert response.status == 201, await response.text()
                tokens.append((await response.json())["janus_token"])
        for token in tokens:
            assert (await janus_create(janus, token))["janus"] == "success"

        await janus.stop()  # SIGTERM by PID: Janus forgets every session and token
        await adapter.wait_unhealthy(5)
        await janus.start()  # same ports, same configuration
        started = time.monotonic()

        async def all_accepted() -> bool:
            replies = [await janus_create(janus, token) for token in tokens]
            return all(reply["janus"] == "success" for reply in replies)

        await eventually(all_accepted, RESTORE_DEADLINE_S, "the browser tokens accepted again")
        restored_after = time.monotonic() - started
        assert adapter.connects == 2
        assert (await janus_create(janus, "never-minted"))["error"]["code"] == 403  # token auth is on
    print(f"\nbrowser tokens accepted {restored_after * 1000:.0f} ms after Janus answered again")
