"""Replays the recorded FreeSWITCH sessions against the emulator and compares it with the captures.

Compared (after mapping UUIDs): replies in order and byte-exact (``status`` by shape, its counters vary);
per channel, the sequence of (Event-Name, Event-Subclass) and every event's header NAMES in ORDER; framing
(outer and inner Content-Length). Events are compared per channel because the interleaving of different
channels' events depends on thread timing in FreeSWITCH (e.g. the B-leg's teardown vs. the A-leg's).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.fixtures import Message, fixtures_dir, read_blocks
from tests.fsemu.replay import (
    EslPeer,
    Segment,
    UuidMap,
    decode,
    event_signature,
    group_events,
    learn_uuids,
    replay,
    replies,
    segments,
)
from tests.fsemu.ws_peer import WsPeer

PASSWORD = "SwitchyardESL1"
STATUS = re.compile(
    rb"UP 0 years, \d+ days, \d+ hours, \d+ minutes?, \d+ seconds, \d+ milliseconds, \d+ microseconds\n"
    rb"FreeSWITCH \(Version 1\.10\.12-release  64bit\) is ready\n\d+ session\(s\) since startup\n"
    rb"\d+ session\(s\) - peak \d+, last 5min \d+ \n"
    rb"0 session\(s\) per Sec out of max 30, peak 0, last 5min 0 \n"
    rb"1000 session\(s\) max\nmin idle cpu [\d.]+/[\d.]+\nCurrent Stack Size/Max 240K/8192K\n"
)

pytestmark = pytest.mark.skipif(not fixtures_dir().is_dir(), reason="captures not available")


def _session(name: str, index: int) -> list[Segment]:
    return segments(b for b in read_blocks(fixtures_dir() / name) if b.session == index)


def _assert_framing(messages: list[Message]) -> None:
    for msg in messages:
        event = decode(msg)
        if event is not None:
            assert event.inner_length_ok, f"inner body framing of {event.get('Event-Name')}"


def _compare(captured: list[Message], actual: list[Message], uuids: UuidMap) -> None:
    learn_uuids(captured, actual, uuids)
    _assert_framing(actual)
    want, got = replies(captured), replies(actual)
    assert [ct for ct, _ in got] == [ct for ct, _ in want]
    for (_, wbody), (_, gbody) in zip(want, got, strict=True):
        if wbody.startswith(b"UP "):
            assert STATUS.fullmatch(gbody), gbody
        else:
            assert gbody == uuids.apply(wbody)
    cap, act = group_events(captured), group_events(actual)
    assert sorted(act) == sorted(cap)
    for key, events in cap.items():
        assert [event_signature(e) for e in act[key]] == [event_signature(e) for e in events], key
        for want_event, got_event in zip(events, act[key], strict=True):
            diff = [d for d in difflib.ndiff(want_event.names, got_event.names) if d[0] in "+-"]
            assert not diff, f"{key} {event_signature(want_event)}: {diff[:10]}"


Hook = Callable[[int, UuidMap], Awaitable[None]]


async def _run(
    segs: list[Segment], fs: FreeSwitchEmulator, rewrite: Callable[[bytes], bytes], hook: Hook | None = None
) -> tuple[list[Message], list[Message], UuidMap]:
    for seg in segs:
        if seg.command is not None:
            seg.command = rewrite(seg.command)
    peer = await EslPeer.connect("127.0.0.1", fs.port)
    uuids = UuidMap()

    async def before(index: int, mapping: UuidMap) -> None:
        done = sum(len(s.expected) for s in segs[:index])
        learn_uuids([m for s in segs[:index] for m in s.expected], peer.received[:done], mapping)
        if hook is not None:
            await hook(index, mapping)

    try:
        await replay(peer, segs, uuids, before)
    finally:
        await peer.close()
    return [m for s in segs for m in s.expected], peer.received, uuids


def _rewriter(ws: WsPeer, tmp: Path) -> Callable[[bytes], bytes]:
    def rewrite(data: bytes) -> bytes:
        data = data.replace(b"ws://127.0.0.1:8765", ws.url("").encode()).replace(
            b" /tmp/", f" {tmp}/".encode()
        )
        return data.replace(b"ws://127.0.0.1:8799", b"ws://127.0.0.1:9")

    return rewrite


async def test_session1_plain_all(tmp_path: Path) -> None:
    segs = _session("esl_inbound_session.txt", 0)
    async with WsPeer() as ws, FreeSwitchEmulator(EmulatorConfig(password=PASSWORD, temp_dir=tmp_path)) as fs:
        captured, actual, uuids = await _run(segs, fs, _rewriter(ws, tmp_path))
    _compare(captured, actual, uuids)


async def test_session2_json_with_sip_call(tmp_path: Path) -> None:
    segs = _session("esl_inbound_session.txt", 1)
    # sipp's REGISTER (CUSTOM sofia::register) is not emulated: drop it from the expectation.
    for seg in segs:
        seg.expected = [m for m in seg.expected if b"sofia::register" not in m.body]
    async with WsPeer() as ws, FreeSwitchEmulator(EmulatorConfig(password=PASSWORD, temp_dir=tmp_path)) as fs:
        sip_uuid: list[str] = []

        async def hook(index: int, uuids: UuidMap) -> None:
            command = segs[index].command or b""
            if command.startswith(b"api uuid_answer") and not sip_uuid:
                sip_uuid.append(await fs.inject_inbound_call(caller="1000", destination="7102", ptime_ms=30))
                captured_uuid = command.split()[2].decode()
                uuids.add(captured_uuid, sip_uuid[0])
                await fs.wait_for(lambda: fs.channels[sip_uuid[0]].parked)
            if command.startswith(b"exit") and sip_uuid:
                await fs.caller_hangup(sip_uuid[0])
                await fs.wait_for(lambda: sip_uuid[0] not in fs.channels)

        captured, actual, uuids = await _run(segs, fs, _rewriter(ws, tmp_path), hook)
    _compare(captured, actual, uuids)


async def test_playback_queue_and_break(tmp_path: Path) -> None:
    segs = _session("esl_playback_queue.txt", 0)
    _write_tones(tmp_path)
    async with FreeSwitchEmulator(EmulatorConfig(password=PASSWORD, temp_dir=tmp_path)) as fs:

        def rewrite(data: bytes) -> bytes:
            return data.replace(b" /srv/", f" {tmp_path}/".encode())

        captured, actual, uuids = await _run(segs, fs, rewrite)
    _compare(captured, actual, uuids)


async def test_dtmf_and_bridge(tmp_path: Path) -> None:
    segs = _session("esl_dtmf_and_bridge.txt", 0)
    async with FreeSwitchEmulator(EmulatorConfig(password=PASSWORD, temp_dir=tmp_path)) as fs:
        captured, actual, uuids = await _run(segs, fs, lambda data: data)
    _compare(captured, actual, uuids)


def _write_tones(folder: Path) -> None:
    import wave

    from tests.fsemu.ws_peer import tone_pcm

    for name, freq in (("tone_a_440hz_1500msxxxx.wav", 440.0), ("tone_b_880hz_1500msxxxx.wav", 880.0)):
        with wave.open(str(folder / name), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(tone_pcm(1.5, 8000, freq))
    (folder / "tone_c_660hz_4000msxxxx.r16").write_bytes(tone_pcm(4.0, 16000, 660.0))


def test_fixture_reader_roundtrip() -> None:
    blocks = read_blocks(fixtures_dir() / "esl_inbound_session.txt")
    assert blocks[0].direction == "FS>APP"
    assert blocks[0].data == b"Content-Type: auth/request\n\n"
    assert {b.session for b in blocks} == {0, 1}
    for seg in _session("esl_dtmf_and_bridge.txt", 0):
        _assert_framing(seg.expected)
