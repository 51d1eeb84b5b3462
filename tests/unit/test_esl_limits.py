"""The ESL parser's bounds on one frame and the event backlog's bounds (issue 17 item 6).

A peer can make the parser hold at most one partial frame within the limits: a header block past
``max_header_bytes`` fails as soon as that many bytes are buffered without a blank line, a
``Content-Length`` past ``max_body_bytes`` as soon as the header block is complete, before any body byte.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.freeswitch.backlog import EventBacklog
from controller.freeswitch.protocol import EslParser, Frame, FrameLimits, ProtocolError

LIMITS = FrameLimits(max_header_bytes=1024, max_body_bytes=4096)


def frame(pad: int, body: bytes) -> bytes:
    """An api/response whose header block is ``pad`` bytes longer than the smallest."""
    head = b"Content-Type: api/response\nX-Pad: " + b"a" * pad + b"\nContent-Length: %d" % len(body)
    return head + b"\n\n" + body


def header_length(data: bytes) -> int:
    return data.index(b"\n\n")


def test_an_unterminated_header_block_fails_as_soon_as_it_cannot_fit() -> None:
    parser = EslParser(LIMITS)
    data = b"Content-Type: text/event-json\nX-Pad: " + b"a" * 2000
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        if i + 1 <= LIMITS.max_header_bytes + 1:  # a whole block and the first newline of the blank line
            assert parser.next_frame() is None
            continue
        with pytest.raises(ProtocolError, match="header block longer than the limit of 1024 bytes"):
            parser.next_frame()
        break
    assert parser.buffered == LIMITS.max_header_bytes + 2


def test_a_header_block_at_the_limit_parses_and_one_byte_more_fails() -> None:
    base = header_length(frame(0, b"x"))
    at_limit = frame(LIMITS.max_header_bytes - base, b"x")
    assert header_length(at_limit) == LIMITS.max_header_bytes
    parser = EslParser(LIMITS)
    parser.feed(at_limit[:-3])  # all but the blank line and the body
    assert parser.next_frame() is None
    parser.feed(at_limit[-3:])
    parsed = parser.next_frame()
    assert parsed is not None
    assert (len(parsed.headers["X-Pad"]), parsed.body) == (LIMITS.max_header_bytes - base, b"x")
    parser = EslParser(LIMITS)
    parser.feed(frame(LIMITS.max_header_bytes - base + 1, b"x"))
    with pytest.raises(ProtocolError, match="longer than the limit"):
        parser.next_frame()


def test_a_body_past_the_limit_fails_before_any_of_it_arrives() -> None:
    parser = EslParser(LIMITS)
    parser.feed(frame(0, b"y" * LIMITS.max_body_bytes))
    assert parser.next_frame() is not None
    head = b"Content-Type: api/response\nContent-Length: %d\n\n" % (LIMITS.max_body_bytes + 1)
    parser.feed(head)  # no body byte yet
    with pytest.raises(ProtocolError, match="Content-Length 4097 exceeds the limit of 4096 bytes"):
        parser.next_frame()


def test_the_default_limits_are_the_module_bounds() -> None:
    parser = EslParser()
    parser.feed(b"Content-Type: api/response\nContent-Length: %d\n\n" % (64 * 1024 * 1024 + 1))
    with pytest.raises(ProtocolError, match="exceeds the limit of 67108864 bytes"):
        parser.next_frame()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1100), st.integers(0, 4200)), min_size=1, max_size=5),
    st.lists(st.integers(1, 700), min_size=1, max_size=6),
)
def test_frames_within_the_limits_parse_and_the_first_beyond_fails(
    shapes: list[tuple[int, int]], cuts: list[int]
) -> None:
    frames = [frame(pad, b"z" * size) for pad, size in shapes]
    fits = [header_length(f) <= LIMITS.max_header_bytes and size <= LIMITS.max_body_bytes
            for f, (_, size) in zip(frames, shapes, strict=True)]  # fmt: skip
    expected = len(fits) if all(fits) else fits.index(False)
    data = b"".join(frames)
    parser = EslParser(LIMITS)
    parsed: list[Frame] = []
    pos, i = 0, 0
    with pytest.raises(ProtocolError) if expected < len(frames) else contextlib.nullcontext():
        while pos < len(data):
            parser.feed(data[pos : pos + cuts[i % len(cuts)]])
            pos, i = pos + cuts[i % len(cuts)], i + 1
            parsed.extend(parser)
            # What the parser holds between reads: one partial frame, within the limits.
            assert parser.buffered <= max(LIMITS.max_header_bytes + 1, LIMITS.max_body_bytes)
    assert [len(f.body) for f in parsed] == [size for _, size in shapes[:expected]]


def test_the_backlog_fills_at_its_byte_bound_and_resumes_at_half() -> None:
    backlog = EventBacklog[str](max_events=100, max_bytes=1000)
    for i in range(9):
        backlog.append(f"e{i}", 100)
    assert not backlog.full
    backlog.append("e9", 100)
    assert backlog.full
    assert (backlog.bytes, backlog.fills, backlog.peak_bytes) == (1000, 1, 1000)
    taken = [backlog.popleft() for _ in range(4)]
    assert taken == ["e0", "e1", "e2", "e3"]
    assert backlog.full  # 600 bytes: above half
    backlog.popleft()
    assert not backlog.full  # 500 bytes
    assert len(backlog) == 5


def test_the_backlog_fills_at_its_count_bound_too() -> None:
    backlog = EventBacklog[int](max_events=4, max_bytes=1 << 20)
    for i in range(4):
        backlog.append(i, 1)
    assert backlog.full
    backlog.popleft()
    assert backlog.full
    backlog.popleft()
    assert not backlog.full
    assert backlog.fills == 1


async def test_room_waits_while_the_backlog_is_full() -> None:
    backlog = EventBacklog[int](max_events=2, max_bytes=1 << 20)
    await backlog.room()  # not full: at once
    backlog.append(1, 10)
    backlog.append(2, 10)
    waiter = asyncio.create_task(backlog.room())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    backlog.popleft()
    await asyncio.wait_for(waiter, 1)
