"""A channel the resync lists after it hung up (FreeSWITCH's core database lags the events by up to 0.3 s,
tests/fixtures/live/show_json.txt) must not cost a worker its health.

Found by the live tier: a controller started right after another one's call ended adopted that call's leg
from ``show channels``, routed it to the agent, got ``-ERR Operation Failed`` for the stream start
(mod_audio_stream: "Error locating session") and marked the only worker suspect, so the next real call was
rejected. The start now asks ``uuid_exists`` when it is refused: a leg that is gone blames no worker. And
the resync now reads each listed channel from its session (``uuid_dump``, controller/calls/snapshot.py):
the ghost's "no such channel" keeps it out of the call model altogether.
"""

from __future__ import annotations

from pathlib import Path

from tests.controllerkit import StandInWorker, register_worker, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator

ROUTES = [{"destination": "^7150$", "action": "agent support"}]
LAG_S = 1.0  # longer than the real lag, so the ghost is surely in the new controller's resync


def _listed(fs: FreeSwitchEmulator, uuid: str, callstate: str = "") -> bool:
    rows = fs.coredb.channel_rows()
    return any(row["uuid"] == uuid and callstate in ("", row["callstate"]) for row in rows)


async def test_a_ghost_from_the_resync_blames_no_worker(tmp_path: Path) -> None:
    config = EmulatorConfig(temp_dir=tmp_path, channel_table_lag=LAG_S)
    async with FreeSwitchEmulator(config) as fs, StandInWorker() as worker:
        ghost = await fs.inject_inbound_call(destination="7150")
        await fs.api.execute("uuid_answer", ghost)  # answered, as the previous controller left it
        await fs.wait_for(lambda: _listed(fs, ghost, "ACTIVE"), timeout=5)
        await fs.caller_hangup(ghost)
        async with running_controller(fs, tmp_path, calls={"routes": ROUTES}) as rc:
            await register_worker(rc, "w1", worker.url)
            await fs.wait_for(
                lambda: not any(r["uuid"] == ghost for r in fs.coredb.channel_rows()), timeout=5
            )
            call = await fs.inject_inbound_call(destination="7150")
            await fs.wait_for(lambda: call in worker.sessions, timeout=10)
            health = rc.controller.pool.count_by_state()
            adopted_ghost = rc.controller.model.channel(ghost) or rc.controller.model.ended_call(ghost)
    assert adopted_ghost is None
    assert ghost not in worker.sessions
    assert health["healthy"] == 1
    assert health["suspect"] == 0
