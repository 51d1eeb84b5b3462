"""The emulator replays the scenarios recorded from a real FreeSWITCH (tests/fixtures/live/*.txt).

Each capture was written by ``python -m tests.live.capture tests/fixtures/live``
(tests/fsemu/drift_scenarios.py) against FreeSWITCH 1.10.12 + mod_audio_stream ec2a781; here the same
scenario runs on a fresh emulator and its transcript must equal the capture (tests/fsemu/transcript.py
``compare``: commands, replies byte for byte after normalisation, every leg's events in order with their
details and bodies, the header names of the marked events, what the worker saw). Timings are asserted by
the live twins (test_live_drift.py).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.drift_scenarios import SCENARIOS, DriftTarget, run_scenario
from tests.fsemu.server import REAL_TABLE_LAG
from tests.fsemu.transcript import Transcript, compare

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "live"


def test_every_scenario_has_a_capture() -> None:
    assert sorted(p.stem for p in CAPTURES.glob("*.txt")) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_emulator_matches_the_capture(name: str, tmp_path: Path) -> None:
    want = Transcript.parse((CAPTURES / f"{name}.txt").read_text())
    # With the real server's core-database lag (show_json.txt lists no row right after originate).
    config = EmulatorConfig(
        password=secrets.token_hex(8), temp_dir=tmp_path, channel_table_lag=REAL_TABLE_LAG
    )
    async with FreeSwitchEmulator(config) as fs:
        got = await run_scenario(name, DriftTarget("127.0.0.1", fs.port, config.password))
    problems = compare(want, got)
    assert not problems, "\n".join(problems) + "\n--- emulator transcript ---\n" + got.render()
