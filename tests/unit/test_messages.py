"""switchyard.messages: the stream's text messages both ways, byte-exact, and a hostile worker's refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchyard.messages import (
    ActionRefused,
    AgentAction,
    BargeIn,
    ControlMessage,
    Dtmf,
    PlaybackEvent,
    TranscriptRequest,
    TurnTranscript,
    WorkerMessage,
    encode,
    parse_control,
    parse_worker_message,
    refused,
    to_json,
)

FILE = "/tmp/fs/5f0c2b7e-9c1d-4b0e-8f5a-2d8c1e3f4a5b_3.tmp.r16"


@pytest.mark.parametrize(
    ("message", "text"),
    [
        (PlaybackEvent(True, FILE, 3), f'{{"type":"playback","event":"start","file":"{FILE}"}}'),
        (PlaybackEvent(False, FILE, 3, "break"),
         f'{{"type":"playback","event":"stop","file":"{FILE}","status":"break"}}'),
        (Dtmf("5"), '{"type":"dtmf","digit":"5"}'),
        (BargeIn(), '{"type":"barge_in"}'),
        (TranscriptRequest(), '{"type":"transcript_request"}'),
    ],
)  # fmt: skip
def test_controller_messages_are_one_word_and_decode_back(message: ControlMessage, text: str) -> None:
    assert encode(message) == text
    assert parse_control(text) == message


@pytest.mark.parametrize(
    ("message", "text"),
    [
        (BargeIn(), '{"type":"barge_in"}'),
        (AgentAction("hangup"), '{"type":"action","action":"hangup"}'),
        (AgentAction("transfer", "1000"), '{"type":"action","action":"transfer","argument":"1000"}'),
        (TurnTranscript(2, "pay my bill", "Sure.", {"asr_final": 120.5}),
         '{"type":"transcript","turn":2,"caller":"pay my bill","agent":"Sure.",'
         '"latency_ms":{"asr_final":120.5}}'),
        (ActionRefused("transfer", "19005550100", "not_in_transfers"),
         '{"type":"refused","action":"transfer","argument":"19005550100","reason":"not_in_transfers"}'),
    ],
)  # fmt: skip
def test_worker_messages_round_trip(message: WorkerMessage, text: str) -> None:
    assert encode(message) == text
    assert parse_worker_message(text) == (message, "")
    assert to_json(message) == json.loads(text)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("not json", "not JSON"),
        ('["barge_in"]', "not a JSON object with a type"),
        ('{"type":"action","action":"reboot"}', "action: must be transfer, hangup or dtmf"),
        ('{"type":"action","action":"transfer"}', "action.argument: transfer needs one"),
        ('{"type":"action","action":"dtmf","argument":5}', "action.argument: a string of at most 64"),
        ('{"type":"action","action":"transfer","argument":"' + "1" * 65 + '"}', "at most 64"),
        ('{"type":"transcript","turn":true,"caller":"a","agent":"b"}', "transcript.turn"),
        ('{"type":"transcript","turn":1,"caller":null,"agent":"b"}', "transcript.caller/agent"),
        ('{"type":"transcript","turn":1,"caller":"' + "x" * 4001 + '","agent":"b"}', "longer than 4000"),
        ('{"type":"transcript","turn":1,"caller":"a","agent":"b","latency_ms":{"x":-1}}', "latency_ms"),
        ('{"type":"transcript","turn":1,"caller":"a","agent":"b","latency_ms":[1]}', "latency_ms"),
        ('{"type":"refused","action":"hangup","argument":"1","reason":"x"}', "refused.action"),
        ('{"type":"refused","action":"transfer","argument":"1 900","reason":"x"}', "refused.argument"),
        ('{"type":"refused","action":"transfer","argument":"","reason":"x"}', "refused.argument"),
        ('{"type":"refused","action":"transfer","argument":"' + "1" * 65 + '","reason":"x"}', "argument"),
        ('{"type":"refused","action":"transfer","argument":"1\\n2","reason":"x"}', "refused.argument"),
        ('{"type":"refused","action":"transfer","argument":"1","reason":"Not allowed"}', "refused.reason"),
        ('{"type":"refused","action":"transfer","argument":"1","reason":"' + "x" * 33 + '"}', "reason"),
        ('{"type":"refused","action":"transfer","argument":"1"}', "refused.reason"),
    ],
)  # fmt: skip
def test_a_malformed_worker_message_is_refused_with_its_reason(body: str, why: str) -> None:
    message, problem = parse_worker_message(body)
    assert message is None
    assert why in problem


def test_a_refusal_is_built_printable() -> None:
    assert refused("transfer", "1 900\n555", "not_in_transfers").argument == "1?900?555"
    assert refused("transfer", "", "not_in_transfers").argument == "?"
    with pytest.raises(ValueError, match="reason"):
        refused("transfer", "1000", "Not in transfers")


def test_an_unknown_type_is_no_message_and_no_problem() -> None:
    assert parse_worker_message('{"type":"note","text":"hi"}') == (None, "")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


@given(JSON, st.sampled_from(["action", "transcript", "barge_in", "refused", "other"]))
def test_any_worker_json_decodes_to_a_valid_message_or_none(value: object, kind: str) -> None:
    body = {"type": kind, **value} if isinstance(value, dict) else value
    message, _ = parse_worker_message(json.dumps(body))
    if message is not None:
        assert parse_worker_message(encode(message)) == (message, "")
