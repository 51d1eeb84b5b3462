"""Speech detection, turn-taking and the echo gate, fed window by window (32 ms per decision)."""

from __future__ import annotations

import numpy as np

from media_worker.settings import TurnProfile
from media_worker.speaking import AgentSpeech, peak_level_db
from media_worker.turns import TurnEnded, TurnTaker
from media_worker.vad.detector import SpeechDetector, SpeechEnded, SpeechStarted, VadEvent
from media_worker.vad.model import RATE, WINDOW

SIP = TurnProfile(threshold=0.6, turn_silence_ms=500)
LOUD, QUIET = -20.0, -80.0


def _run(detector: SpeechDetector, probs: list[float], level: float = LOUD) -> list[tuple[int, VadEvent]]:
    out = []
    for i, p in enumerate(probs):
        event = detector.window(p, level if p > 0.1 else QUIET, (i + 1) * WINDOW)
        if event is not None:
            out.append((i, event))
    return out


def test_start_needs_min_speech_and_is_dated_at_its_first_window() -> None:
    events = _run(SpeechDetector(SIP), [0.0] * 10 + [0.9] * 3 + [0.0] * 10)
    assert events[0] == (12, SpeechStarted(10 * WINDOW, 13 * WINDOW))
    assert events[1] == (17, SpeechEnded(13 * WINDOW, 10 * WINDOW))  # 5 silent windows = 160 ms


def test_blips_shorter_than_min_speech_are_ignored() -> None:
    assert _run(SpeechDetector(SIP), [0.0] * 5 + [0.95, 0.95] + [0.0] * 5 + [0.9] + [0.0] * 5) == []


def test_hysteresis_and_short_pauses_keep_speech_going() -> None:
    # 0.5 is under the 0.6 threshold but above threshold - release: speech continues; a 2-window dip
    # (64 ms) is shorter than min_silence (160 ms = 5 windows).
    probs = [0.9] * 5 + [0.5] * 4 + [0.9] * 3 + [0.1, 0.1] + [0.9] * 3 + [0.0] * 8
    events = _run(SpeechDetector(SIP), probs)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    assert events[1][1].at == 17 * WINDOW


def test_quiet_speech_like_windows_under_the_noise_floor_gate_do_not_start() -> None:
    detector = SpeechDetector(SIP)
    for i in range(200):  # 6.4 s of -40 dBFS noise: the floor climbs to it
        detector.window(0.05, -40.0, (i + 1) * WINDOW)
    assert -42 < detector.floor.db <= -40
    assert detector.threshold > SIP.threshold  # a noisy line is judged more strictly
    events = [detector.window(0.99, -36.0, (200 + i) * WINDOW) for i in range(10)]  # only 4 dB above
    assert events == [None] * 10
    assert detector.window(0.99, -25.0, 300 * WINDOW) is None
    assert any(detector.window(0.99, -25.0, (301 + i) * WINDOW) for i in range(3))


def test_echo_gate_blocks_speech_below_it() -> None:
    detector = SpeechDetector(SIP)
    assert all(detector.window(0.99, -30.0, (i + 1) * WINDOW, min_level_db=-26.0) is None for i in range(10))
    assert any(detector.window(0.99, -20.0, (11 + i) * WINDOW, min_level_db=-26.0) for i in range(3))


def _feed_turns(taker: TurnTaker, probs: list[float]) -> list[TurnEnded]:
    turns = []
    rng = np.random.default_rng(3)
    for i, p in enumerate(probs):
        noise = rng.standard_normal(WINDOW) * (3276.8 if p > 0.1 else 3.3)
        taker.audio(np.clip(noise, -32768, 32767).astype("<i2").tobytes())
        _, turn = taker.window(p, LOUD if p > 0.1 else QUIET, (i + 1) * WINDOW, -200.0)
        if turn is not None:
            turns.append(turn)
    return turns


def test_turn_ends_after_the_profile_silence_with_its_audio() -> None:
    # speech 10..30, a 320 ms pause (< 500 ms: same turn), speech 40..50, then silence
    probs = [0.0] * 10 + [0.9] * 20 + [0.0] * 10 + [0.9] * 10 + [0.0] * 30
    turns = _feed_turns(TurnTaker(SIP), probs)
    assert len(turns) == 1
    turn = turns[0]
    assert (turn.start, turn.end, turn.cut) == (10 * WINDOW, 50 * WINDOW, False)
    assert len(turn.audio) == 2 * (40 * WINDOW + 2 * RATE // 10)  # 100 ms of padding each side


def test_webrtc_profile_ends_turns_sooner() -> None:
    webrtc = TurnProfile(threshold=0.5, turn_silence_ms=300)
    probs = [0.0] * 10 + [0.9] * 20 + [0.0] * 12 + [0.9] * 10 + [0.0] * 30  # a 384 ms pause
    assert len(_feed_turns(TurnTaker(SIP), probs)) == 1
    assert len(_feed_turns(TurnTaker(webrtc), probs)) == 2


def test_a_monologue_is_cut_at_max_turn() -> None:
    profile = TurnProfile(threshold=0.6, turn_silence_ms=500, max_turn_ms=1000)
    turns = _feed_turns(TurnTaker(profile), [0.0] * 5 + [0.9] * 80 + [0.0] * 30)
    assert [t.cut for t in turns] == [True, True, False]


def test_echo_gate_follows_what_the_caller_hears() -> None:
    now = [0.0]
    speech = AgentSpeech(echo_return_loss_db=12.0, clock=lambda: now[0])
    loud = (np.sin(np.arange(RATE) / 3) * 16000).astype("<i2").tobytes()
    peak = peak_level_db(loud)
    assert speech.echo_floor_db(0) == -200.0
    index = speech.chunk_sent(loud)
    assert speech.outstanding
    assert not speech.audible
    speech.started(index)
    assert speech.echo_floor_db(100) == peak - 12.0
    speech.stopped(index, now=RATE)
    assert speech.echo_floor_db(RATE + RATE // 10) == peak - 12.0  # the echo tail
    assert speech.echo_floor_db(2 * RATE) == -200.0
    assert not speech.outstanding


def test_unreported_chunks_stop_counting_once_they_must_have_played() -> None:
    now = [100.0]
    speech = AgentSpeech(echo_return_loss_db=12.0, clock=lambda: now[0])
    speech.chunk_sent(b"\x00\x10" * RATE)  # 1 s
    assert speech.outstanding
    now[0] += 2.0
    assert speech.outstanding  # within the slack
    now[0] += 1.0
    assert not speech.outstanding
