"""The whole speaking loop: worker ↔ emulated mod_audio_stream ↔ ESL ↔ controller playback.

The caller's turn goes to the echo agent; its answer comes back as ``streamAudio``; the emulator fires
``::play``; the controller (FreeSwitchNode + CallModel + AgentPlayback over real ESL) broadcasts each file
and relays PLAYBACK_START/STOP to the worker. The emulated phone leg mixes what it plays back into what the
caller sends at -20 dB (line echo). The agent must not barge in on its own echo, and the caller talking
over the agent must produce ``barge_in`` within 300 ms, then ``uuid_break … all`` stops the playback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller.calls import AudioStreamMessage, CallModel, PlaybackChanged
from controller.calls.playback import AgentPlayback
from controller.calls.sender import CommandSender
from controller.calls.speechfiles import SpeechFiles
from controller.calls.waiters import ChangeWaiters
from controller.freeswitch.node import FreeSwitchNode
from controller.settings import FreeSwitchNodeSettings
from media_worker.turns import TurnEnded
from media_worker.vad.silero import SileroModel
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.speech import build_call
from tests.workerkit import RunningWorker, running_worker

ECHO_DB = -20.0


@dataclass
class Seen:
    """What the controller saw, with loop times."""

    barge_ins: list[float] = field(default_factory=list)
    playback: list[tuple[float, str, str]] = field(default_factory=list)  # (time, file, status)


@asynccontextmanager
async def controller(fs: FreeSwitchEmulator) -> AsyncIterator[tuple[FreeSwitchNode, Seen]]:
    """The controller's media path: one node, the call model, agent playback; records what it sees."""
    settings = FreeSwitchNodeSettings(name="fs1", port=fs.port, password=fs.config.password, keepalive=0)
    seen = Seen()
    model = CallModel()
    loop = asyncio.get_running_loop()
    async with FreeSwitchNode(settings) as node:
        files = SpeechFiles({node.name: str(fs.config.temp_dir)})  # where the emulator writes ::play files
        playback = AgentPlayback(CommandSender({node.name: node}, ChangeWaiters()), files=files)

        async def follow() -> None:
            async for event in node.events():
                for change in model.apply(node.name, event):
                    playback.apply(node.name, change)
                    if isinstance(change, AudioStreamMessage) and change.kind == "json":
                        if json.loads(change.data).get("type") == "barge_in":
                            seen.barge_ins.append(loop.time())
                    elif isinstance(change, PlaybackChanged):
                        seen.playback.append((loop.time(), change.file_path, change.status))

        task = asyncio.create_task(follow())
        await node.wait_connected(5)
        try:
            yield node, seen
        finally:
            task.cancel()
            await asyncio.wait([task], timeout=2)
            await playback.aclose()


@pytest.fixture(scope="module")
def model() -> SileroModel:
    """One Silero session for the module."""
    return SileroModel()


async def _call(
    fs: FreeSwitchEmulator, node: FreeSwitchNode, audio: Path, rw: RunningWorker, call_id: str
) -> str:
    uuid = await fs.inject_inbound_call(audio=audio, echo_db=ECHO_DB)
    await node.api(f"uuid_answer {uuid}")
    await node.api(f"uuid_audio_stream {rw.start_args(uuid, call_id, 8000)}")
    return uuid


async def test_own_echo_does_not_barge_in(model: SileroModel, tmp_path: Path) -> None:
    audio = build_call(tmp_path, 8000, [(0.8, "I want to pay my bill")], tail=5.0)
    async with (
        running_worker(model) as rw,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        controller(fs) as (node, seen),
    ):
        uuid = await _call(fs, node, audio.path, rw, "echo")
        await fs.wait_for(lambda: "echo" in rw.worker.sessions, timeout=3)
        session = rw.worker.sessions["echo"]
        await asyncio.sleep(audio.seconds)
        await node.api(f"uuid_audio_stream {uuid} stop")
    statuses = [status for _, _, status in seen.playback]
    assert statuses.count("playing") >= 2  # the answer (2 chunks of <= 1 s) was played back
    assert statuses.count("done") == statuses.count("playing")
    assert seen.barge_ins == []
    assert session.barge_ins == 0
    assert len([e for e in session.events if isinstance(e, TurnEnded)]) == 1  # the echo made no turn


async def test_caller_barges_in_over_the_agent(model: SileroModel, tmp_path: Path) -> None:
    # The agent answers the first sentence ~0.7 s after it ends and talks for ~1.7 s; the caller
    # interrupts 1.4 s after the end of the first sentence, while the answer (and its echo) plays.
    first = build_call(tmp_path, 8000, [(0.8, "I want to pay my bill")], tail=0.0, name="first")
    gap = 1.4
    audio = build_call(
        tmp_path, 8000, [(0.8, "I want to pay my bill"), (gap, "no wait stop")], tail=2.0, name="barge"
    )
    assert audio.segments[0].end == pytest.approx(first.segments[0].end)
    onset = audio.segments[1].start
    async with (
        running_worker(model) as rw,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        controller(fs) as (node, seen),
    ):
        uuid = await _call(fs, node, audio.path, rw, "barge")
        await fs.wait_for(lambda: bool(seen.barge_ins), timeout=audio.seconds + 2)
        started = fs.audio_stream_sessions[uuid].first_frame_at
        assert started is not None
        await asyncio.sleep(0.5)
        after_break = list(seen.playback)
        await node.api(f"uuid_audio_stream {uuid} stop")
    latency = seen.barge_ins[0] - (started + onset)
    assert 0 < latency <= 0.3, f"barge_in {latency * 1000:.0f} ms after the caller's onset"
    playing_at_barge = [p for p in after_break if p[0] <= seen.barge_ins[0] and p[2] == "playing"]
    assert playing_at_barge  # the agent was audible when the caller spoke
    stops_after = [p for p in after_break if p[0] > seen.barge_ins[0]]
    assert stops_after
    assert stops_after[0][2] == "break"  # uuid_break all stopped the current file
    assert not [p for p in stops_after if p[2] == "playing"]  # and the queued chunk never started
