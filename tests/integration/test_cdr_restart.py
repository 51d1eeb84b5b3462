"""No CDR lost across a controller restart: calls that ended while it was down are closed, marked as such.

The open row is written when a call starts. The first controller stops while two calls are up; one of them
ends while no controller runs. The second controller (same database) resyncs: the ended call's row is closed
``closed_while_down`` with disposition ``lost``; the surviving call is adopted and closed normally later.
"""

from __future__ import annotations

from pathlib import Path

from tests.controllerkit import running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.server import REAL_TABLE_LAG

ROUTES = [{"destination": "^9196$", "action": "echo"}]


async def test_calls_ended_while_down_are_closed_on_restart(tmp_path: Path) -> None:
    # The core database lags like the real one: a restart within the lag must not close a live call's row.
    async with FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path, channel_table_lag=REAL_TABLE_LAG)) as fs:
        async with running_controller(fs, tmp_path, calls={"routes": ROUTES}) as first:
            gone = await fs.inject_inbound_call(caller="1000", destination="9196")
            kept = await fs.inject_inbound_call(caller="1001", destination="9196")
            await fs.wait_for(lambda: len(first.controller.model.calls) == 2)
            await first.controller.cdrs.flush()
            before = await first.controller.store.get(gone)
        await fs.caller_hangup(gone)
        await fs.wait_for(lambda: gone not in fs.channels or not fs.channels[gone].alive)
        async with running_controller(fs, tmp_path, calls={"routes": ROUTES}) as second:
            await second.call_ended(gone)
            closed = await second.controller.store.get(gone)
            still_open = await second.controller.store.get(kept)
            await fs.caller_hangup(kept)
            await second.call_ended(kept)
            after = await second.controller.store.get(kept)
    assert before is not None
    assert before.status == "open"
    assert before.caller == "1000"
    assert closed is not None
    assert closed.status == "closed"
    assert closed.closed_while_down is True
    assert closed.disposition == "lost"
    assert closed.caller == "1000"
    assert still_open is not None
    assert still_open.status == "open"
    assert after is not None
    assert after.closed_while_down is False
    assert after.hangup_cause == "NORMAL_CLEARING"
    assert after.caller == "1001"
