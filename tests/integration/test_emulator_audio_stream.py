"""mod_audio_stream emulation against a real aiohttp WebSocket server (audio_stream_wire.txt is the spec)."""

from __future__ import annotations

import asyncio
import json
import statistics
from pathlib import Path

import pytest

from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.wire import Event
from tests.fsemu.ws_peer import WsConnection, WsPeer


async def _stream(fs: FreeSwitchEmulator, uuid: str, url: str, mix: str, rate: str, *, meta: str = "") -> str:
    arg = f"{uuid} start {url} {mix} {rate}" + (f" {meta}" if meta else "")
    return await fs.api.execute("uuid_audio_stream", arg)


def _customs(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.subclass == f"mod_audio_stream::{kind}"]


async def _connection(ws: WsPeer, fs: FreeSwitchEmulator, events: list[Event]) -> WsConnection:
    await fs.wait_for(lambda: bool(ws.connections) and bool(_customs(events, "connect")), timeout=3)
    return ws.connections[-1]


@pytest.mark.parametrize(
    ("ptime", "rate", "size", "per_second"),
    [(20, "8k", 320, 50), (30, "8k", 480, 33.3), (20, "16k", 640, 50), (30, "16k", 640, 33.3)],
)
async def test_frame_size_and_pacing(
    tmp_path: Path, ptime: int, rate: str, size: int, per_second: float
) -> None:
    async with WsPeer() as ws, FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
        events = fs.record_events()
        uuid = await fs.inject_inbound_call(ptime_ms=ptime)
        await fs.api.execute("uuid_answer", uuid)
        assert await _stream(fs, uuid, ws.url("/s"), "mono", rate, meta='{"m":1}') == "+OK Success\n"
        conn = await _connection(ws, fs, events)
        await asyncio.sleep(1.0)
        assert await fs.api.execute("uuid_audio_stream", f"{uuid} stop") == "+OK Success\n"
        await asyncio.wait_for(conn.closed.wait(), 3)
    assert conn.texts[0][1] == '{"m":1}'  # metadata is the first frame
    assert conn.texts[0][0] <= conn.binaries[0][0]
    assert {n for _, n in conn.binaries} == {size}
    rate_seen = len(conn.binaries) / (conn.binaries[-1][0] - conn.binaries[0][0])
    assert rate_seen == pytest.approx(per_second, rel=0.15)
    gaps = [b[0] - a[0] for a, b in zip(conn.binaries, conn.binaries[1:], strict=False)]
    assert statistics.median(gaps) == pytest.approx(ptime / 1000, rel=0.25)
    assert conn.close_code == 1000
    assert not _customs(events, "disconnect")  # local stop: no ::disconnect


async def test_ptime_change_mid_call(tmp_path: Path) -> None:
    async with WsPeer() as ws, FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
        events = fs.record_events()
        uuid = await fs.inject_inbound_call(ptime_ms=20)
        await _stream(fs, uuid, ws.url("/s"), "mono", "8k")
        conn = await _connection(ws, fs, events)
        await asyncio.sleep(0.3)
        fs.set_ptime(uuid, 30)
        await asyncio.sleep(0.4)
        await fs.api.execute("uuid_audio_stream", f"{uuid} stop")
    sizes = [n for _, n in conn.binaries]
    assert sizes[0] == 320
    assert sizes[-1] == 480
    assert sizes == sorted(sizes)


async def test_mixed_on_parked_leg_sends_no_audio(tmp_path: Path) -> None:
    async with WsPeer() as ws, FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
        events = fs.record_events()
        uuid = await fs.inject_inbound_call()
        await _stream(fs, uuid, ws.url("/s"), "mixed", "16k")
        conn = await _connection(ws, fs, events)
        await asyncio.sleep(0.3)
        await fs.api.execute("uuid_audio_stream", f"{uuid} stop")
        await asyncio.wait_for(conn.closed.wait(), 3)
    assert conn.binaries == []


async def test_stream_audio_play_json_and_server_close(tmp_path: Path) -> None:
    async with WsPeer() as ws, FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
        events = fs.record_events()
        uuid = await fs.inject_inbound_call()
        await fs.api.execute("uuid_answer", uuid)
        await _stream(
            fs, uuid, ws.url("/sip?play=1.0&rate=8000&close=1.5"), "mono", "8k", meta='{"call":"sip"}'
        )
        await fs.wait_for(lambda: bool(_customs(events, "disconnect")), timeout=5)
        json_body = _customs(events, "json")[0].body
        play = json.loads(_customs(events, "play")[0].body or "")
        again = await _stream(fs, uuid, ws.url("/s"), "mono", "8k")
        stop = await fs.api.execute("uuid_audio_stream", f"{uuid} stop")
        file_gone = not await asyncio.to_thread(Path(play["file"]).exists)
    assert _customs(events, "connect")[0].body == '{"status":"connected"}'
    assert json_body == '{"type": "transcript", "text": "hello from ws server"}'
    assert list(play) == ["audioDataType", "sampleRate", "file"]
    assert play["file"] == f"{tmp_path}/{uuid}_0.tmp.r8"
    body = _customs(events, "disconnect")[0].body
    assert body == '{"status":"disconnected","message":{"code":1000,"reason":"server done"}}'
    assert again == "-ERR Operation Failed\n"  # the bug stays attached after a server close
    assert stop == "+OK Success\n"
    assert file_gone


async def test_connect_error_and_stop_after_error(tmp_path: Path) -> None:
    async with FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
        events = fs.record_events()
        uuid = await fs.inject_inbound_call()
        assert await _stream(fs, uuid, "ws://127.0.0.1:9/nobody", "mono", "8k") == "+OK Success\n"
        await fs.wait_for(lambda: bool(_customs(events, "error")), timeout=5)
        stop = await fs.api.execute("uuid_audio_stream", f"{uuid} stop")
    body = _customs(events, "error")[0].body
    assert body == '{"status":"error","message":{"code":6,"error":"Connection refused (system error 111)"}}'
    assert stop == "-ERR Operation Failed\n"


async def test_send_text_stop_text_usage_and_hangup(tmp_path: Path) -> None:
    async with WsPeer() as ws, FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
        events = fs.record_events()
        uuid = await fs.inject_inbound_call()
        await _stream(fs, uuid, ws.url("/s"), "mono", "16k", meta='{"hello":"meta"}')
        conn = await _connection(ws, fs, events)
        assert (
            await fs.api.execute("uuid_audio_stream", f'{uuid} send_text {{"type":"note","n":1}}')
            == "+OK Success\n"
        )
        assert (
            await fs.api.execute("uuid_audio_stream", f"{uuid} graceful-shutdown")
            == "-ERR Operation Failed\n"
        )
        usage = await fs.api.execute("uuid_audio_stream", uuid)
        await fs.api.execute("uuid_audio_stream", f'{uuid} stop {{"bye":"now"}}')
        await asyncio.wait_for(conn.closed.wait(), 3)
        uuid2 = await fs.inject_inbound_call()
        await _stream(fs, uuid2, ws.url("/s2"), "mono", "8k")
        conn2 = await _connection(ws, fs, events)
        await fs.wait_for(lambda: len(ws.connections) == 2, timeout=3)
        await fs.caller_hangup(uuid2)
        await asyncio.wait_for(ws.connections[1].closed.wait(), 3)
    assert [t for _, t in conn.texts] == ['{"hello":"meta"}', '{"type":"note","n":1}', '{"bye":"now"}']
    assert usage.startswith("-USAGE: <uuid> [start | stop | send_text | pause | resume | graceful-shutdown ]")
    assert conn.close_code == 1000
    assert conn2 is not None
    assert not _customs(events, "disconnect")
    assert [e.name for e in events].count("MEDIA_BUG_STOP") == 2


async def test_handshake_bytes_are_libwsc(tmp_path: Path) -> None:
    received: list[bytes] = []

    async def fake_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(fake_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs:
            uuid = await fs.inject_inbound_call()
            await _stream(fs, uuid, f"ws://127.0.0.1:{port}/stream?play=1.0&rate=16000", "mono", "16k")
            await fs.wait_for(lambda: bool(received), timeout=3)
    finally:
        server.close()
        await server.wait_closed()
    lines = received[0].decode().split("\r\n")
    assert lines[0] == "GET /stream?play=1.0&rate=16000 HTTP/1.1"
    assert [ln.split(":", 1)[0] for ln in lines[1:7]] == [
        "Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Origin",
    ]  # fmt: skip
    assert lines[1] == f"Host:127.0.0.1:{port}"
    assert lines[2] == "Upgrade:websocket"
    assert lines[3] == "Connection:upgrade"
    assert lines[5] == "Sec-WebSocket-Version:13"
    assert lines[6] == f"Origin:http://127.0.0.1:{port}"


async def test_audio_can_race_ahead_of_the_metadata(tmp_path: Path) -> None:
    """audio_before_metadata: binary frames first, then the metadata text, as mod_audio_stream can send."""
    config = EmulatorConfig(temp_dir=tmp_path, audio_before_metadata=3)
    async with WsPeer() as ws, FreeSwitchEmulator(config) as fs:
        events = fs.record_events()
        uuid = await fs.inject_inbound_call()
        await fs.api.execute("uuid_answer", uuid)
        assert await _stream(fs, uuid, ws.url("/s"), "mono", "8k", meta='{"m":1}') == "+OK Success\n"
        conn = await _connection(ws, fs, events)
        await asyncio.sleep(0.2)
        await fs.api.execute("uuid_audio_stream", f"{uuid} stop")
    assert [text for _, text in conn.texts] == ['{"m":1}']
    before = [at for at, _ in conn.binaries if at < conn.texts[0][0]]
    assert len(before) == 3
