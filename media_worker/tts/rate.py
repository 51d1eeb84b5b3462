"""Streaming conversion of a TTS provider's L16 output to the pipeline's 16 kHz (libsoxr, high quality).

Piper voices speak at 22.05 kHz, OpenAI-compatible ``pcm`` speech is 24 kHz and espeak-ng writes 22.05 kHz:
each chunk goes through :class:`ToRate16k` as it arrives, so the first audio is not held back. The stream
keeps the filter state between chunks; ``finish`` returns the tail.
"""

from __future__ import annotations

import numpy as np
import soxr

from media_worker.tts.base import RATE

__all__ = ["ToRate16k"]


class ToRate16k:
    """L16 mono at ``rate`` → L16 mono at 16 kHz, chunk by chunk."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._odd = b""  # a chunk may end in the middle of a sample
        self._stream = (
            None if rate == RATE else soxr.ResampleStream(rate, RATE, 1, dtype="int16", quality="HQ")
        )

    def convert(self, pcm: bytes) -> bytes:
        """Convert the next chunk (any length); may return less (or more) than the ratio says."""
        data = self._odd + pcm
        cut = len(data) - len(data) % 2
        self._odd = data[cut:]
        if self._stream is None:
            return data[:cut]
        samples = np.frombuffer(data[:cut], dtype="<i2")
        return bytes(self._stream.resample_chunk(samples).astype("<i2").tobytes())

    def finish(self) -> bytes:
        """The filter's tail after the last chunk."""
        if self._stream is None:
            return b""
        tail = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        return bytes(tail.astype("<i2").tobytes())
