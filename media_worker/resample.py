"""8 kHz → 16 kHz upsampling for narrowband legs: a polyphase FIR, streaming, with its own history.

Why not mod_audio_stream's ``16k``: on a 30 ms leg it drops a third of the audio (audio_stream_wire.txt,
section 4), so the controller asks for ``8k`` on narrowband legs and the worker upsamples.

The filter is a Kaiser-windowed sinc (64 taps, cutoff 3.9 kHz at 16 kHz, beta 7): within 0.1 dB up to
3.4 kHz (the telephone band) and the 4-8 kHz images of 0.3-3.4 kHz tones down by more than 70 dB
(tests/unit/test_resample.py measures both). Split into its two phases, each output pair costs 2 x 32
multiply-adds; the group delay is 2 ms. Sample doubling or linear interpolation would leave the 4-8 kHz
images that a VAD hears as hiss.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["TAPS", "Upsampler", "design_lowpass"]

TAPS: Final = 64
_PHASE_TAPS: Final = TAPS // 2

F32 = npt.NDArray[np.float32]


def design_lowpass(taps: int = TAPS, cutoff_hz: float = 3900.0, rate: int = 16000, beta: float = 7.0) -> F32:
    """A windowed-sinc low-pass with unity DC gain."""
    n = np.arange(taps) - (taps - 1) / 2
    fc = cutoff_hz / rate
    h = 2 * fc * np.sinc(2 * fc * n) * np.kaiser(taps, beta)
    taps_f32: F32 = (h / h.sum()).astype(np.float32)
    return taps_f32


_H: Final = design_lowpass()
# Interpolation by 2 inserts a zero after every input sample, so each phase needs gain 2. The even outputs
# use the even taps, the odd outputs the odd taps; np.convolve flips its second argument itself.
_PHASE_EVEN: Final = (2 * _H[0::2]).astype(np.float32)
_PHASE_ODD: Final = (2 * _H[1::2]).astype(np.float32)


class Upsampler:
    """Doubles the rate of a stream of float32 samples, keeping the filter history between chunks."""

    __slots__ = ("_history",)

    def __init__(self) -> None:
        self._history: F32 = np.zeros(_PHASE_TAPS - 1, dtype=np.float32)

    def process(self, chunk: F32) -> F32:
        """Upsample ``chunk`` (any length); returns exactly ``2 * len(chunk)`` samples."""
        if len(chunk) == 0:
            return np.zeros(0, dtype=np.float32)
        x = np.concatenate((self._history, chunk))
        self._history = x[-(_PHASE_TAPS - 1) :].copy()
        out = np.empty(2 * len(chunk), dtype=np.float32)
        out[0::2] = np.convolve(x, _PHASE_EVEN, mode="valid")
        out[1::2] = np.convolve(x, _PHASE_ODD, mode="valid")
        return out
