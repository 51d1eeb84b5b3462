"""The controller's worker pool: real worker processes heartbeat in; streams fail over and move.

Workers run as their own processes (``python -m media_worker``) and heartbeat to the controller's API;
the controller's ESL side is FreeSwitchNode + CallModel + AgentPlayback + AgentStreams (one CommandSender)
against the emulator. A worker killed mid-call (SIGKILL, by the PID this test started) makes
mod_audio_stream fire ``::disconnect``; the call must be streaming to the other worker within 1 s, with the
apology prompt.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from controller.api.spec import ApiSpec
from controller.api.workers import add_worker_routes
from controller.calls import CallModel, PlaybackChanged
from controller.calls.playback import AgentPlayback
from controller.calls.sender import CallConflict, CommandSender
from controller.calls.speechfiles import SpeechFiles
from controller.calls.waiters import ChangeWaiters
from controller.freeswitch.node import FreeSwitchNode
from controller.settings import ApiToken, FreeSwitchNodeSettings, WorkerPoolSettings
from controller.workers.pool import Heartbeat, WorkerPool
from controller.workers.streams import AgentStreams, NoWorkerAvailable, StreamRequest
from tests.appkit import served
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.speech import build_call, synthesize, write_wav
from tests.workerkit import STREAM_SECRET

TOKEN = secrets.token_urlsafe(16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class WorkerProcess:
    """A media worker process this test started."""

    worker_id: str
    port: int
    process: subprocess.Popen[bytes]


@contextmanager
def worker_processes(
    api_port: int,
    cwd: Path,
    ids: list[str],
    heartbeat_s: float = 0.3,
    advertise: Mapping[str, str] | None = None,
) -> Iterator[list[WorkerProcess]]:
    """Start one worker process per id, heartbeating every ``heartbeat_s``, advertising the URL
    ``advertise`` names for its id (else its own); stop them (by PID) at the end."""
    started: list[WorkerProcess] = []
    try:
        for worker_id in ids:
            port = _free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
            env.update(
                SWITCHYARD_MEDIA_WORKER__PORT=str(port),
                SWITCHYARD_MEDIA_WORKER__WORKER_ID=worker_id,
                SWITCHYARD_MEDIA_WORKER__HEARTBEAT_S=str(heartbeat_s),
                SWITCHYARD_MEDIA_WORKER__CONTROLLER_URL=f"http://127.0.0.1:{api_port}",
                SWITCHYARD_MEDIA_WORKER__CONTROLLER_TOKEN=TOKEN,
                SWITCHYARD_AGENTS="[]",  # no models to load: every stream gets the echo pipeline
                SWITCHYARD_MEDIA_WORKER__ECHO_UNKNOWN_AGENTS="true",
                SWITCHYARD_MEDIA_WORKER__STREAM_SECRET=STREAM_SECRET,
            )
            if advertise and worker_id in advertise:
                env["SWITCHYARD_MEDIA_WORKER__ADVERTISE_URL"] = advertise[worker_id]
            cmd = [sys.executable, "-m", "media_worker", "--log-level", "WARNING"]
            proc = subprocess.Popen(cmd, cwd=cwd, env=env)
            started.append(WorkerProcess(worker_id, port, proc))
        yield started
    finally:
        for w in started:
            if w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)
        for w in started:
            try:
                w.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.process.kill()
                w.process.wait(timeout=5)


@dataclass
class Controller:
    """The controller parts this test wires together."""

    pool: WorkerPool
    api_port: int
    node: FreeSwitchNode | None = None
    streams: AgentStreams | None = None
    playback_log: list[tuple[float, str, str]] = field(default_factory=list)
    moves: list[tuple[str, str, int]] = field(default_factory=list)  # AgentStreams' on_moved (the CDR's)


@asynccontextmanager
async def controller_api() -> AsyncIterator[Controller]:
    """The worker registry behind the controller's API, on loopback."""
    pool = WorkerPool(missed_beats=3, suspect_s=30)
    app = web.Application()
    add_worker_routes(
        app, ApiSpec("test", "1", (ApiToken(name="ops", token=SecretStr(TOKEN), scopes=("admin",)),)), pool
    )
    async with served(app) as port:
        yield Controller(pool, port)


@asynccontextmanager
async def controller_media(ctl: Controller, fs: FreeSwitchEmulator, apology: str) -> AsyncIterator[None]:
    """FreeSwitchNode + CallModel + AgentPlayback + AgentStreams on the emulator."""
    settings = FreeSwitchNodeSettings(name="fs1", port=fs.port, password=fs.config.password, keepalive=0)
    model = CallModel()
    loop = asyncio.get_running_loop()
    async with FreeSwitchNode(settings) as node:
        waiters = ChangeWaiters()
        sender = CommandSender({node.name: node}, waiters)
        playback = AgentPlayback(sender, files=SpeechFiles({node.name: str(fs.config.temp_dir)}))
        pool_settings = WorkerPoolSettings(connect_timeout=0.5, apology_prompt=apology, wait_s=0)
        streams = AgentStreams(
            ctl.pool, sender, pool_settings, STREAM_SECRET.encode(), on_moved=lambda *m: ctl.moves.append(m)
        )
        ctl.node, ctl.streams = node, streams

        async def follow() -> None:
            async for event in node.events():
                for change in model.apply(node.name, event):
                    waiters.apply(node.name, change)
                    playback.apply(node.name, change)
                    streams.apply(node.name, change)
                    if isinstance(change, PlaybackChanged):
                        ctl.playback_log.append((loop.time(), change.file_path, change.status))

        task = asyncio.create_task(follow())
        await node.wait_connected(5)
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task], timeout=2)
            await streams.aclose()
            await playback.aclose()


async def _wait_workers(ctl: Controller, count: int) -> None:
    async with asyncio.timeout(20):  # the processes load the VAD model first
        while sum(1 for w in ctl.pool.snapshot() if w["healthy"]) < count:  # noqa: ASYNC110 - polls the registry
            await asyncio.sleep(0.05)


async def _silent_server() -> asyncio.Server:
    """Accepts TCP and never answers the WebSocket handshake (a hung worker)."""

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()

    return await asyncio.start_server(hang, "127.0.0.1", 0)


async def _post_beat(ctl: Controller, body: dict[str, object], token: str = TOKEN) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{ctl.api_port}/v1/workers/heartbeat", json=body, headers=headers) as r,
    ):
        return r.status


async def test_start_fails_over_and_a_killed_worker_moves_the_call(tmp_path: Path) -> None:
    apology = tmp_path / "apology.wav"
    write_wav(apology, synthesize("sorry, one moment please", 8000, tmp_path), 8000)
    audio = build_call(tmp_path, 8000, [(0.5, "I want to pay my bill"), (1.0, "and my other bill")], tail=4.0)
    hung = await _silent_server()
    async with controller_api() as ctl, FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
        with worker_processes(ctl.api_port, tmp_path, ["w1", "w2"]) as procs:
            await _wait_workers(ctl, 2)
            # Two broken workers that look idle: one refuses connections, one never finishes the handshake.
            dead = _free_port()
            hung_port = hung.sockets[0].getsockname()[1]
            beat = {"capacity": 1000, "streams": 0, "heartbeat_s": 60}
            assert (
                await _post_beat(ctl, {**beat, "worker_id": "a-dead", "url": f"ws://127.0.0.1:{dead}"}) == 200
            )
            assert (
                await _post_beat(ctl, {**beat, "worker_id": "a-hung", "url": f"ws://127.0.0.1:{hung_port}"})
                == 200
            )
            assert await _post_beat(ctl, {**beat, "worker_id": "x", "url": "http://nope"}) == 422
            assert await _post_beat(ctl, {**beat, "worker_id": "x", "url": "ws://h"}, token="wrong") == 401
            async with controller_media(ctl, fs, str(apology)):
                assert ctl.node is not None
                assert ctl.streams is not None
                uuid = await fs.inject_inbound_call(audio=audio.path)
                await ctl.node.api(f"uuid_answer {uuid}")
                meta = '{"call_id":"move-me","sample_rate":8000,"call_type":"sip"}'
                first = await ctl.streams.start(StreamRequest("fs1", uuid, "move-me", 8000, meta))
                # a-dead (::error) and a-hung (no ::connect in 0.5 s) were tried first, then a real worker.
                assert first.worker_id in ("w1", "w2")
                assert {w["worker_id"] for w in ctl.pool.snapshot() if w["suspect"]} == {"a-dead", "a-hung"}
                await asyncio.sleep(1.5)
                victim = next(p for p in procs if p.worker_id == first.worker_id)
                loop = asyncio.get_running_loop()
                victim.process.send_signal(signal.SIGKILL)
                killed_at = loop.time()
                other = next(p for p in procs if p is not victim)
                session = None
                async with asyncio.timeout(3):
                    while session is None:
                        s = fs.audio_stream_sessions.get(uuid)
                        if s is not None and s.state == "connected" and f":{other.port}/" in s.url:
                            session = s
                        await asyncio.sleep(0.005)
                moved_after = loop.time() - killed_at
                await asyncio.sleep(1.0)
                assert session.frames_sent > 20  # audio flows to the new worker
                assert ctl.streams.worker_of(uuid) == other.worker_id
                # What the CDR is told: the new worker, and four starts (a-dead, a-hung, first, other).
                assert ctl.moves == [(uuid, other.worker_id, 4)]
                assert ctl.streams.attempts_of(uuid) == 4
                apologies = [p for p in ctl.playback_log if p[1] == str(apology) and p[2] == "playing"]
                await ctl.streams.stop(uuid)
    hung.close()
    assert moved_after <= 1.0, f"moved {moved_after * 1000:.0f} ms after the kill"
    assert apologies
    assert apologies[0][0] - killed_at < 1.0


@asynccontextmanager
async def emulated_media(
    tmp_path: Path, apology: str
) -> AsyncIterator[tuple[Controller, FreeSwitchEmulator, AgentStreams, FreeSwitchNode]]:
    """The registry, the emulator and the controller's media path on it, with no worker process."""
    async with (
        controller_api() as ctl,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        controller_media(ctl, fs, apology) as _,
    ):
        assert ctl.node is not None
        assert ctl.streams is not None
        yield ctl, fs, ctl.streams, ctl.node


async def test_no_worker_means_a_clear_error(tmp_path: Path) -> None:
    async with emulated_media(tmp_path, "tone_stream://%(200,0,440)") as (_, fs, streams, _node):
        uuid = await fs.inject_inbound_call()
        with pytest.raises(NoWorkerAvailable):
            await streams.start(StreamRequest("fs1", uuid, "none", 8000, '{"call_id":"none"}'))


async def test_a_hangup_while_the_stream_starts_blames_no_worker(tmp_path: Path) -> None:
    """A leg that hangs up while its start waits for ``::connect`` ends the start at once.

    Regression: AgentStreams kept its own future beside the call-control waiters, which a hangup never
    resolved, so the start ran out the connect deadline, marked the worker suspect, and went on to start
    (and mark) every other worker on the dead leg.
    """
    hung = await _silent_server()
    url = f"ws://127.0.0.1:{hung.sockets[0].getsockname()[1]}"
    async with emulated_media(tmp_path, "") as (ctl, fs, streams, node):
        for worker_id, host in (("h1", url), ("h2", url.replace("127.0.0.1", "localhost"))):
            beat = Heartbeat(worker_id=worker_id, url=host, capacity=10, streams=0, heartbeat_s=60)
            ctl.pool.heartbeat(beat)
        uuid = await fs.inject_inbound_call()
        await node.api(f"uuid_answer {uuid}")
        meta = f'{{"call_id":"{uuid}","sample_rate":8000,"call_type":"sip"}}'
        start = asyncio.create_task(streams.start(StreamRequest("fs1", uuid, uuid, 8000, meta)))
        await fs.wait_for(lambda: uuid in fs.audio_stream_sessions)  # the start is out, connecting
        await node.api(f"uuid_kill {uuid}")
        with pytest.raises(CallConflict, match="ended"):
            await asyncio.wait_for(start, 0.4)  # before the 0.5 s connect deadline
        states = ctl.pool.count_by_state()
    hung.close()
    assert states["suspect"] == 0
    assert states["healthy"] == 2
