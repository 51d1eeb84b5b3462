"""Call control through the API, on the emulator and (``-m live``) on a real FreeSWITCH.

Only API responses, the call model and CDRs are asserted, so the same scenario proves the real server:
calls are originated to the tone extension (``loopback/<ext>``: answers and plays a tone), then acted on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.controllerkit import RunningController, running_controller
from tests.integration.conftest import EslTarget


async def _post(rc: RunningController, path: str, body: Any = None) -> tuple[int, Any]:
    async with rc.http.post(f"{rc.base}{path}", json=body) as resp:
        return resp.status, await resp.json()


async def _originate(rc: RunningController, extension: str) -> str:
    status, body = await _post(rc, "/v1/calls", {"target": "extension", "destination": extension})
    assert status == 201, body
    call_id: str = body["call_id"]
    return call_id


async def test_originate_dtmf_play_hangup_cdr(esl_target: EslTarget, tmp_path: Path) -> None:
    target = esl_target.address
    async with running_controller(target, tmp_path, calls={"context": esl_target.context}) as rc:
        call_id = await _originate(rc, esl_target.tone_extension)
        dtmf = await _post(rc, f"/v1/calls/{call_id}/dtmf", {"digits": "5"})
        play = await _post(rc, f"/v1/calls/{call_id}/play", {"file": "tone_stream://%(100,0,350)"})
        hangup = await _post(rc, f"/v1/calls/{call_id}/hangup", {"cause": "NORMAL_CLEARING"})
        await rc.call_ended(call_id, timeout=10)
        twice = await _post(rc, f"/v1/calls/{call_id}/hangup", {})
        record = await rc.controller.store.get(call_id)
    assert dtmf[0] == 200
    assert play[0] == 200
    assert play[1]["result"] in ("playing", "queued")
    assert hangup[0] == 200
    assert twice[0] == 409
    assert record is not None
    assert record.disposition == "answered"
    assert record.hangup_cause == "NORMAL_CLEARING"


async def test_bridge_two_originated_calls(esl_target: EslTarget, tmp_path: Path) -> None:
    target = esl_target.address
    async with running_controller(target, tmp_path, calls={"context": esl_target.context}) as rc:
        a = await _originate(rc, esl_target.tone_extension)
        b = await _originate(rc, esl_target.tone_extension)
        bridged = await _post(rc, f"/v1/calls/{a}/bridge", {"other": b})
        ch = rc.controller.model.channel(a)
        bridged_to = ch.bridged_to if ch is not None else ""
        await _post(rc, f"/v1/calls/{a}/hangup", {})
        await rc.call_ended(a, timeout=10)
    assert bridged[0] == 200
    assert bridged_to == b
