"""Media liveness (issue 18 item 3): a half-open worker loses its calls to another worker within 2 s.

Real worker processes (``python -m media_worker``) heartbeat to the controller's API every 0.5 s (the
default) and list their open streams; the controller's media path (FreeSwitchNode + CallModel +
AgentStreams, ``tests/integration/test_worker_failover.py``) runs on the emulator, whose mod_audio_stream
pings every ``STREAM_HEART_BEAT`` seconds as libwsc does. Faults are real: a worker frozen by SIGSTOP (its
kernel keeps the socket open, so FreeSWITCH never hears of it), and a partition between FreeSWITCH and a
worker (a stalled TCP relay: both sockets stay open) that the worker notices by the missing pings and that
makes it drop the call while it keeps heartbeating.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from controller.workers.streams import AgentStreams, StreamRequest
from media_worker.vad.silero import SileroModel
from switchyard.liveness import MAX_LISTED_CALLS
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.audio_stream import StreamSession
from tests.integration.test_worker_failover import (
    Controller,
    WorkerProcess,
    _post_beat,
    _wait_workers,
    controller_api,
    controller_media,
    worker_processes,
)
from tests.tcpproxy import tcp_relay
from tests.workerkit import running_worker, stream_token

DEADLINE_S = 2.0  # worker_pool.liveness_s's default: the bound
MARGIN_S = 0.5  # a loaded two-core box


@contextmanager
def frozen(process: WorkerProcess) -> Iterator[float]:
    """SIGSTOP the worker (by the PID this test started), SIGCONT it at the end; yields when it froze."""
    os.kill(process.process.pid, signal.SIGSTOP)
    try:
        yield time.monotonic()
    finally:
        os.kill(process.process.pid, signal.SIGCONT)


async def _stream(ctl: Controller, fs: FreeSwitchEmulator, call_id: str) -> tuple[str, str]:
    """An answered inbound call streaming to a worker that lists it in its beats; (uuid, worker id)."""
    assert ctl.node is not None
    assert ctl.streams is not None
    uuid = await fs.inject_inbound_call()
    await ctl.node.api(f"uuid_answer {uuid}")
    meta = json.dumps({"call_id": call_id, "sample_rate": 8000, "call_type": "sip"}, separators=(",", ":"))
    worker = await ctl.streams.start(StreamRequest("fs1", uuid, call_id, 8000, meta))
    await _until(lambda: call_id in (worker.calls or ()), f"{worker.worker_id} lists {call_id}", 3.0)
    return uuid, worker.worker_id


async def _until(check: Callable[[], bool], what: str, deadline_s: float) -> None:
    try:
        async with asyncio.timeout(deadline_s):
            while not check():  # noqa: ASYNC110 - emulator and pool state, changed by wire traffic
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"not within {deadline_s} s: {what}") from None


def _connected_to(fs: FreeSwitchEmulator, uuid: str, port: int) -> StreamSession | None:
    session = fs.audio_stream_sessions.get(uuid)
    if session is not None and session.state == "connected" and f":{port}/" in session.url:
        return session
    return None


async def test_a_frozen_worker_loses_its_call_within_two_seconds(tmp_path: Path) -> None:
    async with controller_api() as ctl, FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
        with worker_processes(ctl.api_port, tmp_path, ["w1", "w2"], heartbeat_s=0.5) as procs:
            await _wait_workers(ctl, 2)
            async with controller_media(ctl, fs, ""):
                assert ctl.streams is not None
                uuid, first = await _stream(ctl, fs, "freeze-me")
                assert fs.audio_stream_sessions[uuid].ping_s == 1  # STREAM_HEART_BEAT=1 before the start
                victim = next(p for p in procs if p.worker_id == first)
                other = next(p for p in procs if p is not victim)
                await asyncio.sleep(0.7)  # anywhere between two beats
                with frozen(victim) as froze_at:
                    await _until(lambda: _connected_to(fs, uuid, other.port) is not None, "moved", 5.0)
                    moved_after = time.monotonic() - froze_at
                    session = _connected_to(fs, uuid, other.port)
                    assert session is not None
                    frames = session.frames_sent
                    await asyncio.sleep(0.5)
                    assert session.frames_sent > frames  # audio flows to the new worker
                assert ctl.streams.worker_of(uuid) == other.worker_id
                await ctl.streams.stop(uuid)
    print(f"\nfrozen worker: call moved {moved_after * 1000:.0f} ms after SIGSTOP")
    assert moved_after <= DEADLINE_S + MARGIN_S, f"moved {moved_after:.2f} s after the freeze"


async def test_a_worker_cut_off_from_freeswitch_drops_the_call_and_it_moves(tmp_path: Path) -> None:
    """FreeSWITCH reaches each worker through a relay; its worker's relay stalls: the worker hears no ping
    for liveness_s (1.5 s), closes the stream (the close never arrives: no ::disconnect) and its next beats
    leave the call out, while they keep coming."""
    async with (
        controller_api() as ctl,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        tcp_relay("127.0.0.1", ("127.0.0.1", 9)) as r1,
        tcp_relay("127.0.0.1", ("127.0.0.1", 9)) as r2,
    ):
        relays = {"w1": r1, "w2": r2}
        advertise = {w: f"ws://127.0.0.1:{r.port}" for w, r in relays.items()}
        with worker_processes(ctl.api_port, tmp_path, ["w1", "w2"], 0.5, advertise) as procs:
            for proc in procs:
                relays[proc.worker_id].target = ("127.0.0.1", proc.port)
            await _wait_workers(ctl, 2)
            async with controller_media(ctl, fs, ""):
                assert ctl.streams is not None
                uuid, first = await _stream(ctl, fs, "cut-me-off")
                other = "w2" if first == "w1" else "w1"
                session = fs.audio_stream_sessions[uuid]
                await _until(lambda: session.pongs > 0, "a ping answered", 3.0)  # the worker saw it ping
                relays[first].stall()
                stalled_at = time.monotonic()
                port = relays[other].port
                await _until(lambda: _connected_to(fs, uuid, port) is not None, "moved", 6.0)
                moved_after = time.monotonic() - stalled_at
                streams = ctl.streams
                await _until(lambda: streams.worker_of(uuid) == other, "::connect seen", 1.0)
                dropper = ctl.pool.get(first)
                assert dropper is not None
                assert ctl.pool.alive(dropper)
                await ctl.streams.stop(uuid)
    print(f"\npartitioned worker: call moved {moved_after * 1000:.0f} ms after the stall")
    # The worker's liveness_s (1.5 s), two beats without the call (<= 1 s), a watchdog tick (0.25 s).
    assert 1.4 <= moved_after <= 1.5 + 1.0 + 0.25 + MARGIN_S


async def test_a_healthy_pair_keeps_its_calls_with_audio_or_only_pings(tmp_path: Path) -> None:
    """Six seconds, four calls on two workers, two of them paused (no audio: only pings): nothing moves."""
    async with controller_api() as ctl, FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
        with worker_processes(ctl.api_port, tmp_path, ["w1", "w2"], heartbeat_s=0.5):
            await _wait_workers(ctl, 2)
            async with controller_media(ctl, fs, ""):
                streams = ctl.streams
                assert streams is not None
                assert ctl.node is not None
                calls = [await _stream(ctl, fs, f"steady-{i}") for i in range(4)]
                assert {worker for _, worker in calls} == {"w1", "w2"}
                for uuid, _ in calls[:2]:
                    await ctl.node.api(f"uuid_audio_stream {uuid} pause")
                paused = {uuid: fs.audio_stream_sessions[uuid].frames_sent for uuid, _ in calls[:2]}
                await asyncio.sleep(6.0)
                sessions = {uuid: fs.audio_stream_sessions.get(uuid) for uuid, _ in calls}
                for uuid, worker in calls:
                    session = sessions[uuid]
                    assert session is not None, uuid
                    assert session.state == "connected", uuid
                    assert streams.worker_of(uuid) == worker, uuid
                    assert session.pongs >= 4, (uuid, session.pings_sent, session.pongs)
                for uuid, frames in paused.items():
                    assert sessions[uuid].frames_sent - frames <= 1  # type: ignore[union-attr]
                moves = [_moves(streams, uuid) for uuid, _ in calls]
                for uuid, _ in calls:
                    await streams.stop(uuid)
    assert moves == [0, 0, 0, 0]


def _moves(streams: AgentStreams, uuid: str) -> int:
    return streams.attempts_of(uuid) - 1


async def test_heartbeat_call_lists_are_validated(tmp_path: Path) -> None:
    base = {"worker_id": "w9", "url": "ws://127.0.0.1:9", "capacity": 10, "streams": 0, "heartbeat_s": 0.5}
    async with controller_api() as ctl:
        assert await _post_beat(ctl, {**base, "calls": [f"c{i}" for i in range(MAX_LISTED_CALLS + 1)]}) == 422
        for bad in ("has space", "a/b", "x" * 129, "", "é", 7):
            assert await _post_beat(ctl, {**base, "calls": ["ok-1", bad]}) == 422, bad
        assert await _post_beat(ctl, {**base, "calls": "ok-1"}) == 422
        assert not ctl.pool.snapshot()
        ids = ["0b8e6b1e-5a83-4c0a-9a53-7f7c3f3f3f3f", "move-me", "a.b_c"]
        assert await _post_beat(ctl, {**base, "calls": ids}) == 200
        assert await _post_beat(ctl, {**base, "worker_id": "w8", "url": "ws://127.0.0.1:8"}) == 200
    listed, unlisted = ctl.pool.get("w9"), ctl.pool.get("w8")
    assert listed is not None
    assert listed.calls == frozenset(ids)
    assert unlisted is not None
    assert unlisted.calls is None


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


async def test_the_worker_closes_a_stream_whose_pings_stop(model: SileroModel) -> None:
    """Once the peer pinged, liveness_s without a frame or ping ends the stream; a peer that never pings
    is held to idle_timeout_s only (no false close of a silent, ping-less stream)."""
    async with (
        running_worker(model, liveness_s=1.2, idle_timeout_s=10) as rw,
        aiohttp.ClientSession() as http,
        http.ws_connect(rw.url("pinger")) as pinger,
        http.ws_connect(rw.url("quiet")) as quiet,
    ):
        for ws, call_id in ((pinger, "pinger"), (quiet, "quiet")):
            meta = {"call_id": call_id, "sample_rate": 8000, "token": stream_token(call_id)}
            await ws.send_str(json.dumps(meta))
        await _until(lambda: {"pinger", "quiet"} <= set(rw.worker.sessions), "both open", 3.0)
        for _ in range(3):  # pings alone keep it open
            await pinger.ping(b"ping")
            last_ping = time.monotonic()
            await asyncio.sleep(0.6)
        assert "pinger" in rw.worker.sessions
        msg = await pinger.receive(timeout=3.0)
        closed_after = time.monotonic() - last_ping
        assert (msg.type, msg.data, msg.extra) == (
            aiohttp.WSMsgType.CLOSE,
            1008,
            "stream: no frame for 1.2 s",
        )
        assert 1.1 <= closed_after <= 1.2 + MARGIN_S
        assert "quiet" in rw.worker.sessions  # it never pinged: silent for as long, still open
