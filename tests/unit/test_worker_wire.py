"""mod_audio_stream frames and controller messages as the worker parses and writes them."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchyard.messages import BargeIn, Dtmf, PlaybackEvent, encode, parse_control, stream_audio_message
from switchyard.wire import WireError, check_audio_frame, parse_metadata


def test_metadata_round_trip() -> None:
    meta = parse_metadata('{"call_id":"c1","sample_rate":8000,"call_type":"webrtc","caller":"1000"}', "c1")
    assert (meta.call_id, meta.sample_rate, meta.call_type, meta.caller) == ("c1", 8000, "webrtc", "1000")
    assert meta.agent == "default"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "first frame must be the metadata"),
        ("not json", "metadata"),
        ('{"call_id":"c1"}', "metadata.sample_rate"),
        ('{"call_id":"c1","sample_rate":44100}', "metadata.sample_rate"),
        ('{"call_id":"c1","sample_rate":8000,"call_type":"pstn"}', "metadata.call_type"),
        ('{"call_id":"c2","sample_rate":8000}', "metadata.call_id"),
        ("[1,2]", "metadata"),
    ],
)
def test_bad_metadata_names_the_field(text: str | None, reason: str) -> None:
    with pytest.raises(WireError) as err:
        parse_metadata(text, "c1")
    assert err.value.code == 1008
    assert reason in err.value.reason
    assert len(err.value.reason.encode()) <= 123  # fits a WebSocket close frame


@pytest.mark.parametrize(
    ("size", "code"), [(0, 1003), (639, 1003), (640, None), (16000, None), (16002, 1009)]
)
def test_audio_frame_sizes(size: int, code: int | None) -> None:
    if code is None:
        check_audio_frame(b"\x00" * size, 16000)
        return
    with pytest.raises(WireError) as err:
        check_audio_frame(b"\x00" * size, 16000)
    assert err.value.code == code


def test_control_messages() -> None:
    start = parse_control('{"type":"playback","event":"start","file":"/tmp/ab-cd_12.tmp.r16"}')
    assert start == PlaybackEvent(True, "/tmp/ab-cd_12.tmp.r16", 12, "")
    stop = parse_control('{"type":"playback","event":"stop","file":"/x/prompt.wav","status":"break"}')
    assert stop == PlaybackEvent(False, "/x/prompt.wav", None, "break")
    assert parse_control('{"type":"dtmf","digit":"a"}') == Dtmf("A")
    assert parse_control('{"type":"barge_in"}') == BargeIn()
    assert parse_control('{"type":"transcript","text":"later"}') is None  # unknown types are ignored


@given(st.text(max_size=200))
def test_control_parses_or_raises_wire_error(text: str) -> None:
    code = 0
    try:
        parse_control(text)
    except WireError as exc:
        code = exc.code
    assert code in (0, 1003)


def test_stream_audio_message_is_what_mod_audio_stream_expects() -> None:
    pcm = bytes(range(256)) * 4
    message = json.loads(stream_audio_message(pcm))
    assert message["type"] == "streamAudio"
    data = message["data"]
    assert (data["audioDataType"], data["sampleRate"]) == ("raw", 16000)
    assert base64.b64decode(data["audioData"]) == pcm
    assert json.loads(encode(BargeIn())) == {"type": "barge_in"}
    assert " " not in encode(BargeIn())
