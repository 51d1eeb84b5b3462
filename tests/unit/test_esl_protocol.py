"""The sans-IO ESL parser and event decoder, fed the real captures byte by byte."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.freeswitch.decode import decode_event, decode_event_json, decode_event_plain
from controller.freeswitch.events import (
    AudioStreamError,
    AudioStreamPlay,
    BackgroundJob,
    ChannelExecute,
    ChannelHangupComplete,
    Dtmf,
    Event,
    PlaybackStop,
)
from controller.freeswitch.protocol import EslParser, Frame, ProtocolError, encode_command
from tests.unit.fixture_events import read_blocks

CAPTURES = (
    "esl_inbound_session.txt",
    "esl_outbound_session.txt",
    "esl_playback_queue.txt",
    "esl_dtmf_and_bridge.txt",
)


def feed_bytewise(data: bytes) -> list[Frame]:
    parser = EslParser()
    frames: list[Frame] = []
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        frames.extend(parser)
    assert parser.at_frame_boundary()
    return frames


def captured_events(capture: str) -> list[Event]:
    data = b"".join(b.data for b in read_blocks(capture) if b.direction == "FS>APP")
    return [decode_event(f) for f in feed_bytewise(data) if f.content_type.startswith("text/event-")]


def expected_length(block: bytes) -> int:
    head, _, _ = block.partition(b"\n\n")
    for line in head.split(b"\n"):
        if line.startswith(b"Content-Length: "):
            return int(line.split(b": ")[1])
    return 0


@pytest.mark.parametrize("capture", CAPTURES)
def test_every_captured_frame_parses_byte_by_byte(capture: str) -> None:
    blocks = [b.data for b in read_blocks(capture) if b.direction == "FS>APP"]
    frames = feed_bytewise(b"".join(blocks))
    assert len(frames) == len(blocks)
    for block, frame in zip(blocks, frames, strict=True):
        assert len(frame.body) == expected_length(block)
        assert block.endswith(frame.body)
        if frame.content_type.startswith("text/event-"):
            event = decode_event(frame)
            assert event.name
            assert (
                event.headers["Core-UUID"] == "03513136-935d-4bc3-85c5-d9ed9a16c124" or capture != CAPTURES[0]
            )


@pytest.mark.parametrize("capture", CAPTURES)
def test_our_commands_encode_exactly_as_captured(capture: str) -> None:
    for block in read_blocks(capture):
        if block.direction != "APP>FS":
            continue
        head, sep, _ = block.data.partition(b"\n\n")
        lines = head.decode().split("\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        assert sep
        assert encode_command(lines[0], headers) == block.data


def test_plain_and_json_bodies_stay_exact() -> None:
    events = captured_events("esl_inbound_session.txt")
    jobs = [e for e in events if isinstance(e, BackgroundJob)]
    assert jobs[0].body == "+OK d147f61e-ff37-4f52-b356-a0aeac470f8d\n"  # plain, inner Content-Length 41
    assert jobs[0].headers["Job-Command-Arg"].endswith("loopback/7101/default &park()")
    assert jobs[-1].body == "+OK\n"  # json, _body
    plays = [e for e in events if isinstance(e, AudioStreamPlay)]
    assert [p.file for p in plays] == [
        "/tmp/d147f61e-ff37-4f52-b356-a0aeac470f8d_0.tmp.r16",
        "/tmp/53492097-844b-442f-858e-8cdf293730ee_0.tmp.r8",
    ]
    error = next(e for e in events if isinstance(e, AudioStreamError))
    assert error.body_json() == {
        "status": "error", "message": {"code": 6, "error": "Connection refused (system error 111)"}
    }  # fmt: skip
    execute = next(e for e in events if isinstance(e, ChannelExecute) and e.application == "export")
    assert execute.headers["Application-Data"] == "RFC2822_DATE=Fri, 20 Nov 2026 23:01:15 +0000"
    park = next(e for e in events if e.name == "CHANNEL_PARK" and "variable_DP_MATCH" in e.headers)
    assert park.headers["variable_DP_MATCH"] == "ARRAY::DELAYED NEGOTIATION|:DELAYED NEGOTIATION"
    hangup = next(e for e in events if isinstance(e, ChannelHangupComplete))
    assert hangup.cause == "NORMAL_CLEARING"
    assert hangup.headers["Event-Date-Local"] == "2026-11-20 23:00:26"  # URL-decoded in plain


def test_dtmf_and_playback_fields() -> None:
    data = b"".join(b.data for b in read_blocks("esl_dtmf_and_bridge.txt") if b.direction == "FS>APP")
    digits = [
        decode_event(f) for f in feed_bytewise(data) if f.headers.get("Content-Type") == "text/event-plain"
    ]
    dtmf = [e for e in digits if isinstance(e, Dtmf)]
    assert [(d.digit, d.source) for d in dtmf[:3]] == [("1", "UNKNOWN"), ("#", "UNKNOWN"), ("5", "APP")]
    assert dtmf[0].duration == 2000
    stops = [e for e in captured_events("esl_playback_queue.txt") if isinstance(e, PlaybackStop)]
    assert {s.status for s in stops} == {"done", "break"}
    broken = next(s for s in stops if s.status == "break")
    assert broken.last_offset_pos == 8160
    assert broken.headers["variable_playback_ms"] == "2048"


NON_ASCII = "Zoë Ünïcødé 日本語 ☎"


def test_non_ascii_json_event_split_across_reads() -> None:
    body = orjson.dumps(
        {"Event-Name": "CHANNEL_CREATE", "Unique-ID": "u1", "Caller-Caller-ID-Name": NON_ASCII}
    )
    frame = b"Content-Length: %d\nContent-Type: text/event-json\n\n%s" % (len(body), body)
    (parsed,) = feed_bytewise(frame)
    event = decode_event(parsed)
    assert event.headers["Caller-Caller-ID-Name"] == NON_ASCII
    assert len(body) > len(body.decode())  # the split really cut through multi-byte characters


def test_non_ascii_plain_event_with_body_split_across_reads() -> None:
    from urllib.parse import quote

    inner = '{"text":"' + NON_ASCII + '"}'
    inner_bytes = inner.encode()
    headers = (
        "Event-Subclass: mod_audio_stream%3A%3Ajson\nEvent-Name: CUSTOM\nUnique-ID: u1\n"
        f"Caller-Caller-ID-Name: {quote(NON_ASCII)}\nContent-Length: {len(inner_bytes)}\n\n"
    ).encode() + inner_bytes
    frame = b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(headers) + headers
    (parsed,) = feed_bytewise(frame * 1)
    event = decode_event(parsed)
    assert event.body == inner
    assert event.headers["Caller-Caller-ID-Name"] == NON_ASCII
    assert event.subclass == "mod_audio_stream::json"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"Content-Type: api/response\nContent-Length: abc\n\n", "bad Content-Length"),
        (b"Content-Type: api/response\nContent-Length: -1\n\n", "bad Content-Length"),
        (b"Content-Type: api/response\nContent-Length: 99999999999\n\n", "exceeds"),
        (b"Content-Type api/response\n\n", "malformed header line"),
        (b"Content-Type: \xff\xfe\n\n", "not UTF-8"),
        (b"X-Long: " + b"a" * 70_000, "longer than"),
    ],
)
def test_malformed_frames_raise_protocol_error(data: bytes, message: str) -> None:
    parser = EslParser()
    parser.feed(data)
    with pytest.raises(ProtocolError, match=message):
        parser.next_frame()
    with pytest.raises(ProtocolError):  # stays broken: there is no way to re-synchronise
        parser.next_frame()


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("text/event-json", b"{not json", "not JSON"),
        ("text/event-json", b"[1,2]", "not a JSON object"),
        ("text/event-json", b'{"Unique-ID":"x"}', "no Event-Name"),
        ("text/event-plain", b"Event-Name: X\nContent-Length: 10\n\nshort", "inner body"),
        ("text/event-plain", b"Unique-ID: x\n\n", "no Event-Name"),
        ("text/event-plain", b"Event-Name: X\nA: %ff\n\n", "not UTF-8"),
        ("text/event-json", b'{"Event-Name":"CUSTOM","Event-Subclass":"mod_audio_stream::play","_body":"x"}',
         "not JSON"),
        ("api/response", b"+OK", "not an event"),
    ],
)  # fmt: skip
def test_malformed_events_raise_protocol_error(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_event(Frame({"Content-Type": content_type}, body))


def test_command_injection_is_refused() -> None:
    with pytest.raises(ProtocolError):
        encode_command("api status\n\nexit")
    with pytest.raises(ProtocolError):
        encode_command("sendmsg u", {"call-command": "execute\nexecute-app-name: hangup"})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_fuzz_parse_or_protocol_error(data: bytes, cuts: list[int]) -> None:
    parser = EslParser()
    pos, i = 0, 0
    try:
        while pos < len(data):
            size = cuts[i % len(cuts)]
            parser.feed(data[pos : pos + size])
            pos, i = pos + size, i + 1
            for frame in parser:
                if frame.content_type.startswith("text/event-"):
                    decode_event(frame)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_event_bodies(body: bytes) -> None:
    for decode in (decode_event_json, decode_event_plain):
        with contextlib.suppress(ProtocolError):
            decode(body)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda s: s != "Event-Name"), st.text(max_size=20)
    )
)
def test_fuzz_structured_json_events(extra: dict[str, str]) -> None:
    raw = {"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u", **extra}
    event = decode_event_json(orjson.dumps(raw))
    assert event.name == "CHANNEL_ANSWER"
    for key, value in extra.items():
        assert event.headers[key] == value
