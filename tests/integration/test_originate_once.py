"""Originate exactly once: ``Idempotency-Key`` on POST /v1/calls, and originates that outlive a lost ESL
answer, end to end against the emulator.

The emulator's stalls (tests/fsemu/faults.py) make the controller's command deadline (0.5 s here) pass: it
drops the connection, reconnects and resyncs, while the emulator goes on placing the call (``hold``) or
never read the command (``busy``). What is asserted is what FreeSWITCH saw: the API events it fires for
every ``originate`` it ran.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.controllerkit import TOKEN, RunningController, running_controller, until
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.wire import Event

BODY = {"target": "extension", "destination": "7104"}
OTHER_TOKEN = "beta-token-0123456789abcdef"


def _node(fs: FreeSwitchEmulator, **deadlines: float) -> dict[str, Any]:
    node = {"host": "127.0.0.1", "port": fs.port, "password": fs.config.password, "keepalive": 0}
    return {"fs1": {**node, "deadlines": {"command": 0.5, **deadlines}}}


async def _post(
    rc: RunningController, body: Any, key: str | None = None, token: str = TOKEN
) -> tuple[int, Any, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    async with rc.http.post(f"{rc.base}/v1/calls", json=body, headers=headers) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


def _originates(events: list[Event]) -> list[str]:
    return [e.get("API-Command-Argument") or "" for e in events if e.get("API-Command") == "originate"]


async def test_the_same_key_twice_originates_once(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
    ):
        events = fs.record_events()
        first = await _post(rc, BODY, "order-17:a")
        again = await _post(rc, {"destination": "7104", "target": "extension", "timeout_s": 30}, "order-17:a")
        fresh = await _post(rc, BODY, "order-18")
        plain = await _post(rc, BODY)
    assert first[0] == again[0] == 201
    assert again[1] == first[1]  # same body: key order and a default spelt out do not count
    assert again[2].get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first[2]
    assert fresh[0] == plain[0] == 201
    assert len({first[1]["call_id"], fresh[1]["call_id"], plain[1]["call_id"]}) == 3
    assert len(_originates(events)) == 3


async def test_a_retry_while_the_first_rings_waits_for_its_answer(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
    ):
        fs.register_user("1001", answer_after=0.6)
        events = fs.record_events()
        body = {"target": "user", "destination": "1001"}
        first, second = await asyncio.gather(_post(rc, body, "ring-1"), _post(rc, body, "ring-1"))
    assert first[0] == second[0] == 201
    assert first[1] == second[1]
    assert len(_originates(events)) == 1


async def test_the_same_key_with_another_body_is_refused(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
    ):
        events = fs.record_events()
        first = await _post(rc, BODY, "k1")
        other = await _post(rc, {**BODY, "destination": "7105"}, "k1")
    assert first[0] == 201
    assert other[0] == 422
    assert other[1]["error"]["field"] == "Idempotency-Key"
    assert "another body" in other[1]["error"]["reason"]
    assert len(_originates(events)) == 1


async def test_malformed_keys_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
    ):
        events = fs.record_events()
        answers = [await _post(rc, BODY, key) for key in ("", "a" * 129, "a b", "k/1", "ké", "k\t1")]
        async with rc.http.post(
            f"{rc.base}/v1/calls", json=BODY, headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
        ) as resp:
            twice = resp.status, await resp.json()
        longest = await _post(rc, BODY, "A" * 128)
    for status, body, _ in [*answers, (*twice, {})]:
        assert status == 422, body
        assert body["error"]["field"] == "Idempotency-Key"
    assert longest[0] == 201
    assert len(_originates(events)) == 1


async def test_keys_belong_to_their_token(tmp_path: Path) -> None:
    tokens = [
        {"name": "alpha", "token": TOKEN, "scopes": ["admin"]},
        {"name": "beta", "token": OTHER_TOKEN, "scopes": ["originate", "calls:read"]},
    ]
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, api={"tokens": tokens}) as rc,
    ):
        events = fs.record_events()
        alpha = await _post(rc, BODY, "shared-key")
        beta = await _post(rc, BODY, "shared-key", token=OTHER_TOKEN)
        beta_again = await _post(rc, BODY, "shared-key", token=OTHER_TOKEN)
    assert alpha[0] == beta[0] == 201
    assert alpha[1]["call_id"] != beta[1]["call_id"]
    assert beta_again[1] == beta[1]
    assert len(_originates(events)) == 2


async def test_the_oldest_key_is_forgotten_beyond_the_cap(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, api={"idempotency": {"max_keys": 2}}) as rc,
    ):
        events = fs.record_events()
        k1, _k2, k3 = [await _post(rc, BODY, key) for key in ("k1", "k2", "k3")]
        k3_again = await _post(rc, BODY, "k3")
        k1_again = await _post(rc, BODY, "k1")  # k1 was evicted: a new call
    assert k3_again[1] == k3[1]
    assert k1_again[0] == 201
    assert k1_again[1]["call_id"] != k1[1]["call_id"]
    assert len(_originates(events)) == 4


async def test_a_refusal_before_sending_does_not_bind_the_key(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
    ):
        events = fs.record_events()
        await fs.stop()
        node = rc.controller.nodes["fs1"]
        await until(lambda: not node.connected, "the node saw the emulator go")
        down = await _post(rc, BODY, "k-down")
        await fs.start()
        await node.wait_connected(5)
        up = await _post(rc, BODY, "k-down")
    assert down[0] == 503, down
    assert up[0] == 201, up
    assert len(_originates(events)) == 1


async def test_a_lost_reply_does_not_fail_the_originate(tmp_path: Path) -> None:
    """The originate's reply stalls past the command deadline: the connection is dropped, the call is placed
    anyway; the answer comes from the resync after the reconnect, not a 503, and a retry places nothing."""
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, freeswitch=_node(fs)) as rc,
    ):
        events = fs.record_events()
        fs.faults.stall("bgapi originate", 1.5, "hold")
        first = await _post(rc, BODY, "lost-1")
        call_id = first[1]["call_id"]
        async with rc.http.get(f"{rc.base}/v1/calls/{call_id}") as resp:
            view = await resp.json()
        in_model = rc.controller.model.channel(call_id) is not None
        retry = await _post(rc, BODY, "lost-1")
        connects = rc.controller.nodes["fs1"].connects
    assert first[0] == 201, first
    assert connects == 2  # the stalled reply did drop the connection
    assert in_model
    assert view["originate"] == {"status": "answered", "cause": ""}
    assert call_id in [leg["uuid"] for leg in view["legs"]]
    assert retry[1] == first[1]
    assert len(_originates(events)) == 1


async def test_one_command_timeout_fails_no_pending_originate(tmp_path: Path) -> None:
    """The issue's finding: two originates ring when a third one's reply stalls and the connection drops;
    all three are answered (late BACKGROUND_JOBs on the new connection, or the resync), none is a 503."""
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, freeswitch=_node(fs)) as rc,
    ):
        fs.register_user("1001", answer_after=1.2)
        fs.register_user("1002", answer_after=1.2)
        events = fs.record_events()
        ringing = [
            asyncio.create_task(_post(rc, {"target": "user", "destination": ext}, f"ring-{ext}"))
            for ext in ("1001", "1002")
        ]
        await until(lambda: len(_originates(events)) == 2, "both originates reached FreeSWITCH")
        fs.faults.stall("bgapi originate", 1.0, "hold")
        third = await _post(rc, BODY, "third")
        answers = [await task for task in ringing]
        connects = rc.controller.nodes["fs1"].connects
    assert connects == 2
    assert [a[0] for a in [*answers, third]] == [201, 201, 201], [*answers, third]
    assert len(_originates(events)) == 3


async def test_an_originate_freeswitch_never_read_fails_as_lost(tmp_path: Path) -> None:
    """The listener is busy past the deadline and the dropped connection takes the unread originate with
    it: uuid_exists says false, so the originate fails (409, LOST_WITH_ESL_CONNECTION), kept for the key."""
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(
            fs, tmp_path, freeswitch=_node(fs), calls={"deadlines": {"originate_probe": 0.3}}
        ) as rc,
    ):
        events = fs.record_events()
        fs.faults.stall("bgapi originate", 1.0, "busy")
        lost = await _post(rc, BODY, "never-read")
        retry = await _post(rc, BODY, "never-read")
        exists = [e for e in events if e.get("API-Command") == "uuid_exists"]
    assert lost[0] == 409, lost
    assert "LOST_WITH_ESL_CONNECTION" in lost[1]["error"]["reason"]
    assert retry[1] == lost[1]
    assert exists, "FreeSWITCH was asked"
    assert _originates(events) == []


async def test_an_originate_still_open_at_the_deadline_is_202_then_resolvable(tmp_path: Path) -> None:
    """Reply and resync both stall past a 1 s request deadline: 202 pending with the call id; GET
    /v1/calls/{id} shows it pending, then answered once the resync shows the leg; a retry is the same 202."""
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(
            fs, tmp_path, freeswitch=_node(fs, resync=5.0), calls={"deadlines": {"originate_margin": 0}}
        ) as rc,
    ):
        events = fs.record_events()
        fs.faults.stall("bgapi originate", 1.5, "hold")
        fs.faults.stall("api show channels", 2.0, "hold")
        first = await _post(rc, {**BODY, "timeout_s": 1}, "late-1")
        call_id = first[1]["call_id"]
        views: list[dict[str, Any]] = []

        async def view() -> dict[str, Any]:
            async with rc.http.get(f"{rc.base}/v1/calls/{call_id}") as resp:
                assert resp.status == 200
                data: dict[str, Any] = await resp.json()
                views.append(data)
                return data

        pending = await view()
        for _ in range(100):
            if (await view())["originate"]["status"] != "pending":
                break
            await asyncio.sleep(0.05)
        retry = await _post(rc, {**BODY, "timeout_s": 1}, "late-1")
    assert first[0] == 202, first
    assert first[1]["status"] == "pending"
    assert first[2]["Location"] == f"/v1/calls/{call_id}"
    assert pending["originate"]["status"] == "pending"
    assert views[-1]["originate"]["status"] == "answered"
    assert call_id in [leg["uuid"] for leg in views[-1]["legs"]]
    assert retry[0] == 202
    assert retry[1] == first[1]
    assert len(_originates(events)) == 1


async def test_openapi_documents_the_header_and_the_202(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
        rc.http.get(f"{rc.base}/openapi.json") as resp,
    ):
        doc = await resp.json()
    post = doc["paths"]["/v1/calls"]["post"]
    (header,) = [p for p in post["parameters"] if p["in"] == "header"]
    assert header["name"] == "Idempotency-Key"
    assert header["schema"]["maxLength"] == 128
    assert {"201", "202", "409", "422", "503"} <= set(post["responses"])


async def test_a_key_outlives_a_controller_restart(tmp_path: Path) -> None:
    """The keys are on disk (beside the CDR database): after a restart the retry is replayed, not placed."""
    async with FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
        events = fs.record_events()
        async with running_controller(fs, tmp_path) as first:
            placed = await _post(first, BODY, "order-42")
        async with running_controller(fs, tmp_path) as second:
            retry = await _post(second, BODY, "order-42")
    assert placed[0] == retry[0] == 201
    assert retry[1] == placed[1]
    assert retry[2].get("Idempotent-Replayed") == "true"
    assert len(_originates(events)) == 1
