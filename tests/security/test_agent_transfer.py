"""Issue 17, attack 1: agent-driven toll fraud ("transfer me to 1 900 ...").

The agent's transfer tool accepted any number and the controller ran ``uuid_transfer <uuid> <number>`` in
the caller's context, which also held the trunks' outbound rules, so the call was bridged out through the
trunk. Now the controller refuses a destination that is neither a directory user, a route's destination
nor one of the agent's ``transfers`` patterns (logged, ``extra.transfer_refused`` in the CDR, the caller
stays with the agent), and an allowed transfer runs in the agent dialing class, which has no trunk rule
(controller.calls.contexts). On the live rig the trunk ``pstn`` (tests/live/switchyard.yaml) has a rule
for 1900 numbers: the refused transfer never reaches its gateway.

Besides patterns, an agent's ``transfers`` may name a route (``route:<name>``); a name that is no route
(or a reject route) is a settings error at load and at reload. The worker's own refusals
(test_worker_transfer.py) reach the CDR as a ``refused`` message, which the controller only notes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from controller.calls.playback import MAX_NOTED
from controller.settings import SettingsError, load_settings
from tests.controllerkit import (
    RunningController,
    StandInSession,
    StandInWorker,
    register_worker,
    running_controller,
    until,
)
from tests.fsemu import FreeSwitchEmulator
from tests.integration.conftest import EslTarget

DEADLINE_S = 10.0
PREMIUM = "19005550100"  # the live rig's trunk rule matches it (tests/live/switchyard.yaml)
ECHO = "9196"  # a route of the controller under test and of the rig's rendered dialplan


async def _agent_leg(rc: RunningController, call_id: str) -> dict[str, str]:
    async with rc.http.get(f"{rc.base}/v1/calls/{call_id}") as resp:
        legs = (await resp.json())["legs"]
    streaming = [leg for leg in legs if leg["audio_stream"] not in ("", "none")]
    return streaming[0] if streaming else {}


async def _streaming_leg(rc: RunningController, call_id: str) -> dict[str, str]:
    """The leg streaming to the agent, once the API shows it."""
    async with asyncio.timeout(DEADLINE_S):
        while not (leg := await _agent_leg(rc, call_id)):  # noqa: ASYNC110 - polls the API
            await asyncio.sleep(0.02)
    return leg


async def _ask_transfer(session: StandInSession, destination: str) -> None:
    assert session.ws is not None
    await session.ws.send_str(json.dumps({"type": "action", "action": "transfer", "argument": destination}))


def _routes(esl_target: EslTarget) -> list[dict[str, str]]:
    return [
        {"destination": f"^{esl_target.park_extension}$", "action": "agent support"},
        {"destination": f"^{ECHO}$", "action": "echo"},
    ]


async def test_agent_transfer_to_a_premium_number_is_refused(esl_target: EslTarget, tmp_path: Path) -> None:
    target = esl_target.address
    calls = {"routes": _routes(esl_target), "context": esl_target.context}
    async with (
        StandInWorker(None, host=esl_target.worker_host) as worker,
        running_controller(target, tmp_path, calls=calls) as rc,
    ):
        await register_worker(rc, "w1", worker.url)
        body = {"target": "extension", "destination": esl_target.park_extension}
        async with rc.http.post(f"{rc.base}/v1/calls", json=body) as resp:
            assert resp.status == 201, await resp.text()
            call_id = (await resp.json())["call_id"]
        await until(lambda: call_id in worker.sessions, "the agent stream reached the worker")
        leg = await _streaming_leg(rc, call_id)
        await _ask_transfer(worker.sessions[call_id], PREMIUM)
        await asyncio.sleep(1.0)  # a transfer that got through would have stopped the stream by now
        after = await _agent_leg(rc, call_id)
        assert after.get("uuid") == leg["uuid"], "the call left the agent"
        async with rc.http.post(f"{rc.base}/v1/calls/{call_id}/hangup", json={}) as resp:
            assert resp.status == 200
        await rc.call_ended(call_id, timeout=10)
        record = await rc.controller.store.get(call_id)
    assert after["destination_number"] == esl_target.park_extension
    assert record is not None
    assert record.extra.get("transfer_refused") == PREMIUM
    assert record.hangup_cause == "NORMAL_CLEARING"


async def test_allowed_agent_transfer_runs_in_the_agent_class(esl_target: EslTarget, tmp_path: Path) -> None:
    target = esl_target.address
    calls = {"routes": _routes(esl_target), "context": esl_target.context}
    async with (
        StandInWorker(None, host=esl_target.worker_host) as worker,
        running_controller(target, tmp_path, calls=calls) as rc,
    ):
        await register_worker(rc, "w1", worker.url)
        body = {"target": "extension", "destination": esl_target.park_extension}
        async with rc.http.post(f"{rc.base}/v1/calls", json=body) as resp:
            assert resp.status == 201, await resp.text()
            call_id = (await resp.json())["call_id"]
        await until(lambda: call_id in worker.sessions, "the agent stream reached the worker")
        leg = (await _streaming_leg(rc, call_id))["uuid"]
        await _ask_transfer(worker.sessions[call_id], ECHO)

        def transferred() -> bool:
            ch = rc.controller.model.channel(leg)
            return ch is not None and ch.destination_number == ECHO

        await until(transferred, "the leg was transferred to the echo route")
        ch = rc.controller.model.channel(leg)
        context = ch.context if ch is not None else ""
        async with rc.http.post(f"{rc.base}/v1/calls/{call_id}/hangup", json={}) as resp:
            assert resp.status == 200
        await rc.call_ended(call_id, timeout=10)
    assert context == f"{esl_target.context}-agent"  # controller.calls.contexts: routes only, no trunk


async def test_the_agent_class_cannot_reach_a_trunk(esl_target: EslTarget, tmp_path: Path) -> None:
    """The dialplan fence alone: a premium number sent into the agent class (here through the API, past
    the controller's check) finds no trunk rule; no leg to a gateway is ever made."""
    target = esl_target.address
    calls = {"routes": _routes(esl_target), "context": esl_target.context}
    async with (
        StandInWorker(None, host=esl_target.worker_host) as worker,
        running_controller(target, tmp_path, calls=calls) as rc,
    ):
        await register_worker(rc, "w1", worker.url)
        body = {"target": "extension", "destination": esl_target.park_extension}
        async with rc.http.post(f"{rc.base}/v1/calls", json=body) as resp:
            assert resp.status == 201, await resp.text()
            call_id = (await resp.json())["call_id"]
        await until(lambda: call_id in worker.sessions, "the agent stream reached the worker")
        leg = (await _streaming_leg(rc, call_id))["uuid"]
        transfer = {"leg": leg, "destination": PREMIUM, "context": f"{esl_target.context}-agent"}
        async with rc.http.post(f"{rc.base}/v1/calls/{call_id}/transfer", json=transfer) as resp:
            transferred = resp.status
        await asyncio.sleep(1.0)
        names = [ch.name for ch in rc.controller.model.channels.values()]
        async with rc.http.post(f"{rc.base}/v1/calls/{call_id}/hangup", json={}):
            pass  # the unrouted extension may have hung the call up already (then 409)
        await rc.call_ended(call_id, timeout=10)
        record = await rc.controller.store.get(call_id)
    assert transferred == 200
    assert record is not None
    assert not [n for n in names if "gateway" in n]
    assert not [leg.name for leg in record.legs if "gateway" in leg.name]


async def _agent_call(rc: RunningController, worker: StandInWorker, esl_target: EslTarget) -> tuple[str, str]:
    """A call streaming to the stand-in worker: (call id, the agent leg's uuid)."""
    await register_worker(rc, "w1", worker.url)
    body = {"target": "extension", "destination": esl_target.park_extension}
    async with rc.http.post(f"{rc.base}/v1/calls", json=body) as resp:
        assert resp.status == 201, await resp.text()
        call_id = (await resp.json())["call_id"]
    await until(lambda: call_id in worker.sessions, "the agent stream reached the worker")
    return call_id, (await _streaming_leg(rc, call_id))["uuid"]


async def _hang_up(rc: RunningController, call_id: str) -> dict[str, str]:
    """Hang the call up; its CDR's ``extra`` (the notes are strings)."""
    async with rc.http.post(f"{rc.base}/v1/calls/{call_id}/hangup", json={}) as resp:
        assert resp.status == 200
    await rc.call_ended(call_id, timeout=10)
    record = await rc.controller.store.get(call_id)
    assert record is not None
    return {name: str(value) for name, value in record.extra.items()}


async def test_a_worker_refusal_is_noted_and_nothing_else(esl_target: EslTarget, tmp_path: Path) -> None:
    """The worker's ``refused`` is untrusted: the controller notes it (CDR, log) and does nothing with
    it; a malformed one is not noted, and a flood is noted MAX_NOTED times, not more."""
    calls = {"routes": _routes(esl_target), "context": esl_target.context}
    async with (
        StandInWorker(None, host=esl_target.worker_host) as worker,
        running_controller(esl_target.address, tmp_path, calls=calls) as rc,
    ):
        call_id, leg = await _agent_call(rc, worker, esl_target)
        ws = worker.sessions[call_id].ws
        assert ws is not None
        refused = {"type": "refused", "action": "transfer", "argument": PREMIUM, "reason": "not_in_transfers"}
        await ws.send_str(json.dumps(refused))
        await ws.send_str(json.dumps({**refused, "argument": "1 900 555"}))  # a space: malformed
        await ws.send_str(json.dumps({**refused, "action": "hangup"}))  # nothing else is refused
        for n in range(MAX_NOTED + 4):
            await ws.send_str(json.dumps({**refused, "argument": f"1900555{n:04d}"}))
        await asyncio.sleep(1.0)  # had the controller acted on it, the stream would be gone by now
        after = (await _agent_leg(rc, call_id)).get("uuid", "")
        extra = await _hang_up(rc, call_id)
    assert after == leg, "the call left the agent"
    noted = extra["transfer_refused"].split(" ")
    assert noted[0] == PREMIUM
    assert noted[1:] == [f"1900555{n:04d}" for n in range(MAX_NOTED - 1)]
    assert extra["transfer_refused_by"].split(" ") == ["worker"] * MAX_NOTED


async def test_a_named_route_allows_its_destinations(esl_target: EslTarget, tmp_path: Path) -> None:
    """``transfers: [route:echo]``: the echo route's destination is allowed, a premium number is not
    (refused by the controller, which the CDR says)."""
    routes = _routes(esl_target)
    routes[1] = {**routes[1], "name": "echo"}
    calls = {"routes": routes, "context": esl_target.context}
    agents = [{"name": "support", "transfers": ["route:echo"]}]
    async with (
        StandInWorker(None, host=esl_target.worker_host) as worker,
        running_controller(esl_target.address, tmp_path, calls=calls, agents=agents) as rc,
    ):
        call_id, leg = await _agent_call(rc, worker, esl_target)
        await _ask_transfer(worker.sessions[call_id], PREMIUM)
        await _ask_transfer(worker.sessions[call_id], ECHO)

        def transferred() -> bool:
            ch = rc.controller.model.channel(leg)
            return ch is not None and ch.destination_number == ECHO

        await until(transferred, "the leg was transferred to the echo route")
        ch = rc.controller.model.channel(leg)
        context = ch.context if ch is not None else ""
        extra = await _hang_up(rc, call_id)
    assert context == f"{esl_target.context}-agent"
    assert extra["transfer_refused"] == PREMIUM
    assert extra["transfer_refused_by"] == "controller"


def _settings_file(tmp_path: Path, transfers: list[str], echo_action: str = "echo") -> Path:
    routes = [
        {"destination": "^7000$", "action": "agent support"},
        {"name": "echo", "destination": "^9196$", "action": echo_action},
    ]
    data = {
        "freeswitch": {"fs1": {"password": "a-password-for-the-test"}},
        "calls": {"routes": routes},
        "agents": [{"name": "support", "transfers": transfers}],
    }
    path = tmp_path / "switchyard.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def test_a_transfer_entry_must_name_a_route_that_is_not_a_reject(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"agents\.0\.transfers\.1: route:desks names no route"):
        load_settings({}, _settings_file(tmp_path, ["1[0-9]{3}", "route:desks"]))
    with pytest.raises(SettingsError, match=r"agents\.0\.transfers\.0: route:echo names a reject route"):
        load_settings({}, _settings_file(tmp_path, ["route:echo"], "reject CALL_REJECTED"))
    settings = load_settings({}, _settings_file(tmp_path, ["route:echo"]))
    assert settings.agents[0].transfers == ("route:echo",)


async def test_a_reload_that_drops_a_named_route_keeps_the_old_table(
    emulator: FreeSwitchEmulator, tmp_path: Path
) -> None:
    routes = [
        {"destination": "^7102$", "action": "agent support"},
        {"name": "echo", "destination": "^9196$", "action": "echo"},
    ]
    agents = [{"name": "support", "transfers": ["route:echo"]}]
    async with running_controller(emulator, tmp_path, calls={"routes": routes}, agents=agents) as rc:
        before = rc.controller.route_table()
        rc.settings["calls"]["routes"] = [routes[0], {**routes[1], "name": "other"}]
        with pytest.raises(SettingsError, match="route:echo names no route"):
            rc.controller.reload_routes()
        assert rc.controller.route_table() is before
