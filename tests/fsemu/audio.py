"""Audio the emulator plays and streams: file durations (WAV / raw L16 / tone_stream) and PCM sources."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# FreeSWITCH's raw-file suffixes (mod_native_file / mod_sndfile): .r8 = L16 at 8 kHz, .r16 at 16 kHz, ...
RAW_RATES = {".r8": 8000, ".r16": 16000, ".r24": 24000, ".r32": 32000, ".r48": 48000, ".r64": 64000}


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What FreeSWITCH learns when it opens a play file."""

    rate: int
    samples: int | None  # None = endless (tone_stream with loops=-1)
    is_tone: bool = False

    @property
    def seconds(self) -> float | None:
        """Length in seconds, None when endless."""
        return None if self.samples is None else self.samples / self.rate


def media_info(path: str) -> MediaInfo | None:
    """Describe a playable path, or None when FreeSWITCH could not open it."""
    if path.startswith("tone_stream://"):
        return MediaInfo(8000, None if "loops=-1" in path else 8000, is_tone=True)
    if path.startswith("silence_stream://"):
        millis = path.removeprefix("silence_stream://").split(",")[0]
        ms = int(millis) if millis.lstrip("-").isdigit() else -1
        return MediaInfo(8000, None if ms < 0 else ms * 8, is_tone=True)
    file = Path(path)
    if not file.is_file():
        return None
    suffix = file.suffix.lower()
    if suffix in RAW_RATES:
        return MediaInfo(RAW_RATES[suffix], file.stat().st_size // 2)
    if suffix in (".pcmu", ".pcma", ".ulaw", ".alaw"):
        return MediaInfo(8000, file.stat().st_size)
    if suffix == ".wav":
        return _wav_info(file)
    return MediaInfo(8000, file.stat().st_size // 2)


def _wav_info(file: Path) -> MediaInfo | None:
    fmt = read_wav(file)
    if fmt is None:
        return None
    rate, channels, pcm = fmt
    return MediaInfo(rate, len(pcm) // max(1, channels))


def read_wav(file: Path) -> tuple[int, int, np.ndarray] | None:
    """Parse a PCM WAV: (rate, channels, int16 samples interleaved) or None if unsupported."""
    data = file.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, rate, channels, bits = 12, 8000, 1, 16
    pcm = np.zeros(0, dtype=np.int16)
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
        elif cid == b"data":
            if bits != 16:
                return None
            pcm = np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").astype(np.int16)
        pos += 8 + size + (size & 1)
    return rate, channels, pcm


def resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Linear-interpolation resampling of int16 mono PCM."""
    if src_rate == dst_rate or len(pcm) == 0:
        return pcm.astype(np.int16)
    n_out = round(len(pcm) * dst_rate / src_rate)
    x_new = np.arange(n_out) * (src_rate / dst_rate)
    out = np.interp(x_new, np.arange(len(pcm)), pcm.astype(np.float64))
    result: np.ndarray = np.clip(np.round(out), -32768, 32767).astype(np.int16)
    return result


class AudioSource:
    """Audio a channel produces (what a media bug reads), as int16 mono at a requested rate."""

    def read(self, samples: int, rate: int) -> np.ndarray:
        """Return the next ``samples`` samples at ``rate`` (silence by default)."""
        return np.zeros(samples, dtype=np.int16)


class ToneSource(AudioSource):
    """An endless sine (tone_stream://%(1000,0,440);loops=-1 is continuous 440 Hz)."""

    def __init__(self, freq: float = 440.0, amplitude: int = 8000) -> None:
        self.freq = freq
        self.amplitude = amplitude
        self._t = 0.0

    def read(self, samples: int, rate: int) -> np.ndarray:
        """Next chunk of the tone, phase-continuous across rates."""
        t = self._t + np.arange(samples) / rate
        self._t += samples / rate
        return np.round(self.amplitude * np.sin(2 * math.pi * self.freq * t)).astype(np.int16)


class PcmSource(AudioSource):
    """A finite PCM recording (an injected WAV); silence after its end."""

    def __init__(self, pcm: np.ndarray, rate: int) -> None:
        self.pcm = pcm.astype(np.int16)
        self.rate = rate
        self._cache: dict[int, np.ndarray] = {}
        self._pos_s = 0.0

    @classmethod
    def from_wav(cls, path: Path) -> PcmSource:
        """Load a mono (first channel used) 16-bit WAV."""
        parsed = read_wav(path)
        if parsed is None:
            raise ValueError(f"not a 16-bit PCM WAV: {path}")
        rate, channels, pcm = parsed
        return cls(pcm[:: max(1, channels)], rate)

    def read(self, samples: int, rate: int) -> np.ndarray:
        """Next chunk, resampled to ``rate``."""
        if rate not in self._cache:
            self._cache[rate] = resample(self.pcm, self.rate, rate)
        pcm = self._cache[rate]
        start = round(self._pos_s * rate)
        self._pos_s += samples / rate
        chunk = pcm[start : start + samples]
        if len(chunk) < samples:
            chunk = np.concatenate([chunk, np.zeros(samples - len(chunk), dtype=np.int16)])
        return chunk


def file_pcm(path: str) -> tuple[np.ndarray, int] | None:
    """The PCM of a raw (``.r8``/``.r16``/...) or WAV play file, or None for tones and other media."""
    file = Path(path)
    if not file.is_file():
        return None
    suffix = file.suffix.lower()
    if suffix in RAW_RATES:
        return np.frombuffer(file.read_bytes()[: file.stat().st_size // 2 * 2], dtype="<i2"), RAW_RATES[
            suffix
        ]
    if suffix == ".wav":
        parsed = read_wav(file)
        if parsed is not None:
            rate, channels, pcm = parsed
            return pcm[:: max(1, channels)], rate
    return None


class EchoSource(AudioSource):
    """A phone leg's line echo: what the channel plays comes back into what it reads, ``echo_db`` down.

    A hybrid or a handset speaker couples part of the far end's audio into the near end's microphone; the
    media bug's ``mono`` read then carries the caller plus that echo. Played files are mixed in from their
    start for as long as they play (a break stops the echo at once).
    """

    def __init__(self, inner: AudioSource | None, echo_db: float) -> None:
        self.inner = inner or AudioSource()
        self.gain = 10 ** (echo_db / 20)
        self._playing: PcmSource | None = None

    def play(self, path: str) -> None:
        """The channel starts playing ``path``."""
        found = file_pcm(path)
        self._playing = None if found is None else PcmSource(found[0], found[1])

    def stop(self) -> None:
        """The channel stopped playing."""
        self._playing = None

    def read(self, samples: int, rate: int) -> np.ndarray:
        """The caller's audio plus the attenuated echo of what is playing."""
        near = self.inner.read(samples, rate).astype(np.float64)
        if self._playing is not None:
            near += self.gain * self._playing.read(samples, rate)
        mixed: np.ndarray = np.clip(np.round(near), -32768, 32767).astype(np.int16)
        return mixed
