"""The emulator's own ESL serializer and command reader, checked against the captures."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tests.fsemu.fixtures import fixtures_dir, parse_plain_event, read_blocks, split_messages
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
