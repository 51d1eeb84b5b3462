"""Real test speech: espeak-ng synthesises, sox converts to 8 or 16 kHz L16; nothing is checked in.

A call's audio is built from a script of (pause before, sentence) pairs; each sentence is trimmed to its
first and last sample above -40 dBFS, so the segment boundaries are known to the sample.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

I16 = npt.NDArray[np.int16]
_TRIM = 328  # |x| above -40 dBFS counts as sound


@dataclass(frozen=True)
class Segment:
    """A spoken sentence and where it lies in the call, in seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class CallAudio:
    """A caller's side of a call: the WAV the emulator streams, its rate and its speech segments."""

    path: Path
    rate: int
    pcm: I16
    segments: tuple[Segment, ...]

    @property
    def seconds(self) -> float:
        """Length of the audio."""
        return len(self.pcm) / self.rate


def tools_available() -> bool:
    """espeak-ng and sox are installed (.ci/run installs them)."""
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def synthesize(text: str, rate: int, workdir: Path, speed: int = 160) -> I16:
    """``text`` spoken by espeak-ng (en-us), resampled by sox to ``rate``, trimmed to its sound."""
    raw, out = workdir / "espeak.wav", workdir / f"speech-{rate}.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(raw), text], check=True, timeout=30
    )
    subprocess.run(
        ["sox", str(raw), "-r", str(rate), "-b", "16", "-c", "1", str(out)], check=True, timeout=30
    )
    pcm = read_wav(out)
    loud = np.nonzero(np.abs(pcm.astype(np.int32)) > _TRIM)[0]
    return pcm[loud[0] : loud[-1] + 1]


def read_wav(path: Path) -> I16:
    """Mono 16-bit WAV samples."""
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def write_wav(path: Path, pcm: I16, rate: int) -> None:
    """Write mono 16-bit WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def build_call(
    workdir: Path, rate: int, script: list[tuple[float, str]], tail: float = 1.5, name: str = "call"
) -> CallAudio:
    """Silence and sentences: each entry is (seconds of silence before it, sentence)."""
    parts: list[I16] = []
    segments: list[Segment] = []
    pos = 0
    for pause, text in script:
        parts.append(np.zeros(round(pause * rate), dtype=np.int16))
        pos += round(pause * rate)
        speech = synthesize(text, rate, workdir)
        parts.append(speech)
        segments.append(Segment(text, pos / rate, (pos + len(speech)) / rate))
        pos += len(speech)
    parts.append(np.zeros(round(tail * rate), dtype=np.int16))
    pcm = np.concatenate(parts)
    path = workdir / f"{name}-{rate}.wav"
    write_wav(path, pcm, rate)
    return CallAudio(path, rate, pcm, tuple(segments))


def noise_call(
    workdir: Path, rate: int, seconds: float, level_dbfs: float, *, kind: str, seed: int = 7
) -> Path:
    """A noise-only caller: ``white`` noise or ``hum`` (50 Hz mains with harmonics) at an RMS level."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    if kind == "white":
        x = rng.standard_normal(n)
    else:
        t = np.arange(n) / rate
        x = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8)) + 0.05 * rng.standard_normal(n)
    x = x / np.sqrt(np.mean(x**2)) * 32768 * 10 ** (level_dbfs / 20)
    path = workdir / f"{kind}-{rate}.wav"
    write_wav(path, np.clip(np.round(x), -32768, 32767).astype(np.int16), rate)
    return path
