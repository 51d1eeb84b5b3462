"""Operations metrics on ``/metrics`` of the whole controller, against the FreeSWITCH emulator.

``switchyard_sip_registrations`` follows sofia's register / unregister / expire events and is recounted from
``show registrations as json`` on every (re)connect; ``switchyard_call_duration_seconds`` observes billsec
for answered calls and time to hangup for the rest; ``switchyard_node_channels`` and ``switchyard_workers``
are read from the call model and the worker pool at scrape time.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from controller.calls import ChannelState
from tests.controllerkit import RunningController, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator

ROUTES = [
    {"destination": "^7(1\\d\\d)$", "action": "agent support"},
    {"destination": "^8000$", "action": "reject CALL_REJECTED"},
    {"destination": "^9196$", "action": "echo"},
]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(rc: RunningController) -> Samples:
    """Every sample of ``/metrics`` by (name, sorted labels)."""
    async with rc.http.get(f"{rc.base}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def until(rc: RunningController, check: Callable[[Samples], bool], timeout: float = 5.0) -> Samples:
    """Scrape until ``check`` holds (raises TimeoutError otherwise)."""
    async with asyncio.timeout(timeout):
        while True:
            samples = await scrape(rc)
            if check(samples):
                return samples
            await asyncio.sleep(0.02)


def registrations(samples: Samples) -> float | None:
    return value(samples, "switchyard_sip_registrations", node="fs1", profile="internal")


def fast_node(fs: FreeSwitchEmulator) -> dict[str, Any]:
    """The emulator node with a quick reconnect (the default first backoff is 0.2 s)."""
    backoff = {"initial": 0.05, "maximum": 0.2, "quick_failure": 0}
    node = {"host": "127.0.0.1", "port": fs.port, "password": fs.config.password, "keepalive": 0}
    return {"fs1": {**node, "backoff": backoff}}


async def test_sip_registrations_follow_sofia_events_and_recount_on_reconnect(tmp_path: Path) -> None:
    async with FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
        fs.register_user("1001", expires=300)  # before the controller connects: only the recount sees it
        async with running_controller(fs, tmp_path, freeswitch=fast_node(fs)) as rc:
            fired = fs.record_events()
            at_start = await until(rc, lambda s: registrations(s) == 1)
            fs.register_user("1002", call_id="reg-1002@127.0.0.1")
            await until(rc, lambda s: registrations(s) == 2)
            fs.register_user("1002", call_id="reg-1002@127.0.0.1")  # refresh: same Call-ID
            fs.unregister_user("1001")
            await until(rc, lambda s: registrations(s) == 1)  # a double-counted refresh would stop at 2
            fs.expire_user("1002")
            await until(rc, lambda s: registrations(s) == 0)

            fs.register_user("1003")
            fs.register_user("1004")
            await until(rc, lambda s: registrations(s) == 2)
            await fs.stop()
            fs.unregister_user("1003")  # nobody listens: the event is lost
            await fs.start()
            after_reconnect = await until(rc, lambda s: registrations(s) == 1)
            recounts = rc.controller.registrations.recounts
            connects = rc.controller.nodes["fs1"].connects
            fs.register_user("1005")  # events flow on the new connection's subscription too
            await until(rc, lambda s: registrations(s) == 2)
    (expired,) = [e for e in fired if e.subclass == "sofia::expire"]
    # sofia_reg.c sofia_reg_del_callback: user/host (no from-*), the row's absolute expiry, line 726.
    assert expired.get("user") == expired.get("username") == "1002"
    assert expired.get("host") == "127.0.0.1"
    assert expired.get("call-id") == "reg-1002@127.0.0.1"
    assert expired.get("from-user") is None
    assert int(expired.get("expires") or 0) > 1_700_000_000
    assert expired.get("Event-Calling-Function") == "sofia_reg_del_callback"
    assert registrations(at_start) == 1
    assert value(after_reconnect, "switchyard_esl_connected", node="fs1") == 1
    assert connects == 2
    assert recounts == 2


async def test_call_duration_and_node_channels(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, calls={"routes": ROUTES}) as rc,
    ):
        model = rc.controller.model
        idle = await scrape(rc)
        rejected = await fs.inject_inbound_call(destination="8000")
        await rc.call_ended(rejected)
        answered = await fs.inject_inbound_call(destination="9196")
        await fs.wait_for(lambda: _state(rc, answered) is ChannelState.ANSWERED)
        during = await until(rc, lambda s: value(s, "switchyard_node_channels", node="fs1") == 1)
        await asyncio.sleep(0.3)
        await fs.caller_hangup(answered)
        await rc.call_ended(answered)
        after = await until(rc, lambda s: value(s, "switchyard_node_channels", node="fs1") == 0)
        unanswered_call, answered_call = model.ended_call(rejected), model.ended_call(answered)
    assert unanswered_call is not None
    assert answered_call is not None
    assert value(idle, "switchyard_node_channels", node="fs1") == 0
    assert value(idle, "switchyard_call_duration_seconds_count", disposition="answered") == 0
    assert value(during, "switchyard_call_duration_seconds_count", disposition="unanswered") == 1
    assert value(during, "switchyard_call_duration_seconds_count", disposition="answered") == 0

    h = "switchyard_call_duration_seconds"
    assert unanswered_call.answered_us == 0
    ring = (unanswered_call.ended_us - unanswered_call.created_us) / 1e6
    assert value(after, f"{h}_sum", disposition="unanswered") == ring
    assert value(after, f"{h}_bucket", disposition="unanswered", le="1.0") == 1
    billsec = (answered_call.ended_us - answered_call.answered_us) / 1e6
    assert answered_call.answered_us > answered_call.created_us
    assert billsec >= 0.3
    assert value(after, f"{h}_count", disposition="answered") == 1
    assert value(after, f"{h}_sum", disposition="answered") == billsec
    assert value(after, f"{h}_bucket", disposition="answered", le="1.0") == 1
    assert value(after, f"{h}_count", disposition="unanswered") == 1


def _state(rc: RunningController, uuid: str) -> ChannelState | None:
    ch = rc.controller.model.channel(uuid)
    return None if ch is None else ch.state


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _beat(rc: RunningController, worker_id: str, url: str, **extra: Any) -> None:
    beat = {"worker_id": worker_id, "url": url, "capacity": 4, "streams": 0, "heartbeat_s": 30, **extra}
    async with rc.http.post(f"{rc.base}/v1/workers/heartbeat", json=beat) as resp:
        assert resp.status == 200, await resp.text()


def workers(samples: Samples) -> dict[str, float | None]:
    states = ("healthy", "suspect", "draining", "lost")
    return {state: value(samples, "switchyard_workers", state=state) for state in states}


async def test_workers_by_state(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, calls={"routes": ROUTES}) as rc,
    ):
        none = workers(await scrape(rc))
        dead_end = f"ws://127.0.0.1:{_closed_port()}"
        await _beat(rc, "w-ok", dead_end, streams=4)  # full: still healthy
        await _beat(rc, "w-drain", "ws://127.0.0.1:9", status="draining")
        await _beat(rc, "w-gone", "ws://127.0.0.1:10", heartbeat_s=0.05)  # lost after 3 missed beats
        beats = workers(await until(rc, lambda s: value(s, "switchyard_workers", state="lost") == 1))
        await _beat(rc, "w-ok", dead_end)  # room again: the next agent call picks it
        uuid = await fs.inject_inbound_call(destination="7100")
        await rc.call_ended(uuid)  # the start fails (connection refused): w-ok turns suspect
        failed = workers(await scrape(rc))
    assert none == {"healthy": 0, "suspect": 0, "draining": 0, "lost": 0}
    assert beats == {"healthy": 1, "suspect": 0, "draining": 1, "lost": 1}
    assert failed == {"healthy": 0, "suspect": 1, "draining": 1, "lost": 1}
