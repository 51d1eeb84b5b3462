"""The emulator's own ESL serializer and command reader, checked against the captures."""

from __future__ import annotations

import json
import re
import uuid

from hypothesis import given
from hypothesis import strategies as st

from tests.fsemu.fixtures import Message, fixtures_dir, parse_plain_event, read_blocks, split_messages
from tests.fsemu.transcript import Transcript, compare
from tests.fsemu.wire import CommandReader, CommandTooLong, Event, serialize_json, url_encode


def test_url_encode_matches_captured_values() -> None:
    assert url_encode("2001:db8::10") == "2001%3Adb8%3A%3A10"
    assert url_encode("Fri, 20 Nov 2026 23:00:22 GMT") == "Fri,%2020%20Nov%202026%2023%3A00%3A22%20GMT"
    assert url_encode("{origination_uuid=x}loopback/7101/default &park()") == (
        "%7Borigination_uuid%3Dx%7Dloopback/7101/default%20%26park()"
    )
    assert (
        url_encode("tone_stream://%(1000,0,440);loops=-1") == "tone_stream%3A//%25(1000,0,440)%3Bloops%3D-1"
    )
    assert url_encode("é\r\n") == "%C3%A9%0D%0A"


def test_plain_serialisation_reproduces_a_captured_event_byte_for_byte() -> None:
    blocks = read_blocks(fixtures_dir() / "esl_inbound_session.txt")
    for block in blocks:
        if block.direction != "FS>APP":
            continue
        for msg in split_messages(block.data):
            if msg.content_type != "text/event-plain":
                continue
            parsed = parse_plain_event(msg.body)
            event = Event([(k, str(v)) for k, v in parsed.headers], parsed.body)
            assert (
                event.plain_frame()
                == b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(msg.body) + msg.body
            )


def test_json_serialisation_reproduces_captured_json_events() -> None:
    checked = 0
    for block in read_blocks(fixtures_dir() / "esl_inbound_session.txt"):
        for msg in split_messages(block.data) if block.direction == "FS>APP" else []:
            if msg.content_type != "text/event-json":
                continue
            pairs = json.loads(msg.body, object_pairs_hook=list)
            body = next((v for k, v in pairs if k == "_body"), None)
            headers = [
                (k, v) for k, v in pairs if k != "_body" and not (k == "Content-Length" and body is not None)
            ]
            assert serialize_json(Event(headers, body)) == msg.body
            checked += 1
    assert checked > 20


def test_command_reader_byte_by_byte() -> None:
    stream = (
        b"\n\rauth pw\n\nsendmsg abc\ncall-command: execute\nexecute-app-name: playback\r\n\r\napi status\n\n"
    )
    stream += b"sendevent CUSTOM\nContent-Length: 5\n\nhello"
    reader = CommandReader()
    got = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        got += list(reader.commands())
    assert [c.line for c in got] == ["auth pw", "sendmsg abc", "api status", "sendevent CUSTOM"]
    assert got[1].header("execute-app-name") == "playback"
    assert got[3].body == "hello"


@given(st.binary(max_size=4096))
def test_command_reader_parses_or_raises_its_error(data: bytes) -> None:
    reader = CommandReader()
    try:
        reader.feed(data)
        for cmd in reader.commands():
            assert isinstance(cmd.line, str)
    except CommandTooLong:
        pass


# -- transcripts (tests/fsemu/transcript.py) -------------------------------------------------------
def _event_message(headers: list[tuple[str, str]], body: str | None = None) -> Message:
    frame = Event(list(headers), body).json_frame()
    return split_messages(frame)[0]


def test_transcript_normalises_and_round_trips() -> None:
    a_leg, b_leg, job = (str(uuid.uuid4()) for _ in range(3))
    transcript = Transcript(frozenset({"MEDIA_BUG_STOP"}))
    transcript.name_leg(a_leg, "A")
    transcript.add_command(f"api uuid_audio_stream {a_leg} start ws://127.0.0.1:40123/x mono 8k")
    transcript.add_message(
        split_messages(b"Content-Type: api/response\nContent-Length: 12\n\n+OK Success\n")[0]
    )
    transcript.add_message(_event_message([("Event-Name", "CHANNEL_CREATE"), ("Unique-ID", b_leg),
                                           ("Channel-Name", "loopback/7101-b")]))  # fmt: skip
    stop = [("Event-Name", "MEDIA_BUG_STOP"), ("Media-Bug-Function", "audio_stream"), ("Unique-ID", a_leg)]
    transcript.add_message(_event_message([*stop, ("variable_x", "1")]))
    transcript.add_message(_event_message([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", job)], "+OK\n"))
    row = json.dumps(
        {"uuid": a_leg, "created": "2026-12-07 05:26:54", "created_epoch": "1796621214", "hostname": "vm"},
        separators=(",", ":"),
    )
    transcript.add_message(split_messages(b"Content-Length: %d\n\n%s" % (len(row), row.encode()))[0])
    text = transcript.render(["header"])
    assert "ws://<WORKER>/x" in text
    assert "~ B CHANNEL_CREATE" in text
    assert "= A MEDIA_BUG_STOP: Event-Name Media-Bug-Function Unique-ID\n" in text  # no variable_*
    assert "~ - BACKGROUND_JOB +OK\n" in text
    assert '\\"created\\":\\"<DATE>\\",\\"created_epoch\\":\\"<EPOCH>\\",\\"hostname\\":\\"<HOST>\\"' in text
    assert not {a_leg, b_leg, job} & set(re.findall(r"[0-9a-f-]{36}", text))
    parsed = Transcript.parse(text)
    assert compare(parsed, transcript) == []
    assert parsed.render() == transcript.render()


def test_transcript_compare_reports_each_kind_of_drift() -> None:
    want = Transcript.parse(
        '> api x\n< api/response "+OK\\n"\n~ A MEDIA_BUG_START audio_stream\n~ B CHANNEL_PARK\n'
        "~ A MEDIA_BUG_STOP audio_stream\nw 1 close 1000 Normal closure\n"
    )
    same_per_leg = Transcript.parse(
        '> api x\n< api/response "+OK\\n"\n~ B CHANNEL_PARK\n~ A MEDIA_BUG_START audio_stream\n'
        "~ A MEDIA_BUG_STOP audio_stream\nw 1 close 1000 Normal closure\n# a comment\n"
    )
    assert compare(want, same_per_leg) == []  # legs interleave freely; comments are not compared
    drifted = Transcript.parse(
        '> api x\n< api/response "+OK"\n~ A MEDIA_BUG_STOP audio_stream\n~ A MEDIA_BUG_START audio_stream\n'
        "~ B CHANNEL_PARK\nw 1 close 1000\n"
    )
    problems = compare(want, drifted)
    assert [p.split(" ", 1)[0] for p in problems] == ["replies", "worker", "events"]
    assert "events of A #0" in problems[2]
