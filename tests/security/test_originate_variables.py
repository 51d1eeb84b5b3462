"""Issue 17, attack 2: root command execution (file writes, caller-id forgery) through originate variables.

``POST /v1/calls`` with ``{"variables": {"execute_on_answer": "system:/usr/bin/id"}}`` used to be sent as
``originate {execute_on_answer=system:/usr/bin/id}loopback/...``, and FreeSWITCH ran ``system()`` on its
host when the leg answered. Variables are now an allowlist (controller.calls.variables): each request below
is a 422 naming ``variables.<name>``, and no originate reaches FreeSWITCH (the call model sees no leg).
The same scenarios run against the real FreeSWITCH (``-m live``, the live rig).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from controller.settings import Settings
from tests.controllerkit import RunningController, controller_settings, running_controller
from tests.fsemu import FreeSwitchEmulator
from tests.integration.conftest import EslTarget

ATTACKS = {
    "execute_on_answer": "system:/usr/bin/id",
    "execute_on_originate": "system:/usr/bin/id",
    "execute_on_pre_answer": "system:/usr/bin/id",
    "api_on_answer": "system",
    "record_stereo": "true",
    "sip_h_x_asserted": "sip:+15550100@evil.example",
}
"""One variable per family; ``record_session:<path>`` as a value is the ``execute_on_answer`` case."""


async def _originate(rc: RunningController, extension: str, variables: dict[str, str]) -> tuple[int, Any]:
    body = {"target": "extension", "destination": extension, "variables": variables}
    async with rc.http.post(f"{rc.base}/v1/calls", json=body) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("name", sorted(ATTACKS))
async def test_dangerous_variable_is_refused_before_freeswitch(
    name: str, esl_target: EslTarget, tmp_path: Path
) -> None:
    target = esl_target.address
    async with running_controller(target, tmp_path, calls={"context": esl_target.context}) as rc:
        sent_us = int(time.time() * 1e6)
        status, body = await _originate(rc, esl_target.tone_extension, {name: ATTACKS[name]})
        await asyncio.sleep(0.3)  # an originate that got through would have made a leg by now
        # Only calls created since (an event's exact time; a resynced leg's is floored to its second):
        # a real server may still list an earlier test's leg for a moment after it ended.
        new = {c.id for c in rc.controller.model.calls.values() if c.created_us >= sent_us}
    assert status == 422, body
    assert body["error"]["field"] == f"variables.{name}"
    assert new == set()


async def test_record_session_value_is_refused(emulator: FreeSwitchEmulator, tmp_path: Path) -> None:
    async with running_controller(emulator, tmp_path, calls={"context": "default"}) as rc:
        status, body = await _originate(rc, "7101", {"execute_on_answer": "record_session:/etc/cron.d/x"})
    assert status == 422
    assert body["error"]["field"] == "variables.execute_on_answer"


async def test_a_named_variable_can_be_allowed(emulator: FreeSwitchEmulator, tmp_path: Path) -> None:
    calls = {"context": "default", "api_variables": ["sip_h_x_ticket"]}
    async with running_controller(emulator, tmp_path, calls=calls) as rc:
        allowed = await _originate(rc, "7101", {"sip_h_x_ticket": "T-42", "ignore_early_media": "true"})
        other = await _originate(rc, "7101", {"sip_h_x_other": "1"})
    assert allowed[0] == 201, allowed[1]
    assert other[0] == 422
    assert other[1]["error"]["field"] == "variables.sip_h_x_other"


@pytest.mark.parametrize("name", ["sip_h_*", "execute_on_.*", "SIP_H_X", ""])
def test_settings_take_exact_names_only(name: str, tmp_path: Path) -> None:
    data = controller_settings(("127.0.0.1", 8021, "secret-secret"), tmp_path)
    data["calls"]["api_variables"] = [name]
    with pytest.raises(ValueError, match="api_variables"):
        Settings.model_validate(data)
