"""The benches cannot lie: the load generator sees the worker's close frames (fed byte by byte), the figures
line reads back, and the smoke refuses impossible figures and a broken bench that exits 0."""

from __future__ import annotations

import struct

import pytest

from bench import soak
from bench.result import ImpossibleResult, figures_line, parse_figures, summarize_closes
from bench.smoke import SMOKES, Smoke, check_figures, judge
from bench.stream_load import ServerFrames

REASON = "metadata.agent: no agent named 'echo' on this worker"


def _server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked server frame (RFC 6455 section 5.2), with the 16-bit length form from 126 bytes."""
    n = len(payload)
    head = struct.pack("!BB", 0x80 | opcode, n) if n < 126 else struct.pack("!BBH", 0x80 | opcode, 126, n)
    return head + payload


def _fed_byte_by_byte(data: bytes) -> ServerFrames:
    frames = ServerFrames()
    for i in range(len(data)):
        frames.feed(data[i : i + 1])
    return frames


def test_a_close_after_other_frames_is_kept_with_its_code_and_reason() -> None:
    text = _server_frame(0x1, b'{"type":"barge_in"}')
    audio = _server_frame(0x1, b"x" * 3000)  # a streamAudio message: the 16-bit length form
    close = _server_frame(0x8, struct.pack("!H", 1008) + REASON.encode())
    after = _server_frame(0x1, b"ignored")
    assert _fed_byte_by_byte(text + audio + close + after).close == (1008, REASON)
    whole = ServerFrames()
    whole.feed(text + audio + close)
    assert whole.close == (1008, REASON)


def test_no_close_until_its_whole_payload_arrived_and_an_empty_close_has_no_code() -> None:
    close = _server_frame(0x8, struct.pack("!H", 1003) + b"bad frame")
    frames = ServerFrames()
    frames.feed(close[:-1])
    assert frames.close is None
    frames.feed(close[-1:])
    assert frames.close == (1003, "bad frame")
    assert _fed_byte_by_byte(_server_frame(0x8, b"")).close == (None, "")
    assert _fed_byte_by_byte(_server_frame(0x2, b"\x00" * 200)).close is None


def test_figures_read_back_and_a_word_that_is_not_a_figure_raises() -> None:
    line = figures_line(streams_per_core=400, p99_lag_ms=21.456)
    assert line == "streams_per_core=400 p99_lag_ms=21.46"
    assert parse_figures(line) == {"streams_per_core": 400.0, "p99_lag_ms": 21.46}
    with pytest.raises(ValueError, match="not key=value"):
        parse_figures("total 12 s")


def test_close_reasons_are_counted_most_frequent_first() -> None:
    assert summarize_closes([(1008, REASON)] * 3) == f'1008 "{REASON}"'
    assert summarize_closes([(None, ""), (1008, "x"), (1008, "x")]) == '1008 "x" x2, no close frame x1'


def _smoke(bench: str, *args: str) -> Smoke:
    return next(s for s in SMOKES if s.bench == bench and s.args[: len(args)] == args)


GOOD_WORKER = (
    "streams=20 streams_scored=20 decided=1.00 p99_lag_ms=21.83 rss_mb_per_stream=0.01 "
    "vad_us_per_window_batched=130.74 vad_us_per_window_single=167.62 passed=0"
)


def test_the_smoke_accepts_plausible_figures_however_slow() -> None:
    worker = _smoke("worker_streams", "--smoke")
    assert check_figures(worker, GOOD_WORKER.replace("p99_lag_ms=21.83", "p99_lag_ms=900.00")) == []
    assert judge(worker, 0, f"progress\n{GOOD_WORKER}\n", "") == (True, GOOD_WORKER)


@pytest.mark.parametrize(
    ("figure", "broken", "problem"),
    [
        ("streams_scored=20", "streams_scored=19", "not streams_scored == streams"),
        ("streams_scored=20", "streams_scored=0", "streams_scored=0 is not > 0"),
        ("streams=20 streams_scored=20", "streams=0 streams_scored=0", "streams=0 is not > 0"),
        ("p99_lag_ms=21.83", "p99_lag_ms=nan", "p99_lag_ms=nan is not finite"),
        ("vad_us_per_window_single=167.62", "", "vad_us_per_window_single missing"),
        ("decided=1.00", "decided=0", "decided=0 is not in [0.5, 1.1]"),
    ],
)
def test_the_smoke_refuses_impossible_figures(figure: str, broken: str, problem: str) -> None:
    problems = check_figures(_smoke("worker_streams", "--smoke"), GOOD_WORKER.replace(figure, broken))
    assert problem in problems


def test_a_bench_that_exits_0_with_zero_figures_fails_the_smoke() -> None:
    old_bug = "streams_per_core=0 p99_lag_ms=0.00 rss_mb_per_stream=0.00"
    passed, says = judge(_smoke("worker_streams", "--smoke"), 0, old_bug, "")
    assert not passed
    assert "streams missing" in says
    assert judge(_smoke("call_setup"), 1, "", "call_setup: impossible result: no call set up")[0] is False


def test_the_negative_control_must_fail_and_say_why() -> None:
    control = _smoke("worker_streams", "--smoke", "--agent")
    reason = REASON.replace("echo", "nosuch")
    refused = f'worker_streams: impossible result: the worker closed 20 of 20 with 1008 "{reason}"'
    assert judge(control, 1, "", f"noise\n{refused}\n")[0] is True
    assert judge(control, 0, GOOD_WORKER, "")[0] is False  # the old bug: a broken bench exiting 0
    assert judge(control, 1, "", "Traceback ...\nKeyError: 'x'")[0] is False  # failing for another reason


def test_the_soak_counts_a_missing_open_or_lost_cdr_as_lost_and_refuses_it() -> None:
    closed: tuple[str, str | None] = ("closed", "answered")
    cdrs = {"w": closed, "a": closed, "b": ("open", None), "c": ("closed", "lost")}  # "d": none
    run = soak.Run(["w"], soak.Churn(uuids=["a", "b", "c", "d"]), (100.0, 101.0), (10, 10), True, cdrs, 4)
    assert soak.lost(run) == ["b", "c", "d"]
    with pytest.raises(ImpossibleResult, match="lost_cdrs=3"):
        soak.check(run, soak.lost(run))
    run.cdrs = dict.fromkeys("wabcd", closed)
    assert soak.lost(run) == []
    soak.check(run, [])
