"""A CDR write that fails for real (the SQLite file locked by another process's transaction) is retried with
capped backoff until it lands, and is surfaced meanwhile: log, ``switchyard_cdr_write_failures_total``, and
``/readyz`` answers 503 with ``cdr_writes``. Nothing is dropped: once the lock goes, the row is there."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from tests.controllerkit import running_controller, until
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator

ROUTES = [{"destination": "^9196$", "action": "echo"}]
CDR = {"busy_timeout_s": 0.05, "retry_initial_s": 0.02, "retry_max_s": 0.2, "surface_after": 3}


async def test_a_locked_database_is_retried_surfaced_and_nothing_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "switchyard.cdr")
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, calls={"routes": ROUTES}, cdr=CDR) as rc,
    ):
        blocker = sqlite3.connect(tmp_path / "cdrs.sqlite3", isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
            uuid = await fs.inject_inbound_call(caller="1000", destination="9196")
            await until(lambda: not rc.controller.cdrs.health().ok, "writes failing")
            async with rc.http.get(rc.base + "/readyz") as response:
                status, failing = response.status, await response.json()
            async with rc.http.get(rc.base + "/metrics") as response:
                metrics = await response.text()
            await fs.caller_hangup(uuid)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await rc.call_ended(uuid)
        await until(lambda: rc.controller.cdrs.health().ok, "writes land again")
        async with rc.http.get(rc.base + "/readyz") as response:
            recovered = response.status
        record = await rc.controller.store.get(uuid)
    assert status == 503
    assert failing["ready"] is False
    assert failing["cdr_writes"]["pending"] >= 1
    assert "locked" in failing["cdr_writes"]["error"]
    assert 'switchyard_cdr_write_failures_total{op="begin"} 1.0' in metrics
    assert any("keeps failing" in r.getMessage() for r in caplog.records)
    assert recovered == 200
    assert record is not None
    assert record.status == "closed"
    assert record.caller == "1000"
    assert record.hangup_cause == "NORMAL_CLEARING"
