"""Audio for WebRTC tests through aiortc: a real-time tone (or silence) track, recording a remote track, and
measures of what was heard (dominant frequency, seconds of sound)."""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any, Final

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

__all__ = ["Pcm", "ToneTrack", "dominant_frequency", "record", "record_for", "sound_seconds"]

Pcm = np.ndarray[Any, np.dtype[np.float64]]

PTIME: Final = 0.02


class ToneTrack(MediaStreamTrack):
    """An audio track producing a sine tone in real time (20 ms frames of 16-bit mono); amplitude 0 is
    digital silence."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: float = 0.5, rate: int = 8000) -> None:
        super().__init__()
        self._frequency = frequency
        self._amplitude = amplitude
        self._rate = rate
        self._sent = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        rate = self._rate
        samples = int(rate * PTIME)
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(self._start + (self._sent + samples) / rate - time.monotonic())
            self._sent += samples
        t = (self._sent + np.arange(samples)) / rate
        pcm = (self._amplitude * 32767 * np.sin(2 * np.pi * self._frequency * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, rate)
        return frame


def dominant_frequency(pcm: Pcm, rate: int) -> tuple[float, float]:
    """The strongest frequency of ``pcm`` and the share of the spectrum's energy around it (±50 Hz)."""
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    spectrum[freqs < 50] = 0  # DC and hum are not the tone
    peak = float(freqs[int(np.argmax(spectrum))])
    near = spectrum[np.abs(freqs - peak) <= 50].sum()
    return peak, float(near / spectrum.sum())


def sound_seconds(pcm: Pcm, rate: int, floor_dbfs: float = -40.0) -> float:
    """Seconds of ``pcm`` (16-bit scale) in 20 ms windows louder than ``floor_dbfs`` RMS."""
    window = int(rate * PTIME)
    if window == 0:
        return 0.0
    usable = len(pcm) // window * window
    if usable == 0:
        return 0.0
    frames = pcm[:usable].reshape(-1, window) / 32768.0
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = rms > 10 ** (floor_dbfs / 20)
    return float(np.count_nonzero(loud)) * PTIME


def _mono(frame: AudioFrame) -> Pcm:
    """The first channel of an interleaved aiortc frame (Opus decodes to 48 kHz stereo)."""
    channels = len(frame.layout.channels)
    samples: Pcm = frame.to_ndarray().reshape(-1).astype(np.float64)
    return samples[::channels]


async def record(track: MediaStreamTrack, skip_s: float, keep_s: float) -> tuple[Pcm, int]:
    """Mono samples of ``track`` after dropping the first ``skip_s`` seconds, and their rate."""
    chunks: list[Pcm] = []
    seen, rate = 0.0, 0
    async with asyncio.timeout(skip_s + keep_s + 10):
        while seen < skip_s + keep_s:
            frame = await track.recv()
            assert isinstance(frame, AudioFrame)
            rate = frame.sample_rate
            seen += frame.samples / rate
            if seen > skip_s:
                chunks.append(_mono(frame))
    return np.concatenate(chunks), rate


async def record_for(track: MediaStreamTrack, seconds: float) -> tuple[Pcm, int]:
    """Mono samples of whatever ``track`` delivers within ``seconds`` of wall-clock time, and their rate
    (0 if nothing came): a peer such as FreeSWITCH sends no RTP while it has nothing to play. A track that
    ends (the call was hung up) ends the recording."""
    chunks: list[Pcm] = []
    rate = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            async with asyncio.timeout(left):
                frame = await track.recv()
        except (TimeoutError, MediaStreamError):
            break
        assert isinstance(frame, AudioFrame)
        rate = frame.sample_rate
        chunks.append(_mono(frame))
    return (np.concatenate(chunks) if chunks else np.zeros(0)), rate
