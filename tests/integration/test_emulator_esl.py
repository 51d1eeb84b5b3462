"""ESL behaviour of the emulator over a raw socket: auth, replies, subscriptions, slow listeners, restart."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.fixtures import parse_json_event, parse_plain_event
from tests.fsemu.replay import EslPeer
from tests.fsemu.ws_peer import WsPeer

GOODBYE = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


async def _authed(fs: FreeSwitchEmulator, password: str = "pw") -> EslPeer:
    peer = await EslPeer.connect("127.0.0.1", fs.port)
    peer.send(f"auth {password}\n\n".encode())
    await peer.wait_count(2, 3)
    return peer


async def _command(peer: EslPeer, line: str, replies: int = 1) -> list[bytes]:
    start = len(peer.received)
    peer.send(line.encode() + b"\n\n")
    await peer.wait_count(start + replies, 5)
    out = []
    for msg in peer.received[start:]:
        text = msg.header("Reply-Text")
        out.append(text.encode() if text is not None else msg.body)
    return out


async def test_auth_commands_and_exit() -> None:
    async with FreeSwitchEmulator(EmulatorConfig(password="pw")) as fs:
        peer = await EslPeer.connect("127.0.0.1", fs.port)
        assert (await _command(peer, "api status"))[-1] == b"-ERR command not found"  # before auth
        assert (await _command(peer, "auth pw"))[-1] == b"+OK accepted"
        assert await _command(peer, "log") == [b"+OK log level  [7]"]
        assert await _command(peer, "linger") == [b"-ERR not controlling a session"]
        assert await _command(peer, "filter Event-Name CHANNEL_PARK") == [
            b"+OK filter added. [Event-Name]=[CHANNEL_PARK]"
        ]
        assert await _command(peer, "filter delete Event-Name") == [b"+OK filter deleted. [Event-Name][]"]
        assert await _command(peer, "noevents") == [b"-ERR not listening for events"]
        assert await _command(peer, "event plain") == [b"-ERR no keywords supplied"]
        assert await _command(peer, "bogus") == [b"-ERR command not found"]
        assert await _command(peer, "api nosuch") == [b"-ERR nosuch Command not found!\n"]
        assert await _command(peer, "api uuid_kill 00000000-0000-0000-0000-000000000000") == [
            b"-ERR No such channel!\n"
        ]
        assert await _command(peer, "api show channels as json") == [b'{"row_count": 0}\n']
        assert await _command(peer, "exit", 2) == [b"+OK bye", GOODBYE]
        await fs.wait_for(lambda: fs.connections == 0)
        await peer.close()


async def test_wrong_password_gets_notice_and_close() -> None:
    async with FreeSwitchEmulator(EmulatorConfig(password="pw")) as fs:
        peer = await EslPeer.connect("127.0.0.1", fs.port)
        assert await _command(peer, "auth nope", 3) == [b"", b"-ERR invalid", GOODBYE]
        await fs.wait_for(lambda: fs.connections == 0)
        await peer.close()


async def test_bgapi_honours_job_uuid_and_json_events() -> None:
    job = "11111111-2222-3333-4444-555555555555"
    async with FreeSwitchEmulator(EmulatorConfig(password="pw")) as fs:
        peer = await _authed(fs)
        assert await _command(peer, "event json BACKGROUND_JOB") == [b"+OK event listener enabled json"]
        replies = await _command(peer, f"bgapi msleep 10\nJob-UUID: {job}", 2)
        assert replies[0] == f"+OK Job-UUID: {job}".encode()
        assert peer.received[-2].header("Job-UUID") == job
        event = parse_json_event(peer.received[-1].body)
        assert event.names[-3:] == ["Job-UUID", "Job-Command", "Job-Command-Arg"]
        assert event.get("Job-UUID") == job
        assert event.body == "+OK"
        body = json.loads(peer.received[-1].body)
        assert body["Content-Length"] == "3"
        await peer.close()


async def test_custom_subclass_subscription_and_channels_json() -> None:
    # channel_table_lag=0: rows read right after the events (the lag has its own twin in test_live_drift)
    async with FreeSwitchEmulator(EmulatorConfig(password="pw", channel_table_lag=0.0)) as fs:
        peer = await _authed(fs)
        await _command(peer, "event plain CHANNEL_PARK CUSTOM mod_audio_stream::error")
        uuid = await fs.inject_inbound_call(caller="1001", destination="7102")
        await peer.wait_count(4, 3)
        park = parse_plain_event(peer.received[3].body)
        assert park.get("Event-Name") == "CHANNEL_PARK"
        assert park.get("Unique-ID") == uuid
        await fs.api.execute("uuid_audio_stream", f"{uuid} start ws://127.0.0.1:9/x mono 8k")
        await peer.wait_count(5, 3)
        error = parse_plain_event(peer.received[4].body)
        assert error.get("Event-Subclass") == "mod_audio_stream::error"
        assert error.inner_length_ok
        rows = json.loads((await _command(peer, "api show channels as json"))[0])
        assert rows["row_count"] == 1
        assert rows["rows"][0]["uuid"] == uuid
        assert rows["rows"][0]["cid_num"] == "1001"
        assert rows["rows"][0]["dest"] == "7102"
        await peer.close()


async def test_slow_listener_is_dropped_after_max_missed() -> None:
    cfg = EmulatorConfig(password="pw", listener_queue_max=50, max_missed=20)
    async with FreeSwitchEmulator(cfg) as fs:
        reader, writer = await asyncio.open_connection("127.0.0.1", fs.port)
        writer.write(b"auth pw\n\nevent plain ALL\n\n")
        async with asyncio.timeout(5):  # subscribed: the emulator said so
            await reader.readuntil(b"+OK event listener enabled plain")
        template = fs.build_event("HEARTBEAT", [("Event-Info", "x" * 4000)])
        await fs.emit_burst([template], repeat=5000)  # the client reads nothing
        await fs.wait_for(lambda: fs.connections == 0, timeout=5)
        data = await asyncio.wait_for(reader.read(), 5)  # what got through, then EOF without a notice
        assert not data.endswith(GOODBYE)
        writer.close()


async def test_stop_and_restart_keep_channels() -> None:
    async with FreeSwitchEmulator(EmulatorConfig(password="pw", channel_table_lag=0.0)) as fs:  # rows at once
        uuid = await fs.inject_inbound_call()
        peer = await _authed(fs)
        port = fs.port
        await fs.stop()
        await asyncio.wait_for(peer._task, 3)  # connection dropped without a notice
        assert uuid in fs.channels
        await fs.start()
        assert fs.port == port
        peer2 = await _authed(fs)
        rows = json.loads((await _command(peer2, "api show channels as json"))[0])
        assert rows["rows"][0]["uuid"] == uuid
        assert await _command(peer2, f"api uuid_getvar {uuid} sip_from_user") == [b"1000"]
        await peer.close()
        await peer2.close()


async def test_msleep_blocks_the_listener() -> None:
    async with FreeSwitchEmulator(EmulatorConfig(password="pw")) as fs:
        peer = await _authed(fs)
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await _command(peer, "api msleep 300") == [b"+OK"]
        assert loop.time() - start >= 0.3
        await peer.close()


async def test_shutdown_leaves_no_tasks_or_threads(tmp_path: Path) -> None:
    threads, tasks = threading.active_count(), len(asyncio.all_tasks())
    async with WsPeer() as ws, FreeSwitchEmulator(EmulatorConfig(password="pw", temp_dir=tmp_path)) as fs:
        peer = await _authed(fs)
        await _command(peer, "event json ALL")
        uuid = await fs.inject_inbound_call()
        await fs.api.execute("uuid_audio_stream", f"{uuid} start {ws.url('/s?play=0.5')} mono 8k")
        await fs.api.execute("originate", "loopback/7101/default &park()")
        await fs.api.execute("uuid_broadcast", f"{uuid} tone_stream://%(1000,0,440);loops=-1 aleg")
        await asyncio.sleep(0.3)
        await peer.close()
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == tasks
    assert threading.active_count() == threads
