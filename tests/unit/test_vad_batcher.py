"""Batched scoring across calls gives each call exactly what scoring it alone would (per-row state)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from media_worker.metrics import WorkerMetrics
from media_worker.vad.batcher import VadBatcher, VadStream
from media_worker.vad.model import CONTEXT, STATE_SIZE, WINDOW, BatchedVadModel
from media_worker.vad.silero import SileroModel

F32 = np.ndarray


class Recorder:
    """A batcher listener that keeps what it is given."""

    def __init__(self) -> None:
        self.audio: list[bytes] = []
        self.windows: list[tuple[float, float, int]] = []

    def on_audio(self, pcm: bytes) -> None:
        self.audio.append(pcm)

    def on_window(self, prob: float, level_db: float, end: int) -> None:
        self.windows.append((prob, level_db, end))


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


def _speechlike(seed: int, seconds: float) -> npt.NDArray[np.int16]:
    """Voiced-like audio: a pitch pulse train through formant-ish resonances, switching on and off."""
    rng = np.random.default_rng(seed)
    n = int(16000 * seconds)
    t = np.arange(n) / 16000
    f0 = 110 + 40 * seed
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 20)) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    x = x + 0.01 * rng.standard_normal(n)
    pcm: npt.NDArray[np.int16] = np.round(x / np.max(np.abs(x)) * 12000).astype("<i2")
    return pcm


def _alone(model: SileroModel, pcm16k: np.ndarray) -> list[float]:
    x = np.concatenate([np.zeros(CONTEXT, np.float32), pcm16k.astype(np.float32) / 32768])
    state = np.zeros((2, 1, STATE_SIZE), np.float32)
    probs = []
    for i in range((len(x) - CONTEXT) // WINDOW):
        p, state = model.score(x[None, i * WINDOW : i * WINDOW + CONTEXT + WINDOW].copy(), state)
        probs.append(float(p[0]))
    return probs


async def test_batched_equals_alone_with_uneven_frames(model: SileroModel) -> None:
    metrics = WorkerMetrics()
    streams_pcm = [_speechlike(seed, 2.0) for seed in range(3)]
    async with VadBatcher(model, tick_s=3600, stats=metrics) as batcher:
        recorders = [Recorder() for _ in streams_pcm]
        streams = [VadStream(16000, r) for r in recorders]
        for s in streams:
            batcher.add(s)
        # Stream 0 gets 20 ms frames every tick, stream 1 30 ms frames, stream 2 half a second at once:
        # ticks see 0, 1 or many whole windows per stream.
        sizes = [320, 480, 8000]
        offsets = [0, 0, 0]
        for _ in range(120):
            for i, s in enumerate(streams):
                chunk = streams_pcm[i][offsets[i] : offsets[i] + sizes[i]]
                if len(chunk):
                    s.push(chunk.tobytes(), 0.0)
                offsets[i] += sizes[i]
            await batcher.tick()
    for pcm, recorder in zip(streams_pcm, recorders, strict=True):
        expected = _alone(model, pcm)
        got = [p for p, _, _ in recorder.windows]
        assert len(got) == len(expected) == len(pcm) // WINDOW
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert [end for _, _, end in recorder.windows] == [WINDOW * (i + 1) for i in range(len(got))]
    runs = metrics.registry.get_sample_value("switchyard_worker_vad_batch_size_count")
    windows = metrics.registry.get_sample_value("switchyard_worker_vad_batch_size_sum")
    assert runs is not None
    assert windows == sum(len(p) // WINDOW for p in streams_pcm)
    assert runs < windows  # windows of different calls shared runs


async def test_a_new_stream_in_a_reused_slot_starts_from_a_clean_state(model: SileroModel) -> None:
    pcm = _speechlike(1, 1.0)
    async with VadBatcher(model, tick_s=3600, stats=WorkerMetrics()) as batcher:
        first = VadStream(16000, Recorder())
        batcher.add(first)
        first.push(pcm.tobytes(), 0.0)
        await batcher.tick()
        batcher.remove(first)
        recorder = Recorder()
        second = VadStream(16000, recorder)
        batcher.add(second)
        second.push(pcm.tobytes(), 0.0)
        await batcher.tick()
    np.testing.assert_allclose([p for p, _, _ in recorder.windows], _alone(model, pcm), atol=1e-4)


async def test_eight_khz_streams_are_upsampled_before_scoring(model: SileroModel) -> None:
    recorder = Recorder()
    async with VadBatcher(model, tick_s=3600, stats=WorkerMetrics()) as batcher:
        stream = VadStream(8000, recorder)
        batcher.add(stream)
        stream.push(np.zeros(8000, dtype="<i2").tobytes(), 0.0)  # 1 s at 8 kHz
        await batcher.tick()
    assert stream.received == 16000
    assert sum(len(c) // 2 for c in recorder.audio) == 16000
    assert len(recorder.windows) == 16000 // WINDOW


async def test_frames_beyond_the_backlog_are_dropped_and_counted(model: SileroModel) -> None:
    stream = VadStream(16000, Recorder(), max_backlog_s=0.1)
    frame = np.zeros(320, dtype="<i2").tobytes()
    results = [stream.push(frame, 0.0) for _ in range(8)]
    assert results == [True] * 5 + [False] * 3
    assert stream.dropped == 3


class CountingModel:
    """A stand-in :class:`BatchedVadModel`: a row's probability is how many windows its stream has had
    (carried in its state row), so a row fed another stream's state shows up at once."""

    def score(self, windows: F32, state: F32) -> tuple[F32, F32]:
        assert windows.shape[1] == CONTEXT + WINDOW
        assert state.shape == (2, len(windows), STATE_SIZE)
        new_state = state.copy()
        new_state[0, :, 0] += 1.0
        return new_state[0, :, 0].astype(np.float32), new_state


async def test_any_batched_model_serves_the_batcher_with_a_state_row_per_stream() -> None:
    model: BatchedVadModel = CountingModel()
    recorders = [Recorder() for _ in range(3)]
    async with VadBatcher(model, tick_s=3600, stats=WorkerMetrics(), max_batch=2) as batcher:
        streams = [VadStream(16000, r) for r in recorders]
        for i, stream in enumerate(streams):
            batcher.add(stream)
            stream.push(np.zeros(WINDOW * (i + 1), dtype="<i2").tobytes(), 0.0)
        await batcher.tick()
    assert [[p for p, _, _ in r.windows] for r in recorders] == [[1.0], [1.0, 2.0], [1.0, 2.0, 3.0]]
