"""The 8 → 16 kHz polyphase upsampler: flat passband, images suppressed, exact streaming."""

from __future__ import annotations

import numpy as np
import pytest

from media_worker.resample import Upsampler


def _tone(freq: float, seconds: float = 2.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(8000 * seconds)) / 8000)).astype(np.float32)


def _upsample_in_frames(x: np.ndarray, frame: int) -> np.ndarray:
    up = Upsampler()
    return np.concatenate([up.process(x[i : i + frame]) for i in range(0, len(x), frame)])


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2000.0, 3000.0, 3400.0])
def test_passband_gain_and_image_rejection(freq: float) -> None:
    y = _upsample_in_frames(_tone(freq), 160)[4000:20000].astype(np.float64)
    gain_db = 20 * np.log10(np.sqrt(2 * np.mean(y**2)) / 0.5)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    bins = np.fft.rfftfreq(len(y), 1 / 16000)
    tone = spectrum[np.argmin(np.abs(bins - freq))]
    image = spectrum[np.argmin(np.abs(bins - (8000 - freq)))]
    assert abs(gain_db) < 0.1
    assert 20 * np.log10(image / tone) < -70


def test_streaming_equals_one_shot_whatever_the_frame_size() -> None:
    x = np.random.default_rng(1).standard_normal(8000).astype(np.float32) * 0.1
    whole = Upsampler().process(x)
    assert len(whole) == 16000
    for frame in (160, 240, 77):
        np.testing.assert_allclose(_upsample_in_frames(x, frame), whole, atol=1e-6)


def test_sample_doubling_would_fail_this_test() -> None:
    """The image check above really detects a naive upsampler (here: repeating each sample)."""
    y = np.repeat(_tone(3000.0), 2)[4000:20000].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    bins = np.fft.rfftfreq(len(y), 1 / 16000)
    image = spectrum[np.argmin(np.abs(bins - 5000))] / spectrum[np.argmin(np.abs(bins - 3000))]
    assert 20 * np.log10(image) > -20
