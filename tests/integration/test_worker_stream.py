"""The media worker hears real speech streamed by the emulated mod_audio_stream (audio_stream_wire.txt).

Speech comes from espeak-ng + sox (tests/speech.py) with known segment boundaries; the emulator streams it
in real time with the channel's ptime (20 or 30 ms, changed mid-call), 8 kHz legs upsampled by the worker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from media_worker.session import CallSession
from media_worker.turns import TurnEnded
from media_worker.vad.detector import SpeechEnded, SpeechStarted
from media_worker.vad.model import RATE
from media_worker.vad.silero import SileroModel
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.speech import CallAudio, build_call, noise_call
from tests.workerkit import RunningWorker, running_worker

TOLERANCE = 0.064  # speech start/end within ±64 ms of the known boundaries
SCRIPT = [
    (1.0, "I want to pay my bill"),
    (1.3, "can I speak to a human please"),
    (1.2, "thank you very much goodbye"),
]


@pytest.fixture(scope="module")
def model() -> SileroModel:
    """One Silero session for the module, as one worker process has."""
    return SileroModel()


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module's synthesized audio lives."""
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="module")
def calls(speech_dir: Path) -> dict[int, CallAudio]:
    """The scripted caller at 8 and 16 kHz."""
    return {rate: build_call(speech_dir, rate, SCRIPT) for rate in (8000, 16000)}


async def _stream_call(
    fs: FreeSwitchEmulator,
    rw: RunningWorker,
    audio: Path | None,
    rate: int,
    seconds: float,
    *,
    ptime: int = 20,
    change_ptime: tuple[float, int] | None = None,
    call_type: str = "sip",
) -> tuple[CallSession, list[int]]:
    """Stream one call to the worker for ``seconds``; returns its session and the frame sizes sent."""
    codec = "G722" if rate == 16000 else "PCMA"
    uuid = await fs.inject_inbound_call(audio=audio, codec=codec, rate=rate, ptime_ms=ptime)
    await fs.api.execute("uuid_answer", uuid)
    call_id = f"call-{uuid[:8]}"
    reply = await fs.api.execute("uuid_audio_stream", rw.start_args(uuid, call_id, rate, call_type))
    assert reply == "+OK Success\n"
    await fs.wait_for(lambda: call_id in rw.worker.sessions, timeout=3)
    session = rw.worker.sessions[call_id]
    if change_ptime is not None:
        await asyncio.sleep(change_ptime[0])
        fs.set_ptime(uuid, change_ptime[1])
        seconds -= change_ptime[0]
    await asyncio.sleep(seconds)
    sizes = list(fs.audio_stream_sessions[uuid].frame_sizes)
    assert await fs.api.execute("uuid_audio_stream", f"{uuid} stop") == "+OK Success\n"
    await fs.wait_for(lambda: call_id not in rw.worker.sessions, timeout=3)
    return session, sizes


def _assert_segments(session: CallSession, audio: CallAudio) -> None:
    starts = [e.at / RATE for e in session.events if isinstance(e, SpeechStarted)]
    ends = [e.at / RATE for e in session.events if isinstance(e, SpeechEnded)]
    turns = [e for e in session.events if isinstance(e, TurnEnded)]
    expected = audio.segments
    assert len(starts) == len(expected), (starts, expected)
    assert len(ends) == len(expected), (ends, expected)
    for seg, start, end in zip(expected, starts, ends, strict=True):
        assert start == pytest.approx(seg.start, abs=TOLERANCE), (seg, start)
        assert end == pytest.approx(seg.end, abs=TOLERANCE), (seg, end)
    assert len(turns) == len(expected)
    for seg, turn in zip(expected, turns, strict=True):
        assert turn.start / RATE == pytest.approx(seg.start, abs=TOLERANCE)
        assert turn.end / RATE == pytest.approx(seg.end, abs=TOLERANCE)
        assert len(turn.audio) >= (seg.end - seg.start) * RATE * 2  # the utterance is on the tape


VARIANTS = {  # (rate, ptime, mid-call ptime change) -> expected frame sizes
    "8k-20ms": ((8000, 20, None), {320}),
    "8k-30ms": ((8000, 30, None), {480}),
    "16k-20ms": ((16000, 20, None), {640}),
    "8k-20-to-30ms": ((8000, 20, (2.0, 30)), {320, 480}),
}


async def test_speech_boundaries(model: SileroModel, calls: dict[int, CallAudio], tmp_path: Path) -> None:
    """Four calls at once (one batched VAD): 8k/16k, 20/30 ms frames, a ptime change mid-call."""
    async with (
        running_worker(model) as rw,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
    ):
        runs = {
            name: _stream_call(
                fs, rw, calls[rate].path, rate, calls[rate].seconds, ptime=ptime, change_ptime=chg
            )
            for name, ((rate, ptime, chg), _) in VARIANTS.items()
        }
        results = dict(zip(runs, await asyncio.gather(*runs.values()), strict=True))
        health = rw.worker.health()
    for name, ((rate, _, _), sizes) in VARIANTS.items():
        session, sent = results[name]
        assert set(sent) == sizes, name
        assert sent == sorted(sent), name  # 320-byte frames until the change, 480 after
        _assert_segments(session, calls[rate])
    assert health["dropped_frames"] == 0


async def test_audio_ahead_of_the_metadata_is_kept(
    model: SileroModel, calls: dict[int, CallAudio], tmp_path: Path
) -> None:
    """mod_audio_stream's race (25 frames, 0.5 s, before the metadata): the worker keeps them in order."""
    config = EmulatorConfig(temp_dir=tmp_path, audio_before_metadata=25)
    async with running_worker(model) as rw, FreeSwitchEmulator(config) as fs:
        session, _ = await _stream_call(fs, rw, calls[16000].path, 16000, calls[16000].seconds)
    _assert_segments(session, calls[16000])  # boundaries would move by 0.5 s if the frames were lost


NOISES = {
    "silence": (None, -200.0, "sip"),
    "white-35dB": ("white", -35.0, "sip"),
    "white-25dB-webrtc": ("white", -25.0, "webrtc"),
    "hum-30dB": ("hum", -30.0, "sip"),
}


async def test_no_turns_without_speech(model: SileroModel, speech_dir: Path, tmp_path: Path) -> None:
    """Silence and noise-only callers (four at once) produce no speech and no turns."""
    async with (
        running_worker(model) as rw,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
    ):
        runs = []
        for kind, level, call_type in NOISES.values():
            audio = None if kind is None else noise_call(speech_dir, 8000, 6.5, level, kind=kind)
            runs.append(_stream_call(fs, rw, audio, 8000, 6.0, call_type=call_type))
        results = await asyncio.gather(*runs)
    for name, (session, _) in zip(NOISES, results, strict=True):
        assert session.stream.scored >= 5.5 * RATE, name  # the audio was heard and scored
        assert list(session.events) == [], name
