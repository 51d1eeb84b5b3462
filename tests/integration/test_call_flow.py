"""The main call flow through the whole controller, against the FreeSWITCH emulator.

Inbound SIP call → CHANNEL_PARK → route ``agent`` → answer → stream to the worker stand-in (a real WebSocket
server) → its speech is broadcast in order → barge-in breaks playback and drops the queue → caller hangs up
→ CDR row. Also: reject by route and by unknown destination, echo, route reload.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.controllerkit import StandInSession, StandInWorker, register_worker, running_controller, speak
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.wire import Event

ROUTES = [
    {"destination": "^7(1\\d\\d)$", "action": "agent support", "language": "en"},
    {"destination": "^8000$", "action": "reject CALL_REJECTED"},
    {"destination": "^9196$", "action": "echo"},
]


def _named(events: list[Event], name: str, uuid: str) -> list[Event]:
    return [e for e in events if e.name == name and e.get("Unique-ID") == uuid]


def _apis(events: list[Event], command: str) -> list[str]:
    return [
        e.get("API-Command-Argument") or ""
        for e in events
        if e.name == "API" and e.get("API-Command") == command
    ]


async def _three_chunks(session: StandInSession) -> None:
    for _ in range(3):
        await speak(session, 0.6)


async def test_agent_route_plays_in_order_barges_in_and_writes_cdr(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        StandInWorker(_three_chunks) as worker,
        running_controller(fs, tmp_path, calls={"routes": ROUTES}) as rc,
    ):
        await register_worker(rc, "w1", worker.url)
        events = fs.record_events()
        uuid = await fs.inject_inbound_call(caller="1000", destination="7150")
        await fs.wait_for(lambda: len(_named(events, "PLAYBACK_START", uuid)) >= 1, timeout=5)
        session = worker.sessions[uuid]
        first = _named(events, "PLAYBACK_START", uuid)[0].get("Playback-File-Path")
        await fs.wait_for(lambda: len(_apis(events, "uuid_broadcast")) == 3, timeout=5)
        await session.ws.send_str(json.dumps({"type": "barge_in"}))  # type: ignore[union-attr]
        await fs.wait_for(lambda: len(_named(events, "PLAYBACK_STOP", uuid)) >= 1, timeout=5)
        await asyncio.sleep(0.5)  # a queued file would start ~100 ms after the break
        starts = [e.get("Playback-File-Path") for e in _named(events, "PLAYBACK_START", uuid)]
        stops = [e.get("Playback-Status") for e in _named(events, "PLAYBACK_STOP", uuid)]
        await fs.caller_hangup(uuid)
        await rc.call_ended(uuid)
        record = await rc.controller.store.get(uuid)
        relayed = list(session.texts)
    assert session.metadata is not None
    assert session.metadata["call_id"] == uuid
    assert session.metadata["agent"] == "support"
    assert session.metadata["sample_rate"] == 8000  # a narrowband leg is asked at 8k
    assert session.metadata["caller"] == "1000"
    assert session.metadata["callee"] == "7150"
    broadcasts = _apis(events, "uuid_broadcast")
    assert [b.split()[1] for b in broadcasts] == [f"{tmp_path}/{uuid}_{n}.tmp.r16" for n in range(3)]
    assert all(b.endswith(" aleg") for b in broadcasts)
    assert starts == [first]
    assert (first or "").endswith("_0.tmp.r16")
    assert stops == ["break"]
    assert _apis(events, "uuid_break") == [f"{uuid} all"]
    assert {"type": "playback", "event": "start", "file": first} in [
        {k: t[k] for k in ("type", "event", "file") if k in t} for t in relayed
    ]
    assert record is not None
    assert record.status == "closed"
    assert record.disposition == "answered"
    assert record.route == "agent support"
    assert record.agent == "support"
    assert record.caller == "1000"
    assert record.callee == "7150"
    assert record.call_type == "sip"
    assert record.hangup_cause == "NORMAL_CLEARING"
    assert record.stream.worker == "w1"
    assert record.stream.attempts == 1
    assert record.stream.playbacks == 3
    assert record.stream.barge_ins == 1
    assert record.answered_at is not None
    assert record.ended_at is not None
    assert record.billsec_s > 0.5
    assert record.duration_s >= record.billsec_s
    assert [leg.uuid for leg in record.legs] == [uuid]


async def test_agent_route_without_worker_falls_back_to_reject(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, calls={"routes": ROUTES}) as rc,
    ):
        uuid = await fs.inject_inbound_call(destination="7102")
        await rc.call_ended(uuid)
        record = await rc.controller.store.get(uuid)
    assert record is not None
    assert record.hangup_cause == "NORMAL_TEMPORARY_FAILURE"
    assert record.route == "agent support"


async def test_a_call_waits_for_a_worker_to_heartbeat_in(tmp_path: Path) -> None:
    """A restarted controller knows no worker until their next beats: an agent call arriving first waits
    (``worker_pool.wait_s``) and streams to the first worker that beats, instead of falling back."""
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        StandInWorker() as worker,
        running_controller(fs, tmp_path, calls={"routes": ROUTES}, worker_pool={"wait_s": 3}) as rc,
    ):
        events = fs.record_events()
        uuid = await fs.inject_inbound_call(destination="7150")
        await fs.wait_for(lambda: bool(_apis(events, "uuid_answer")), timeout=5)
        await asyncio.sleep(1.0)  # a heartbeat interval with no worker in the pool
        await register_worker(rc, "w1", worker.url)
        await fs.wait_for(lambda: uuid in worker.sessions, timeout=5)
        await fs.caller_hangup(uuid)
        await rc.call_ended(uuid)
        record = await rc.controller.store.get(uuid)
    assert _apis(events, "uuid_kill") == []
    assert record is not None
    assert record.disposition == "answered"
    assert record.stream.worker == "w1"
    assert record.stream.attempts == 1


@pytest.mark.parametrize(
    ("destination", "cause", "disposition"),
    [("8000", "CALL_REJECTED", "rejected"), ("5555", "UNALLOCATED_NUMBER", "rejected")],
)
async def test_reject_routes(tmp_path: Path, destination: str, cause: str, disposition: str) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, calls={"routes": ROUTES}) as rc,
    ):
        events = fs.record_events()
        uuid = await fs.inject_inbound_call(destination=destination)
        await rc.call_ended(uuid)
        record = await rc.controller.store.get(uuid)
    assert _apis(events, "uuid_kill") == [f"{uuid} {cause}"]
    assert _apis(events, "uuid_answer") == []
    assert record is not None
    assert record.hangup_cause == cause
    assert record.disposition == disposition
    assert record.answered_at is None
    assert record.billsec_s == 0


async def test_reload_changes_new_calls_only(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, calls={"routes": ROUTES}) as rc,
    ):
        events = fs.record_events()
        bad = dict(rc.settings["calls"])
        rc.settings["calls"] = {**bad, "routes": [{"destination": "(", "action": "echo"}]}
        async with rc.http.post(f"{rc.base}/v1/routes/reload") as resp:
            refused = (resp.status, await resp.json())
        rc.settings["calls"] = {**bad, "routes": [{"destination": "^8000$", "action": "reject USER_BUSY"}]}
        async with rc.http.post(f"{rc.base}/v1/routes/reload") as resp:
            reloaded = (resp.status, await resp.json())
        uuid = await fs.inject_inbound_call(destination="8000")
        await rc.call_ended(uuid)
    assert refused[0] == 422
    assert refused[1]["error"]["field"] == "routes"
    assert "regular expression" in refused[1]["error"]["reason"]
    assert reloaded[0] == 200
    assert reloaded[1]["routes"][0]["action"] == "reject USER_BUSY"
    assert _apis(events, "uuid_kill") == [f"{uuid} USER_BUSY"]
