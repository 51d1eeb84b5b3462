"""Call control on the FreeSWITCH emulator over ESL: uuid_transfer, conference, SIP originate and bridge,
uuid_hold, uuid_record, show registrations, uuid_kill/uuid_send_dtmf on SIP legs.

None of this is in the captures: the expected replies and event orders follow FreeSWITCH 1.10.12's sources
(see the docstrings of tests/fsemu/transfer.py, conference.py, outbound.py, hold.py, record.py, registry.py).
"""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.esl_session import EslSession as Esl
from tests.fsemu.loopback import DEFAULT_DIALPLAN

PASSWORD = "pw"
SUBSCRIBE = (
    "event json CHANNEL_CREATE CHANNEL_OUTGOING CHANNEL_ORIGINATE CHANNEL_UUID CHANNEL_STATE "
    "CHANNEL_CALLSTATE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER CHANNEL_EXECUTE "
    "CHANNEL_EXECUTE_COMPLETE CHANNEL_PARK CHANNEL_UNPARK CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_HOLD "
    "CHANNEL_UNHOLD CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CALL_UPDATE RECORD_START RECORD_STOP "
    "MEDIA_BUG_START MEDIA_BUG_STOP PLAYBACK_START DTMF BACKGROUND_JOB "
    "CUSTOM conference::maintenance sofia::register sofia::unregister"
)
A_UUID = "11111111-2222-3333-4444-555555555555"
DIALPLAN = {**DEFAULT_DIALPLAN, "3000": [("conference", "3000@default")], "7100": [("answer", "")]}


@pytest.fixture
async def fs(tmp_path: Path) -> AsyncIterator[FreeSwitchEmulator]:
    cfg = EmulatorConfig(password=PASSWORD, temp_dir=tmp_path, dialplan=dict(DIALPLAN))
    async with FreeSwitchEmulator(cfg) as emulator:
        yield emulator


@pytest.fixture
async def esl(fs: FreeSwitchEmulator) -> AsyncIterator[Esl]:
    session = await Esl.open(fs.port, PASSWORD, SUBSCRIBE)
    yield session
    await session.close()


async def _parked_call(fs: FreeSwitchEmulator, esl: Esl, *, answer: bool = True, **kw: object) -> str:
    uuid = await fs.inject_inbound_call(caller="1000", destination="7102", **kw)  # type: ignore[arg-type]
    await esl.until(lambda: "CHANNEL_PARK" in esl.names(uuid))
    if answer:
        assert await esl.api(f"uuid_answer {uuid}") == "+OK\n"
        await esl.until(lambda: "CALLSTATE ACTIVE" in esl.names(uuid))
    return uuid


async def test_transfer_xml_from_park(fs: FreeSwitchEmulator, esl: Esl) -> None:
    assert (
        await esl.api("uuid_transfer")
        == "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
    )
    assert await esl.api(f"uuid_transfer {A_UUID} 7100") == "-ERR No such channel!\n"
    uuid = await _parked_call(fs, esl)
    start = len(esl.events())
    assert await esl.api(f"uuid_transfer {uuid} 7100") == "+OK\n"
    await esl.until(lambda: "CHANNEL_EXECUTE_COMPLETE answer" in esl.names(uuid, start))
    assert esl.names(uuid, start)[:8] == [
        "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE park", "CALLSTATE RINGING", "STATE CS_ROUTING",
        "CALLSTATE ACTIVE", "STATE CS_EXECUTE", "CHANNEL_EXECUTE answer", "CHANNEL_EXECUTE_COMPLETE answer",
    ]  # fmt: skip
    unpark, routing = esl.events(uuid, start)[0], esl.events(uuid, start)[3]
    assert unpark.get("Caller-Destination-Number") == "7100"
    assert unpark.get("Caller-RDNIS") == "7102"
    assert unpark.get("Caller-Profile-Index") == "2"
    assert unpark.get("Channel-State-Number") == "2"  # CS_ROUTING requested while park ends
    source = unpark.get("Caller-Transfer-Source") or ""
    assert source.endswith(":bl_xfer:7100/default/XML")
    assert unpark.get("variable_transfer_source") == source == unpark.get("variable_transfer_history")
    assert unpark.get("variable_max_forwards") == "69"
    assert routing.get("Caller-Dialplan") == "XML"
    await esl.until(lambda: "CHANNEL_HANGUP" in esl.names(uuid))  # 7100 = answer only: the extension ends
    assert esl.last("CHANNEL_HANGUP", uuid).get("Hangup-Cause") == "NORMAL_CLEARING"


async def test_transfer_inline_restores_destination(fs: FreeSwitchEmulator, esl: Esl) -> None:
    uuid = await _parked_call(fs, esl)
    start = len(esl.events())
    assert await esl.api(f"uuid_transfer {uuid} hangup:USER_BUSY inline") == "+OK\n"
    await esl.until(lambda: "CHANNEL_HANGUP" in esl.names(uuid, start))
    names = esl.names(uuid, start)
    assert names[names.index("STATE CS_ROUTING") :][:5] == [
        "STATE CS_ROUTING", "CALLSTATE ACTIVE", "STATE CS_EXECUTE", "CHANNEL_EXECUTE hangup",
        "CHANNEL_HANGUP",
    ]  # fmt: skip
    routing, executing = esl.last("STATE CS_ROUTING", uuid), esl.last("STATE CS_EXECUTE", uuid)
    assert routing.get("Caller-Destination-Number") == "hangup:USER_BUSY"
    assert routing.get("Caller-Dialplan") == "inline"
    assert executing.get("Caller-Destination-Number") == "7102"  # inline_dialplan_hunt puts it back
    assert executing.get("Caller-RDNIS") is None
    assert esl.last("CHANNEL_HANGUP", uuid).get("Hangup-Cause") == "USER_BUSY"


async def test_transfer_both_legs_of_a_bridge(fs: FreeSwitchEmulator, esl: Esl) -> None:
    legs = ["aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa-0000-0000-0000-000000000002"]
    for leg in legs:
        assert (
            await esl.api(f"originate {{origination_uuid={leg}}}loopback/7101/default &park()")
            == f"+OK {leg}\n"
        )
    assert await esl.api(f"uuid_bridge {legs[0]} {legs[1]}") == f"+OK {legs[1]}\n"
    await esl.until(lambda: "CHANNEL_BRIDGE" in esl.names(legs[0]))
    start = len(esl.events())
    assert await esl.api(f"uuid_transfer {legs[0]} -both 7102 XML default") == "+OK\n"
    await esl.until(lambda: all("CHANNEL_PARK" in esl.names(leg, start) for leg in legs))
    rerouted = ["STATE CS_ROUTING", "STATE CS_EXECUTE", "CHANNEL_EXECUTE park", "CHANNEL_PARK"]
    assert esl.names(legs[0], start) == ["CHANNEL_UNBRIDGE", *rerouted]  # the originator reports the unbridge
    assert esl.names(legs[1], start) == rerouted
    assert all(fs.channels[leg].alive for leg in legs)


async def test_conference_join_and_leave(fs: FreeSwitchEmulator, esl: Esl) -> None:
    first = await _parked_call(fs, esl, answer=False)
    start = len(esl.events())
    assert await esl.api(f"uuid_transfer {first} conference:3000@default inline") == "+OK\n"
    await esl.until(lambda: "floor-change" in esl.names(start=start))
    names = esl.names(start=start)
    assert names[names.index("CHANNEL_EXECUTE conference") :] == [
        "CHANNEL_EXECUTE conference", "CHANNEL_PROGRESS_MEDIA", "CALLSTATE EARLY", "conference-create",
        "CHANNEL_ANSWER", "CALLSTATE ACTIVE", "add-member", "floor-change",
    ]  # fmt: skip
    added = esl.last("add-member")
    assert (added.get("Event-Subclass"), added.get("Conference-Name")) == ("conference::maintenance", "3000")
    assert (added.get("Unique-ID"), added.get("Member-ID"), added.get("Conference-Size")) == (first, "1", "1")
    assert added.get("Conference-Profile-Name") == "default"
    second = await fs.inject_inbound_call(caller="1001", destination="3000")  # the XML dialplan's conference
    await esl.until(lambda: "add-member" in esl.names(second))
    assert esl.last("add-member", second).get("Conference-Size") == "2"
    start = len(esl.events())
    await fs.caller_hangup(first)
    await esl.until(lambda: "CHANNEL_EXECUTE_COMPLETE conference" in esl.names(first, start))
    assert esl.names(first, start)[:3] == [
        "CHANNEL_HANGUP",
        "del-member",
        "CHANNEL_EXECUTE_COMPLETE conference",
    ]
    assert esl.last("del-member", first).get("Conference-Size") == "1"
    await fs.caller_hangup(second)
    await esl.until(lambda: "conference-destroy" in esl.names(start=start))


async def test_originate_user_and_park(fs: FreeSwitchEmulator, esl: Esl) -> None:
    fs.register_user("1001", contact_port=5080, user_agent="baresip")
    await esl.until(lambda: "sofia::register" in esl.names())
    reg = esl.last("sofia::register")
    assert (reg.get("from-user"), reg.get("network-port"), reg.get("user-agent")) == (
        "1001",
        "5080",
        "baresip",
    )
    dial = f"{{origination_uuid={A_UUID},origination_caller_id_number=4000}}user/1001 &park()"
    assert await esl.api(f"originate {dial}") == f"+OK {A_UUID}\n"
    await esl.until(lambda: "CHANNEL_PARK" in esl.names(A_UUID))
    assert esl.names(A_UUID) == [
        "CHANNEL_UUID", "CHANNEL_OUTGOING", "STATE CS_INIT", "CHANNEL_CREATE", "CHANNEL_ORIGINATE",
        "STATE CS_ROUTING", "STATE CS_CONSUME_MEDIA", "CHANNEL_PROGRESS", "CALLSTATE RINGING",
        "CHANNEL_ANSWER", "CALLSTATE ACTIVE", "CHANNEL_OUTGOING", "CALL_UPDATE", "STATE CS_EXECUTE",
        "CHANNEL_EXECUTE park",
        "CHANNEL_PARK",
    ]  # fmt: skip
    create = esl.last("CHANNEL_CREATE", A_UUID)
    assert create.get("Channel-Name") == "sofia/internal/sip:1001@127.0.0.1:5080"
    assert create.get("Call-Direction") == "outbound"
    assert (create.get("Caller-Caller-ID-Number"), create.get("Caller-Destination-Number")) == (
        "4000",
        "1001",
    )
    assert esl.last("CALL_UPDATE", A_UUID).get("Caller-Caller-ID-Number") == "1001"  # flipped
    assert esl.last("CHANNEL_ANSWER", A_UUID).get("variable_read_codec") == "PCMA"


async def test_originate_failures_and_gateway(fs: FreeSwitchEmulator, esl: Esl) -> None:
    fs.register_user("1002", reject="USER_BUSY")
    fs.register_user("1003", answer_after=None)
    fs.add_gateway("carrier")
    assert await esl.api("originate user/1005 &park()") == "-ERR USER_NOT_REGISTERED\n"
    assert await esl.api("originate user/2000 &park()") == "-ERR SUBSCRIBER_ABSENT\n"
    assert await esl.api("originate sofia/gateway/nowhere/5551234 &park()") == "-ERR INVALID_GATEWAY\n"
    assert await esl.api("originate user/1002 &park()") == "-ERR USER_BUSY\n"
    busy = esl.last("CHANNEL_HANGUP")
    assert (busy.get("Hangup-Cause"), busy.get("variable_sip_invite_failure_status")) == ("USER_BUSY", "486")
    assert await esl.api("originate {originate_timeout=1}user/1003 &park()") == "-ERR NO_ANSWER\n"
    assert esl.last("CHANNEL_HANGUP").get("Hangup-Cause") == "NO_ANSWER"
    fs.unregister_user("1003")
    await esl.until(lambda: "sofia::unregister" in esl.names())
    assert await esl.api("originate user/1003 &park()") == "-ERR USER_NOT_REGISTERED\n"
    job = await esl.bgapi("originate sofia/gateway/carrier/5551234 7102 XML default")
    await esl.until(lambda: any(e.get("Job-UUID") == job for e in esl.events()))
    done = next(e for e in esl.events() if e.get("Job-UUID") == job)
    assert (done.body or "").startswith("+OK ")
    uuid = (done.body or "").split()[1]
    await esl.until(lambda: "CHANNEL_PARK" in esl.names(uuid))
    park = esl.last("CHANNEL_PARK", uuid)
    assert park.get("Channel-Name") == "sofia/external/5551234"
    assert park.get("variable_sip_gateway_name") == "carrier"
    assert park.get("Caller-Destination-Number") == "7102"  # originate <exten> transfers the answered leg


@pytest.mark.parametrize("after", ["hangup_after_bridge", "park"])
async def test_bridge_to_user(fs: FreeSwitchEmulator, esl: Esl, after: str) -> None:
    fs.register_user("1001")
    caller = await _parked_call(fs, esl, answer=False)
    if after == "hangup_after_bridge":
        assert await esl.api(f"uuid_setvar {caller} hangup_after_bridge true") == "+OK\n"
    start = len(esl.events())
    assert await esl.api(f"uuid_transfer {caller} bridge:user/1001,park inline") == "+OK\n"
    await esl.until(lambda: "CHANNEL_BRIDGE" in esl.names(caller))
    bridge = esl.last("CHANNEL_BRIDGE", caller)
    callee = bridge.get("Bridge-B-Unique-ID") or ""
    assert bridge.get("Bridge-A-Unique-ID") == caller
    assert bridge.get("Other-Leg-Unique-ID") == callee
    assert esl.names(caller, start)[-7:] == [
        "CHANNEL_EXECUTE bridge", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CALLSTATE EARLY",
        "CHANNEL_ANSWER", "CALLSTATE ACTIVE", "CHANNEL_BRIDGE",
    ]  # fmt: skip
    assert esl.last("CHANNEL_OUTGOING", callee).get("Other-Type") == "originator"
    assert await esl.api(f"uuid_kill {callee}") == "+OK\n"
    expected = (
        ["CHANNEL_HANGUP"] if after == "hangup_after_bridge" else ["CHANNEL_EXECUTE park", "CHANNEL_PARK"]
    )
    await esl.until(lambda: expected[-1] in esl.names(caller, start))
    tail = esl.names(caller)[esl.names(caller).index("CHANNEL_UNBRIDGE") :]
    assert tail[: len(expected) + 2] == ["CHANNEL_UNBRIDGE", "CHANNEL_EXECUTE_COMPLETE bridge", *expected]


async def test_hold_and_unhold(fs: FreeSwitchEmulator, esl: Esl) -> None:
    uuid = await _parked_call(fs, esl)
    start = len(esl.events())
    assert await esl.api("uuid_hold") == "-USAGE: [off|toggle] <uuid> [<display>]\n"
    assert await esl.api(f"uuid_hold {uuid}") == "+OK Success\n"
    assert await esl.api(f"uuid_hold {uuid}") == "-ERR Operation failed\n"  # already HELD
    assert await esl.api(f"uuid_hold toggle {uuid}") == "+OK Success\n"
    assert await esl.api(f"uuid_hold off {uuid}") == "-ERR Operation failed\n"  # not HELD
    assert await esl.api(f"uuid_hold {A_UUID}") == "+OK Success\n"  # unknown uuid: not an error
    await esl.until(lambda: "CHANNEL_UNHOLD" in esl.names(uuid, start))
    assert esl.names(uuid, start) == ["CALLSTATE HELD", "CHANNEL_HOLD", "CALLSTATE UNHELD", "CHANNEL_UNHOLD"]
    held = esl.last("CHANNEL_HOLD", uuid)
    assert held.get("Channel-Call-State") == "HELD"
    assert held.get("Caller-Channel-Last-Hold") != "0"
    assert esl.last("CALLSTATE UNHELD", uuid).get("Original-Channel-Call-State") == "HELD"
    assert esl.last("CALLSTATE UNHELD", uuid).get("Channel-Call-State-Number") == "8"


def _speech(path: Path, seconds: float = 2.0) -> Path:
    pcm = (8000 * np.sin(2 * np.pi * 300 * np.arange(int(8000 * seconds)) / 8000)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setparams((1, 2, 8000, 0, "NONE", "not compressed"))
        out.writeframes(pcm.tobytes())
    return path


async def test_record_start_mask_stop(fs: FreeSwitchEmulator, esl: Esl, tmp_path: Path) -> None:
    uuid = await _parked_call(fs, esl, audio=_speech(tmp_path / "caller.wav"))
    path = tmp_path / "rec" / "one.wav"
    usage = "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]\n"
    assert await esl.api(f"uuid_record {uuid} start") == usage
    assert await esl.api(f"uuid_record {A_UUID} start {path}") == "-ERR Cannot locate session!\n"
    start = len(esl.events())
    assert await esl.api(f"uuid_record {uuid} start {path}") == "+OK Success\n"
    await asyncio.sleep(0.3)
    assert await esl.api(f"uuid_record {uuid} mask {path}") == "+OK Success\n"
    await asyncio.sleep(0.2)
    assert await esl.api(f"uuid_record {uuid} stop {path}") == "+OK Success\n"
    assert await esl.api(f"uuid_record {uuid} stop {path}") == "-ERR Cannot stop record session!\n"
    await esl.until(lambda: "MEDIA_BUG_STOP" in esl.names(uuid, start))
    assert esl.names(uuid, start) == ["RECORD_START", "MEDIA_BUG_START", "RECORD_STOP", "MEDIA_BUG_STOP"]
    assert esl.last("RECORD_START", uuid).get("Record-File-Path") == str(path)
    assert esl.last("MEDIA_BUG_START", uuid).get("Media-Bug-Function") == "session_record"
    stop = esl.last("RECORD_STOP", uuid)
    assert stop.get("Record-File-Path") == str(path)
    assert stop.get("Record-Completion-Cause") == "success-maxtime"
    with wave.open(str(path)) as rec:  # record_stereo=true (directory user): caller left, write side right
        assert (rec.getframerate(), rec.getsampwidth(), rec.getnchannels()) == (8000, 2, 2)
        pcm = np.frombuffer(rec.readframes(rec.getnframes()), dtype="<i2").reshape(-1, 2)
    assert 0.45 * 8000 <= len(pcm) <= 2 * 8000  # ~0.5 s (plus api round trips)
    assert stop.get("variable_record_samples") == str(len(pcm))
    assert np.abs(pcm[:2000, 0]).max() > 1000  # the caller's audio ...
    assert np.abs(pcm[-800:, 0]).max() == 0  # ... then masked


async def test_record_stop_all_and_hangup(fs: FreeSwitchEmulator, esl: Esl, tmp_path: Path) -> None:
    uuid = await _parked_call(fs, esl)
    paths = [tmp_path / f"{n}.wav" for n in ("a", "b", "c")]
    for path in paths[:2]:
        assert await esl.api(f"uuid_record {uuid} start {path}") == "+OK Success\n"
    await asyncio.sleep(0.1)
    assert await esl.api(f"uuid_record {uuid} stop all") == "+OK Success\n"
    assert await esl.api(f"uuid_record {uuid} stop all") == "-ERR Cannot stop record session!\n"
    assert [e.get("Record-File-Path") for e in esl.events(uuid) if e.get("Event-Name") == "RECORD_STOP"] == [
        str(p) for p in paths[:2]
    ]
    start = len(esl.events())
    assert await esl.api(f"uuid_record {uuid} start {paths[2]}") == "+OK Success\n"
    await asyncio.sleep(0.1)
    await fs.caller_hangup(uuid)
    await esl.until(lambda: "CHANNEL_HANGUP_COMPLETE" in esl.names(uuid, start))
    names = esl.names(uuid, start)
    assert names[names.index("CHANNEL_HANGUP") : names.index("CHANNEL_HANGUP_COMPLETE") + 1] == [
        "CHANNEL_HANGUP", "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE park", "STATE CS_HANGUP", "RECORD_STOP",
        "MEDIA_BUG_STOP", "CALLSTATE HANGUP", "STATE CS_REPORTING", "CHANNEL_HANGUP_COMPLETE",
    ]  # fmt: skip
    assert esl.last("RECORD_STOP", uuid).get("Record-Completion-Cause") == "success-silence"
    assert all(path.stat().st_size > 44 for path in paths)


async def test_show_registrations(fs: FreeSwitchEmulator, esl: Esl) -> None:
    assert await esl.api("show registrations as json") == '{"row_count": 0}\n'
    assert await esl.api("show registrations") == "\n0 total.\n"
    fs.register_user("1001", contact_host="10.0.0.7", contact_port=5062, expires=300)
    rows = json.loads(await esl.api("show registrations as json"))
    assert rows["row_count"] == 1
    row = rows["rows"][0]
    assert list(row) == [
        "reg_user", "realm", "token", "url", "expires", "network_ip", "network_port", "network_proto",
        "hostname", "metadata",
    ]  # fmt: skip
    assert row["url"] == "sofia/internal/sip:1001@10.0.0.7:5062"
    assert (row["reg_user"], row["realm"], row["network_port"], row["network_proto"]) == (
        "1001", "127.0.0.1", "5062", "udp"
    )  # fmt: skip
    text = await esl.api("show registrations")
    assert text.startswith(
        "reg_user,realm,token,url,expires,network_ip,network_port,network_proto,hostname,metadata\n"
    )
    assert text.endswith("\n\n1 total.\n")
    fs.unregister_user("1001")
    assert await esl.api("show registrations as json") == '{"row_count": 0}\n'


async def test_kill_unanswered_sip_call_and_send_dtmf(fs: FreeSwitchEmulator, esl: Esl) -> None:
    uuid = await _parked_call(fs, esl, answer=False)
    assert await esl.api(f"uuid_send_dtmf {uuid} 12") == f"+OK {uuid} sent DTMF 12.\n"
    assert await esl.api(f"uuid_send_dtmf {A_UUID} 1") == "-ERR Cannot locate session!\n"
    assert await esl.api("uuid_send_dtmf") == "-USAGE: <uuid> <dtmf_data>\n"
    await asyncio.sleep(0.15)
    assert "DTMF" not in esl.names()  # the digits go to the SIP phone as RFC 2833, no event
    assert await esl.api(f"uuid_kill {uuid} USER_BUSY") == "+OK\n"
    await esl.until(lambda: "CHANNEL_HANGUP_COMPLETE" in esl.names(uuid))
    assert esl.last("CHANNEL_HANGUP", uuid).get("Hangup-Cause") == "USER_BUSY"
    done = esl.last("CHANNEL_HANGUP_COMPLETE", uuid)
    assert (done.get("Hangup-Cause"), done.get("variable_hangup_cause_q850")) == ("USER_BUSY", "17")
    assert done.get("variable_sip_hangup_disposition") == "send_refuse"
