"""The agent call flow on the emulator and (``-m live``) on a real FreeSWITCH.

A call is originated through the API to the park extension (``loopback/<ext>``); its B-leg parks, the
route makes it an agent call, the controller answers and streams it to the worker stand-in (a real
WebSocket server), which speaks three chunks; they play in order, a barge-in breaks playback and drops the
queue, the call is hung up through the API and the CDR is checked. Only the API, the worker's WebSocket,
the controller's playback view and CDRs are asserted, so the same test proves the real server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.controllerkit import (
    RunningController,
    StandInSession,
    StandInWorker,
    register_worker,
    running_controller,
    speak,
    until,
)
from tests.integration.conftest import EslTarget

DEADLINE_S = 10.0


async def _three_chunks(session: StandInSession) -> None:
    for _ in range(3):
        await speak(session, 0.6)


async def _streaming_leg(rc: RunningController, call_id: str) -> str:
    """The UUID of the call's leg that streams to the worker (the parked B-leg), from the API."""
    async with rc.http.get(f"{rc.base}/v1/calls/{call_id}") as resp:
        assert resp.status == 200, await resp.text()
        legs = (await resp.json())["legs"]
    streaming = [leg["uuid"] for leg in legs if leg["audio_stream"] not in ("", "none")]
    assert len(streaming) == 1, legs
    return str(streaming[0])


def _playback_events(session: StandInSession, event: str) -> list[str]:
    texts = session.texts
    return [t.get("file", "") for t in texts if t.get("type") == "playback" and t.get("event") == event]


async def test_agent_flow_plays_in_order_barges_in_and_writes_cdr(
    esl_target: EslTarget, tmp_path: Path
) -> None:
    routes = [{"destination": f"^{esl_target.park_extension}$", "action": "agent support", "language": "en"}]
    target = esl_target.address
    async with (
        StandInWorker(_three_chunks, host=esl_target.worker_host) as worker,
        running_controller(target, tmp_path, calls={"routes": routes, "context": esl_target.context}) as rc,
    ):
        await register_worker(rc, "w1", worker.url)
        body = {"target": "extension", "destination": esl_target.park_extension}
        async with rc.http.post(f"{rc.base}/v1/calls", json=body) as resp:
            assert resp.status == 201, await resp.text()
            caller = (await resp.json())["call_id"]
        await until(lambda: bool(worker.sessions), "the agent stream reached the worker")
        session = worker.sessions[caller]  # the worker knows the call by its id: the first leg's UUID
        agent_leg = await _streaming_leg(rc, caller)
        playback = rc.controller.playback
        await until(lambda: len(playback.queued(agent_leg)[1]) == 2, "one chunk playing, two queued")
        playing, queued = playback.queued(agent_leg)
        await until(lambda: len(_playback_events(session, "start")) == 1, "the worker told of the start")
        assert session.ws is not None
        await session.ws.send_str(json.dumps({"type": "barge_in"}))
        await until(lambda: playback.queued(agent_leg) == (None, []), "barge-in cleared the queue")
        await until(lambda: len(_playback_events(session, "stop")) == 1, "the worker told of the stop")
        await asyncio.sleep(0.5)  # a queued file would start ~100 ms after a plain break
        starts = _playback_events(session, "start")
        async with rc.http.post(f"{rc.base}/v1/calls/{caller}/hangup", json={}) as resp:
            assert resp.status == 200, await resp.text()
        await rc.call_ended(caller, timeout=DEADLINE_S)
        record = await rc.controller.store.get(caller)
    assert session.metadata is not None
    assert session.metadata["agent"] == "support"
    assert playing is not None
    assert starts == [playing]
    assert len(queued) == 2
    assert record is not None
    assert record.disposition == "answered"
    assert record.route == "agent support"
    assert record.agent == "support"
    assert record.stream.worker == "w1"
    assert record.stream.playbacks == 3
    assert record.stream.barge_ins == 1
    assert record.answered_at is not None
    assert record.ended_at is not None
    assert {leg.uuid for leg in record.legs} == {caller, agent_leg}
