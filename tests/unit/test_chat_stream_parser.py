"""The chat-completion event-stream parser (sans-IO): fed byte by byte, and fuzzed.

The recorded-shape stream below has the fields OpenAI sends (``id``, ``object``, ``system_fingerprint``, a
first chunk with ``role``, ``logprobs``, tool-call fragments with ``id``/``type`` first and argument pieces
after, a ``finish_reason`` chunk, ``[DONE]``) and the comment keep-alive lines some compatible servers
interleave. Hypothesis checks h11's invariant: any input parses or raises ``ProviderReplyError``, nothing
else, and the events never depend on where the input was cut.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_worker.agent.base import ActionRequest, AgentEvent, TextDelta
from media_worker.agent.openai import ChatStreamParser, SseFramer
from media_worker.errors import ProviderReplyError


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-9xYz",
            "object": "chat.completion.chunk",
            "created": 1727000000,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_e2bde53e6e",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        },
        ensure_ascii=False,
    )


def _event(delta: dict[str, Any], finish: str | None = None) -> str:
    return f"data: {_chunk(delta, finish)}\n\n"


def _arguments(piece: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}


_FIRST_CALL = {
    "index": 0,
    "id": "call_Ab1",
    "type": "function",
    "function": {"name": "send_dtmf", "arguments": ""},
}
RECORDED = "".join(
    [
        _event({"role": "assistant", "content": "", "refusal": None}),
        _event({"content": "One mo"}),
        ": keep-alive\n\n",
        _event({"content": "ment, I’ll send "}),
        _event({"content": "the digits."}),
        _event({"tool_calls": [_FIRST_CALL]}),
        _event(_arguments('{"di')),
        _event(_arguments('gits": "4')),
        _event(_arguments('2#"}')),
        _event({}, "tool_calls"),
        "data: [DONE]\n\n",
    ]
).encode()

EXPECTED: list[AgentEvent] = [
    TextDelta("One mo"),
    TextDelta("ment, I’ll send "),
    TextDelta("the digits."),
    ActionRequest("dtmf", "42#"),
]


def feed_all(parser: ChatStreamParser, pieces: list[bytes]) -> list[AgentEvent]:
    return [event for piece in pieces for event in parser.feed(piece)]


def test_recorded_stream_byte_by_byte() -> None:
    parser = ChatStreamParser("1000")
    events = feed_all(parser, [RECORDED[i : i + 1] for i in range(len(RECORDED))])
    assert events == EXPECTED
    assert parser.answered
    assert parser.done


def test_recorded_stream_whole_and_with_crlf_or_cr_line_ends() -> None:
    for stream in (RECORDED, RECORDED.replace(b"\n", b"\r\n"), RECORDED.replace(b"\n", b"\r")):
        assert feed_all(ChatStreamParser("1000"), [stream]) == EXPECTED


def test_text_split_inside_a_multibyte_character() -> None:
    body = f"data: {_chunk({'content': 'I’ll'})}\n\n".encode()
    cut = body.index("’".encode()) + 1
    parser = ChatStreamParser("1000")
    assert parser.feed(body[:cut]) == []
    assert parser.feed(body[cut:]) == [TextDelta("I’ll")]


def test_framer_fields_comments_bom_and_multiline_data() -> None:
    framer = SseFramer()
    stream = b'\xef\xbb\xbf: hello\nevent: message\nid: 7\ndata: {"a":\ndata:1}\nretry: 10\n\ndata\n\n'
    assert framer.feed(stream) == [b'{"a":\n1}', b""]


def test_cr_at_the_end_of_a_read_waits_for_its_lf() -> None:
    framer = SseFramer()
    assert framer.feed(b"data: x\r") == []
    assert framer.feed(b"\n\r\n") == [b"x"]


def test_actions_at_done_when_no_finish_reason_came() -> None:
    stream = (
        f"data: {_chunk({'tool_calls': [{'index': 0, 'function': {'name': 'hang_up'}}]})}\n\ndata: [DONE]\n\n"
    ).encode()
    parser = ChatStreamParser("1000")
    assert parser.feed(stream) == [ActionRequest("hangup")]


def test_transfer_defaults_and_accepts_a_numeric_extension() -> None:
    for arguments, expected in (("", "1000"), ("{}", "1000"), ('{"extension": 2001}', "2001")):
        call = {"index": 0, "function": {"name": "transfer_call", "arguments": arguments}}
        stream = f"data: {_chunk({'tool_calls': [call]}, 'tool_calls')}\n\n".encode()
        assert ChatStreamParser("1000").feed(stream) == [ActionRequest("transfer", expected)]


@pytest.mark.parametrize(
    ("name", "arguments", "match"),
    [
        ("reboot_pbx", "{}", "unknown tool"),
        ("send_dtmf", '{"digits": "12x"}', "not DTMF"),
        ("send_dtmf", "{}", "not DTMF"),
        ("transfer_call", '{"extension": "1000 XML default"}', "not an extension"),
        ("transfer_call", "[1]", "not a JSON object"),
        ("hang_up", "{", "not JSON"),
    ],
)
def test_bad_tool_calls_are_reply_errors(name: str, arguments: str, match: str) -> None:
    call = {"index": 0, "function": {"name": name, "arguments": arguments}}
    stream = f"data: {_chunk({'tool_calls': [call]}, 'tool_calls')}\n\n".encode()
    with pytest.raises(ProviderReplyError, match=match):
        ChatStreamParser("1000").feed(stream)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"choices": {}}',
        b'{"choices": [1]}',
        b'{"choices": [{"delta": {"content": 5}}]}',
    ],
)
def test_malformed_chunks_are_reply_errors(payload: bytes) -> None:
    with pytest.raises(ProviderReplyError):
        ChatStreamParser("1000").feed(b"data: " + payload + b"\n\n")


def test_an_endless_line_is_a_reply_error() -> None:
    parser = ChatStreamParser("1000")
    parser.feed(b"data: " + b"x" * 1000)
    with pytest.raises(ProviderReplyError, match="longer than"):
        parser.feed(b"x" * (1 << 20))


# ---- properties ---------------------------------------------------------------------------------------


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary places."""
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
plausible = st.fixed_dictionaries(
    {},
    optional={
        "choices": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "delta": st.fixed_dictionaries(
                        {},
                        optional={
                            "content": st.none() | st.text(max_size=5) | json_values,
                            "tool_calls": st.lists(
                                st.fixed_dictionaries(
                                    {},
                                    optional={
                                        "index": st.integers(-2, 3) | json_values,
                                        "function": st.fixed_dictionaries(
                                            {},
                                            optional={
                                                "name": st.sampled_from(
                                                    ["transfer_call", "hang_up", "send_dtmf", "x"]
                                                )
                                                | json_values,
                                                "arguments": st.sampled_from(
                                                    ['{"digits": "1"}', '{"extension": "9"}', "{", ""]
                                                )
                                                | json_values,
                                            },
                                        )
                                        | json_values,
                                    },
                                )
                                | json_values,
                                max_size=3,
                            )
                            | json_values,
                        },
                    )
                    | json_values,
                    "finish_reason": st.sampled_from([None, "stop", "tool_calls"]) | json_values,
                },
            )
            | json_values,
            max_size=2,
        )
        | json_values,
        "error": json_values,
    },
)
event_lines = st.one_of(
    plausible.map(lambda chunk: f"data: {json.dumps(chunk)}\n\n".encode()),
    json_values.map(lambda value: f"data: {json.dumps(value)}\n\n".encode()),
    st.sampled_from([b"data: [DONE]\n\n", b": ping\n\n", b"event: x\n", b"\r\n", b"data:\n\n"]),
    st.binary(max_size=20),
)


def _parse(pieces: list[bytes]) -> list[AgentEvent] | str:
    parser = ChatStreamParser("1000")
    try:
        return feed_all(parser, pieces)
    except ProviderReplyError as exc:
        return f"error: {exc.reason}"


@settings(max_examples=200, deadline=None)
@given(st.data(), st.lists(event_lines, max_size=8).map(b"".join))
def test_parse_or_reply_error_nothing_else(data: st.DataObject, stream: bytes) -> None:
    whole = _parse([stream])
    cut = _parse(data.draw(cuts(stream)))
    assert cut == whole  # where the input was cut changes nothing (errors included)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_recorded_stream_any_cuts(data: st.DataObject) -> None:
    assert feed_all(ChatStreamParser("1000"), data.draw(cuts(RECORDED))) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.data())
def test_random_bytes_parse_or_reply_error(stream: bytes, data: st.DataObject) -> None:
    _parse(data.draw(cuts(stream)))  # anything but ProviderReplyError fails the test
