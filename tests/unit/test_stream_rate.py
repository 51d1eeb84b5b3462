"""The rate the controller asks mod_audio_stream for, from the leg's read codec rate: 8 kHz for narrowband
legs, 16 kHz for everything wider. The live /phone twin found WebRTC calls (Opus, ``read_rate`` 48000 through
Janus) streamed at 8 kHz, where Whisper misheard "pay my bill" as "pay my meal" in 3 of 4 calls; at 16 kHz it
heard it in 3 of 3."""

from __future__ import annotations

import json

import pytest

from controller.calls.channel import Channel
from controller.calls.router import stream_rate, stream_request


@pytest.mark.parametrize(
    ("read_rate", "expected"),
    [("8000", 8000), ("16000", 16000), ("48000", 16000), ("", 8000), ("garbage", 8000)],
)
def test_the_stream_rate_follows_the_read_rate(read_rate: str, expected: int) -> None:
    ch = Channel("u1", "fs1", "u1", variables={"read_rate": read_rate} if read_rate else {})
    assert stream_rate(ch) == expected


def test_a_webrtc_leg_on_opus_streams_wideband() -> None:
    agent = "Switchyard-Janus-SIP"
    ch = Channel("u1", "fs1", "u1", variables={"read_rate": "48000", "sip_user_agent": agent})
    request = stream_request(ch, "default")
    assert request.rate == 16000
    assert json.loads(request.metadata)["sample_rate"] == 16000
    assert json.loads(request.metadata)["call_type"] == "webrtc"
