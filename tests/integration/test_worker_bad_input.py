"""Bad input closes one stream cleanly (code + reason) and never disturbs the other sessions.

A healthy call streams from the emulated mod_audio_stream the whole time; misbehaving peers connect with
aiohttp's WebSocket client (mod_audio_stream itself cannot send such frames).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from media_worker.vad.model import RATE
from media_worker.vad.silero import SileroModel
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.workerkit import RunningWorker, running_worker, stream_token

META = "<metadata with a fresh token>"  # replaced when sent: a token made at import would expire

Step = Callable[[aiohttp.ClientWebSocketResponse], Awaitable[None]]


async def _nothing(ws: aiohttp.ClientWebSocketResponse) -> None:
    return None


def _send(*frames: str | bytes) -> Step:
    async def step(ws: aiohttp.ClientWebSocketResponse) -> None:
        for frame in frames:
            if frame is META:
                meta = {"call_id": "bad", "sample_rate": 16000, "call_type": "sip"}
                await ws.send_str(json.dumps({**meta, "token": stream_token("bad")}))
            elif isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_bytes(frame)

    return step


CASES: dict[str, tuple[Step, int, str]] = {
    "audio-without-metadata": (_send(*[b"\x00" * 640] * 51), 1008, "none before 51 audio frames"),
    "audio-then-no-metadata": (_send(b"\x00" * 640), 1008, "none within the deadline"),
    "odd-frame-before-metadata": (_send(b"\x00" * 639), 1003, "not whole L16 samples"),
    "metadata-not-json": (_send("hello"), 1008, "metadata"),
    "metadata-missing-rate": (_send('{"call_id":"bad"}'), 1008, "metadata.sample_rate"),
    "metadata-bad-rate": (_send('{"call_id":"bad","sample_rate":11025}'), 1008, "metadata.sample_rate"),
    "metadata-other-call": (_send('{"call_id":"other","sample_rate":8000}'), 1008, "metadata.call_id"),
    "no-metadata-in-time": (_nothing, 1008, "none within the deadline"),
    "odd-byte-count": (_send(META, b"\x00" * 639), 1003, "not whole L16 samples"),
    "empty-frame": (_send(META, b""), 1003, "not whole L16 samples"),
    "text-garbage": (_send(META, b"\x00" * 640, "\x01garbage{"), 1003, "not JSON"),
    "json-without-type": (_send(META, '{"hello":1}'), 1003, "with a type"),
    "bad-dtmf": (_send(META, '{"type":"dtmf","digit":"Z"}'), 1003, "dtmf"),
    "oversize-1MB": (_send(META, b"\x00" * 1_048_576), 1009, ""),
}


async def _misbehave(http: aiohttp.ClientSession, rw: RunningWorker, step: Step) -> tuple[int | None, str]:
    async with http.ws_connect(rw.url("bad"), max_msg_size=0) as ws:
        await step(ws)
        async with asyncio.timeout(5):
            msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE, msg
        return ws.close_code, str(msg.extra or "")


@pytest.fixture(scope="module")
def model() -> SileroModel:
    """One Silero session for the module."""
    return SileroModel()


async def test_bad_frames_close_only_their_stream(model: SileroModel, tmp_path: Path) -> None:
    async with (
        running_worker(model, metadata_timeout_s=0.5, capacity=2) as rw,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        aiohttp.ClientSession() as http,
    ):
        uuid = await fs.inject_inbound_call()
        await fs.api.execute("uuid_answer", uuid)
        await fs.api.execute("uuid_audio_stream", rw.start_args(uuid, "good", 8000))
        await fs.wait_for(lambda: "good" in rw.worker.sessions, timeout=3)
        good = rw.worker.sessions["good"]
        for name, (step, code, reason) in CASES.items():
            got_code, got_reason = await _misbehave(http, rw, step)
            assert got_code == code, name
            assert reason in got_reason, (name, got_reason)
            await fs.wait_for(lambda: "bad" not in rw.worker.sessions, timeout=2)
        before = good.stream.scored
        await asyncio.sleep(0.5)
        assert good.stream.scored - before >= 0.3 * RATE  # the healthy call was scored all along
        assert rw.worker.sessions.keys() == {"good"}

        # Full: the handshake is refused before the upgrade, so mod_audio_stream reports ::error.
        async with http.ws_connect(rw.url("second")) as second:
            await second.send_str(
                json.dumps({"call_id": "second", "sample_rate": 8000, "token": stream_token("second")})
            )
            await fs.wait_for(lambda: "second" in rw.worker.sessions, timeout=2)
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(rw.url("third"))
            assert refused.value.status == 503
        await fs.api.execute("uuid_audio_stream", f"{uuid} stop")
        await fs.wait_for(lambda: not rw.worker.sessions, timeout=3)
        assert fs.channels[uuid].alive


async def test_audio_racing_ahead_of_the_metadata_is_kept(model: SileroModel) -> None:
    """mod_audio_stream can send audio before its metadata (media_worker/server.py ``_first_text``): the
    worker keeps those frames for the call instead of closing it (seen live: 1008 "the first frame must be
    the metadata text", and the call had no worker)."""
    async with (
        running_worker(model, metadata_timeout_s=2.0) as rw,
        aiohttp.ClientSession() as http,
        http.ws_connect(rw.url("racing")) as ws,
    ):
        for _ in range(3):
            await ws.send_bytes(b"\x00" * 320)  # 20 ms at 8 kHz each
        meta = {"call_id": "racing", "sample_rate": 8000, "call_type": "sip", "token": stream_token("racing")}
        await ws.send_str(json.dumps(meta))
        await ws.send_bytes(b"\x00" * 320)

        def received() -> int:
            session = rw.worker.sessions.get("racing")
            return 0 if session is None else session.stream.received

        async with asyncio.timeout(3):
            while received() < 4 * 320:  # noqa: ASYNC110 - polls the worker's state
                await asyncio.sleep(0.01)
        assert not ws.closed
        assert received() == 4 * 320  # 4 frames of 160 samples at 8 kHz, counted at 16 kHz
