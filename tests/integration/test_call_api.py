"""The HTTP API end to end: originate, act on calls, errors, CDR listing, event feed, health and metrics.

Calls are placed through the emulator's loopback endpoint (``target: extension``): the A-leg answers and
parks; extension 7102's B-leg parks too (no route matches it here, so the router rejects nothing: the
routes below only cover 8xxx).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllerkit import RunningController, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.wire import Event

B = "11111111-2222-3333-4444-555555555555"
ROUTES = [{"destination": "^7102$", "action": "echo"}]


async def _post(rc: RunningController, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    async with rc.http.post(f"{rc.base}{path}", json=body, **kw) as resp:
        return resp.status, await resp.json()


async def _get(rc: RunningController, path: str, **kw: Any) -> tuple[int, Any]:
    async with rc.http.get(f"{rc.base}{path}", **kw) as resp:
        return resp.status, await resp.json(content_type=None)


async def _originate(rc: RunningController, **extra: Any) -> str:
    status, body = await _post(rc, "/v1/calls", {"target": "extension", "destination": "7104", **extra})
    assert status == 201, body
    call_id: str = body["call_id"]
    return call_id


def _apis(events: list[Event], command: str) -> list[str]:
    return [
        e.get("API-Command-Argument") or ""
        for e in events
        if e.name == "API" and e.get("API-Command") == command
    ]


async def test_originate_act_and_cdr(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, calls={"routes": ROUTES}) as rc,
    ):
        events = fs.record_events()
        call_id = await _originate(rc, caller_id_number="4000")
        status, view = await _get(rc, f"/v1/calls/{call_id}")
        dtmf = await _post(rc, f"/v1/calls/{call_id}/dtmf", {"digits": "12#"})
        play = await _post(rc, f"/v1/calls/{call_id}/play", {"file": "tone_stream://%(200,0,440)"})
        parked_again = await _post(rc, f"/v1/calls/{call_id}/park", {})
        answered_again = await _post(rc, f"/v1/calls/{call_id}/answer", {})
        hangup = await _post(rc, f"/v1/calls/{call_id}/hangup", {"cause": "NORMAL_CLEARING"})
        await rc.call_ended(call_id)
        twice = await _post(rc, f"/v1/calls/{call_id}/hangup", {})
        cdr_status, cdr = await _get(rc, f"/v1/cdrs/{call_id}")
    assert status == 200
    assert view["id"] == call_id
    assert view["legs"][0]["state"] == "answered"
    assert view["legs"][0]["parked"] is True
    assert dtmf == (200, {"call_id": call_id, "leg": call_id, "result": "sent", "files": []})
    assert _apis(events, "uuid_send_dtmf") == [f"{call_id} 12#"]
    assert play[0] == 200
    assert play[1]["result"] == "playing"
    assert parked_again[0] == 409
    assert "already parked" in parked_again[1]["error"]["reason"]
    assert answered_again[0] == 409
    assert "already answered" in answered_again[1]["error"]["reason"]
    assert hangup[0] == 200
    assert hangup[1]["result"] == "hungup"
    assert twice[0] == 409
    assert twice[1]["error"]["reason"] == f"call {call_id} has ended"
    originate = _apis(events, "originate")[0]
    assert f"origination_uuid={call_id}" in originate
    assert "origination_caller_id_number=4000" in originate
    assert originate.endswith("loopback/7104/switchyard &park()")  # calls.context by default
    assert cdr_status == 200
    assert cdr["status"] == "closed"
    assert cdr["disposition"] == "answered"
    assert cdr["hangup_cause"] == "NORMAL_CLEARING"
    assert cdr["answered_at"] is not None


async def test_bridge_two_calls(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
    ):
        events = fs.record_events()
        a, b = await _originate(rc), await _originate(rc)
        self_bridge = await _post(rc, f"/v1/calls/{a}/bridge", {"other": a})
        unknown = await _post(rc, f"/v1/calls/{a}/bridge", {"other": "no-such-call"})
        bridged = await _post(rc, f"/v1/calls/{a}/bridge", {"other": b})
        _, view = await _get(rc, f"/v1/calls/{a}")
        again = await _post(rc, f"/v1/calls/{a}/bridge", {"other": b})
    assert self_bridge[0] == 409
    assert self_bridge[1]["error"]["field"] == "other"
    assert unknown[0] == 404
    assert unknown[1]["error"]["field"] == "other"
    assert bridged[0] == 200
    assert bridged[1]["result"] == "bridged"
    assert _apis(events, "uuid_bridge") == [f"{a} {b}"]
    assert b in [leg["bridged_to"] for leg in view["legs"]] + [leg["uuid"] for leg in view["legs"]]
    assert again[0] == 404  # b's legs now belong to call a (the model merges bridged calls)


async def test_errors_are_json_and_name_the_field(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
    ):
        events = fs.record_events()
        base = rc.base
        async with aiohttp.ClientSession() as anon:
            async with anon.get(f"{base}/v1/calls") as resp:
                no_token = (resp.status, await resp.json(), resp.headers.get("WWW-Authenticate"))
            async with anon.get(f"{base}/v1/calls", headers={"Authorization": "Bearer nope"}) as resp:
                bad_token = (resp.status, await resp.json())
            async with anon.get(f"{base}/healthz") as resp:
                health = resp.status
        async with rc.http.post(
            f"{base}/v1/calls", data=b"{not json", headers={"Content-Type": "application/json"}
        ) as resp:
            bad_json = (resp.status, await resp.json())
        unknown = await _post(rc, "/v1/calls/nope/hangup", {})
        bad_digits = await _post(rc, "/v1/calls/nope/dtmf", {"digits": "12x"})
        extra = await _post(rc, "/v1/calls", {"target": "user", "destination": "1001", "evil": 1})
        injection = await _post(rc, "/v1/calls", {"target": "user", "destination": "1001 &echo"})
        bad_var = await _post(
            rc, "/v1/calls", {"target": "user", "destination": "1001", "variables": {"a": "x,b=y"}}
        )
        # Regression: a variable the controller sets itself replaced its value, so the call id returned
        # (our origination_uuid) was not the uuid of the leg FreeSWITCH made.
        own = {"target": "extension", "destination": "7104", "variables": {"origination_uuid": B}}
        own_uuid = await _post(rc, "/v1/calls", own)
        no_gateway = await _post(rc, "/v1/calls", {"target": "gateway", "destination": "15551234"})
        bad_cause = await _post(rc, "/v1/calls/x/hangup", {"cause": "BECAUSE"})
        bad_cursor = await _get(rc, "/v1/cdrs?cursor=!!!")
        bad_since = await _get(rc, "/v1/cdrs?since=yesterday")
    assert no_token[0] == 401
    assert no_token[1]["error"]["field"] == "Authorization"
    assert no_token[2] == "Bearer"
    assert bad_token[0] == 401
    assert bad_token[1]["error"]["reason"] == "invalid bearer token"
    assert health == 200
    assert bad_json == (400, {"error": {"status": 400, "field": "body", "reason": "body is not valid JSON"}})
    assert unknown[0] == 404
    assert unknown[1]["error"] == {
        "status": 404,
        "field": "id",
        "reason": "no call nope",
    }
    assert bad_digits[0] == 422
    assert bad_digits[1]["error"]["field"] == "digits"
    assert extra[0] == 422
    assert extra[1]["error"]["field"] == "evil"
    assert injection[0] == 422
    assert injection[1]["error"]["field"] == "destination"
    assert bad_var[0] == 422
    assert bad_var[1]["error"]["field"] == "variables"
    assert own_uuid[0] == 422
    assert own_uuid[1]["error"]["field"] == "variables.origination_uuid"  # not an allowed variable
    assert "origination_uuid" in own_uuid[1]["error"]["reason"]
    assert no_gateway[0] == 422
    assert no_gateway[1]["error"]["field"] == "gateway"
    assert bad_cause[0] == 422
    assert bad_cause[1]["error"]["field"] == "cause"
    assert bad_cursor[0] == 422
    assert bad_cursor[1]["error"]["field"] == "cursor"
    assert bad_since[0] == 422
    assert bad_since[1]["error"]["field"] == "since"
    assert _apis(events, "originate") == []  # nothing half-done


async def test_cdr_listing_filters_pages_and_csv(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(
            fs, tmp_path, calls={"routes": [{"destination": "^8\\d+$", "action": "reject USER_BUSY"}]}
        ) as rc,
    ):
        rejected = [await fs.inject_inbound_call(caller="2000", destination=f"80{n}") for n in range(3)]
        for uuid in rejected:
            await rc.call_ended(uuid)
        answered = await _originate(rc)
        await _post(rc, f"/v1/calls/{answered}/hangup", {})
        await rc.call_ended(answered)
        _, busy = await _get(rc, "/v1/cdrs?disposition=busy&limit=2")
        _, rest = await _get(rc, f"/v1/cdrs?disposition=busy&limit=2&cursor={busy['next_cursor']}")
        _, by_number = await _get(rc, "/v1/cdrs?number=801")
        async with rc.http.get(f"{rc.base}/v1/cdrs", params={"format": "csv"}) as resp:
            csv_text, csv_type = await resp.text(), resp.headers["Content-Type"]
    listed = [r["call_id"] for r in busy["items"] + rest["items"]]
    assert sorted(listed) == sorted(rejected)
    assert len(busy["items"]) == 2
    created = [r["created_at"] for r in busy["items"] + rest["items"]]
    assert created == sorted(created, reverse=True)
    assert rest["next_cursor"] is None
    assert all(r["hangup_cause"] == "USER_BUSY" for r in busy["items"])
    assert [r["callee"] for r in by_number["items"]] == ["801"]
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert csv_type.startswith("text/csv")
    assert len(rows) == 4
    assert {r["disposition"] for r in rows} == {"busy", "answered"}


async def test_event_feed_health_metrics_openapi(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
    ):
        async with rc.http.ws_connect(f"{rc.base}/v1/events") as ws:
            call_id = await _originate(rc)
            seen: list[dict[str, Any]] = []
            async with asyncio.timeout(5):
                while not any(e["type"] == "channel_answered" and e["uuid"] == call_id for e in seen):
                    seen.append(json.loads((await ws.receive()).data))
        ready = await _get(rc, "/readyz")
        _, nodes = await _get(rc, "/v1/nodes")
        async with aiohttp.ClientSession() as anon:
            async with anon.get(f"{rc.base}/metrics") as resp:
                metrics = await resp.text()
            try:
                await anon.ws_connect(f"{rc.base}/v1/events")
                refused = 0
            except aiohttp.WSServerHandshakeError as exc:
                refused = exc.status
        _, doc = await _get(rc, "/openapi.json")
        await fs.stop()
        await asyncio.sleep(0.3)
        not_ready = await _get(rc, "/readyz")
    assert seen[0]["type"] == "call_started"
    assert seen[0]["call_id"] == call_id
    assert seen[0]["node"] == "fs1"
    assert ready == (200, {"ready": True, "nodes": {"fs1": True}})
    assert nodes["items"][0]["name"] == "fs1"
    assert nodes["items"][0]["connected"] is True
    assert "switchyard_calls_started_total 1.0" in metrics
    assert 'switchyard_esl_connected{node="fs1"} 1.0' in metrics
    assert refused == 401
    assert doc["openapi"] == "3.1.0"
    assert "/v1/calls/{id}/hangup" in doc["paths"]
    assert "OriginateBody" in doc["components"]["schemas"]
    assert not_ready[0] == 503
    assert not_ready[1]["nodes"] == {"fs1": False}
