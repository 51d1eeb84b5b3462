"""The real-server facts "originate exactly once" rests on, run against the emulator and (``-m live``) a
real FreeSWITCH: a BACKGROUND_JOB goes to every connection subscribed to it, so one whose bgapi was sent
on a connection since dropped still arrives, under the Job-UUID we chose; ``uuid_exists`` tells a live leg
from an unknown uuid; and the controller places one call for two POSTs with the same Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path

from controller.freeswitch.connection import ConnectionLost, EslConnection
from controller.freeswitch.events import BackgroundJob, ChannelEvent, Event
from tests.controllerkit import running_controller, until
from tests.integration.conftest import EslTarget


async def test_a_background_job_reaches_the_next_connection(esl_target: EslTarget) -> None:
    t = esl_target
    call = str(uuid.uuid4())
    seen: list[Event] = []
    # The parked B-leg never answers: the originate rings 2 s, then its job ends -ERR (drift_scenarios.py).
    target = f"loopback/{t.park_extension}/{t.context}"
    line = f"originate {{origination_uuid={call},originate_timeout=2}}{target} &park()"
    watcher = await EslConnection.open(
        t.host, t.port, t.password, on_event=lambda event, _size: seen.append(event)
    )
    async with watcher:
        await watcher.subscribe(["BACKGROUND_JOB", "CHANNEL_CREATE"])
        placer = await EslConnection.open(t.host, t.port, t.password)
        job = asyncio.create_task(placer.bgapi(line, 10, job_uuid=call))
        await until(
            lambda: any(isinstance(e, ChannelEvent) and e.uuid == call for e in seen), "the leg exists", 5
        )
        exists = await watcher.api(f"uuid_exists {call}")
        unknown = await watcher.api(f"uuid_exists {uuid.uuid4()}")
        placer.abort()  # the placing connection goes before its job's result
        with contextlib.suppress(ConnectionLost):
            await job
        await until(
            lambda: any(isinstance(e, BackgroundJob) and e.job_uuid == call for e in seen),
            "the BACKGROUND_JOB on the other connection",
            10,
        )
        await _no_channels(watcher)  # the next test's controller must not find this test's legs
    (result,) = [e for e in seen if isinstance(e, BackgroundJob) and e.job_uuid == call]
    assert job.done()
    assert exists.strip() == "true"
    assert unknown.strip() == "false"
    assert (result.body or "").startswith("-ERR")


async def _no_channels(esl: EslConnection, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while json.loads(body := await esl.api("show channels as json"))["row_count"]:
        assert time.monotonic() < end, f"channels still listed after {deadline} s: {body[:300]}"
        await asyncio.sleep(0.05)


async def test_two_posts_with_one_key_place_one_call(esl_target: EslTarget, tmp_path: Path) -> None:
    t = esl_target
    body = {"target": "extension", "destination": t.tone_extension, "context": t.context}
    fs = (t.host, t.port, t.password) if t.emulator is None else t.emulator
    async with running_controller(fs, tmp_path) as rc:
        model = rc.controller.model
        before = set(model.calls)
        headers = {"Idempotency-Key": f"twin-{uuid.uuid4()}"}
        answers = []
        for _ in range(2):
            async with rc.http.post(f"{rc.base}/v1/calls", json=body, headers=headers) as resp:
                answers.append((resp.status, await resp.json()))
        call_id = answers[0][1]["call_id"]
        await asyncio.sleep(0.5)  # a second originate's legs would show up by now
        new = set(model.calls) - before
        async with rc.http.post(f"{rc.base}/v1/calls/{call_id}/hangup", json={}) as resp:
            assert resp.status == 200
    assert answers[0][0] == answers[1][0] == 201, answers
    assert answers[0][1] == answers[1][1]
    assert new == {call_id}
