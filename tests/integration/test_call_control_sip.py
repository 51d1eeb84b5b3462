"""Call control that needs SIP endpoints: originate to a registered user, hold, record, transfer, the
``user`` route, and ``/v1/registrations`` — through the controller's API, against the emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from controller.calls import Channel
from tests.controllerkit import RunningController, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator

ROUTES = [{"destination": "^(10\\d\\d)$", "action": "user $1"}, {"destination": "^9196$", "action": "echo"}]


async def _post(rc: RunningController, path: str, body: Any = None) -> tuple[int, Any]:
    async with rc.http.post(f"{rc.base}{path}", json=body) as resp:
        return resp.status, await resp.json()


async def test_originate_user_hold_record_transfer(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, calls={"routes": ROUTES}) as rc,
    ):
        fs.register_user("1001")
        absent = await _post(rc, "/v1/calls", {"target": "user", "destination": "1002", "timeout_s": 2})
        created = await _post(rc, "/v1/calls", {"target": "user", "destination": "1001", "timeout_s": 5})
        call_id = created[1]["call_id"]
        held = await _post(rc, f"/v1/calls/{call_id}/hold", {})
        held_twice = await _post(rc, f"/v1/calls/{call_id}/hold", {})
        unheld = await _post(rc, f"/v1/calls/{call_id}/unhold", {})
        rec = await _post(rc, f"/v1/calls/{call_id}/record", {"action": "start"})
        await asyncio.sleep(0.3)  # FreeSWITCH deletes a recording shorter than one frame
        stopped = await _post(rc, f"/v1/calls/{call_id}/record", {"action": "stop"})
        not_recording = await _post(rc, f"/v1/calls/{call_id}/record", {"action": "stop"})
        moved = await _post(rc, f"/v1/calls/{call_id}/transfer", {"destination": "9196"})
        await fs.wait_for(lambda: "echo" in _apps(rc.controller.model.channel(call_id)))
        async with rc.http.get(f"{rc.base}/v1/registrations") as resp:
            registrations = await resp.json()
        await _post(rc, f"/v1/calls/{call_id}/hangup", {})
        await rc.call_ended(call_id)
        written = await asyncio.to_thread(Path(stopped[1]["files"][0]).exists)
        record = await rc.controller.store.get(call_id)
    assert absent[0] == 409
    assert absent[1]["error"]["reason"] == "originate failed: USER_NOT_REGISTERED"
    assert created[0] == 201
    assert held == (200, {"call_id": call_id, "leg": call_id, "result": "held", "files": []})
    assert held_twice[0] == 409
    assert unheld[0] == 200
    path = rec[1]["files"][0]
    assert path.startswith(f"{tmp_path}/recordings/{call_id}/{call_id}-")
    assert stopped[1]["files"] == [path]
    assert written
    assert not_recording[0] == 409
    assert moved[0] == 200
    assert [r["user"] for r in registrations["items"]] == ["1001"]
    assert record is not None
    assert record.recording_paths == (path,)
    assert record.disposition == "answered"


async def test_user_route_rings_the_registered_phone(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, calls={"routes": ROUTES}) as rc,
    ):
        fs.register_user("1001")
        uuid = await fs.inject_inbound_call(caller="1000", destination="1001")
        await fs.wait_for(lambda: _bridged(rc.controller.model.channel(uuid)))
        call = rc.controller.model.call_of(uuid)
        legs = list(call.legs) if call else []
        await fs.caller_hangup(uuid)
        await rc.call_ended(uuid)
        record = await rc.controller.store.get(uuid)
    assert len(legs) == 2
    assert record is not None
    assert record.route == "user 1001"
    assert record.disposition == "answered"
    assert len(record.legs) == 2


def _apps(ch: Channel | None) -> list[str]:
    return [name for name, _ in ch.applications] if ch is not None else []


def _bridged(ch: Channel | None) -> bool:
    return ch is not None and bool(ch.bridged_to)
