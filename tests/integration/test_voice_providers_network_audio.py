"""The network speech providers (OpenAI transcription and speech, Deepgram streaming) against loopback
servers speaking their APIs (tests/providerkit.py).

What each server observes is asserted (multipart fields, the WAV it got, request bodies, WebSocket query,
auth header and audio), as well as what the provider makes of the answers: streaming, retries only where
they are safe, deadlines, and the mapping of failures to ``ProviderError`` subclasses.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import socket
import time
import wave
from contextlib import aclosing
from typing import Any

import numpy as np
import pytest

from media_worker.asr.base import Transcript, Word
from media_worker.asr.deepgram import DeepgramASR, DeepgramAsrSettings
from media_worker.asr.openai import OpenAiASR, OpenAiAsrSettings
from media_worker.errors import ProviderReplyError, ProviderUnavailable
from media_worker.tts.openai import OpenAiTTS, OpenAiTtsSettings
from tests.integration.voicenetkit import FAST_RETRY, drain
from tests.providerkit import DeepgramServer, ScriptedServer, json_reply, split, status, streamed

pytestmark = pytest.mark.timeout(10)


# ---- transcriptions -----------------------------------------------------------------------------------


def asr_settings(base: str, **overrides: Any) -> OpenAiAsrSettings:
    data = {"provider": "openai", "base_url": base, "api_key": "sk-asr", "retry": FAST_RETRY}
    return OpenAiAsrSettings.model_validate({**data, **overrides})


def tone(seconds: float, rate: int = 16000, hz: float = 440.0) -> bytes:
    count = round(seconds * rate)
    samples = (8000 * np.sin(2 * math.pi * hz * np.arange(count) / rate)).astype("<i2")
    return samples.tobytes()


VERBOSE: dict[str, Any] = {
    "task": "transcribe",
    "language": "english",
    "duration": 1.5,
    "text": " I'd like to pay my bill.",
    "segments": [{"id": 0, "start": 0.0, "end": 1.5, "text": " I'd like to pay my bill."}],
    "words": [
        {"word": "I'd", "start": 0.1, "end": 0.3},
        {"word": "like", "start": 0.3, "end": 0.5},
        {"word": "to", "start": 0.5, "end": 0.6},
        {"word": "pay", "start": 0.6, "end": 0.9},
        {"word": "my", "start": 0.9, "end": 1.0},
        {"word": "bill.", "start": 1.0, "end": 1.3},
    ],
}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            VERBOSE,
            Transcript(
                "I'd like to pay my bill.",
                True,
                0.1,
                1.3,
                tuple(Word(w["word"], w["start"], w["end"]) for w in VERBOSE["words"]),
            ),
        ),
        ({"text": "I'd like to pay my bill."}, Transcript("I'd like to pay my bill.", True)),
        (
            {
                "text": "hi",
                "segments": [
                    {"start": 0.2, "end": 0.7, "words": [{"word": " hi", "start": 0.2, "end": 0.6}]}
                ],
            },
            Transcript("hi", True, 0.2, 0.6, (Word("hi", 0.2, 0.6),)),
        ),
    ],
)
async def test_transcription_sends_a_wav_form_and_parses_the_reply(reply: Any, expected: Transcript) -> None:
    audio = tone(1.5)
    server = ScriptedServer([json_reply(reply)])
    async with server.run() as base, aclosing(OpenAiASR(asr_settings(base, model="whisper-large-v3"))) as asr:
        transcript = await asr.transcribe(audio, "en-US")
    assert transcript == expected
    (request,) = server.received
    assert request.path == "/v1/audio/transcriptions"
    assert request.headers["Authorization"] == "Bearer sk-asr"
    form = request.form
    assert form["model"] == "whisper-large-v3"
    assert form["language"] == "en"
    assert form["response_format"] == "verbose_json"
    assert form["timestamp_granularities[]"] == "word"
    filename, content_type, wav_bytes = form["file"]
    assert (filename, content_type) == ("audio.wav", "audio/wav")
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert wav.getnframes() == len(audio) // 2
        assert wav.readframes(wav.getnframes()) == audio


async def test_transcription_retries_a_500_and_rejects_a_400() -> None:
    server = ScriptedServer([status(500, {}), json_reply({"text": "ok"})])
    async with server.run() as base, aclosing(OpenAiASR(asr_settings(base))) as asr:
        assert (await asr.transcribe(tone(0.2), "en")).text == "ok"
    assert len(server.received) == 2
    server = ScriptedServer([status(400, {"error": {"message": "Invalid file format."}})])
    async with server.run() as base, aclosing(OpenAiASR(asr_settings(base))) as asr:
        with pytest.raises(ProviderReplyError, match="Invalid file format"):
            await asr.transcribe(tone(0.2), "en")
    assert len(server.received) == 1


async def test_transcription_reply_of_the_wrong_shape_is_a_reply_error() -> None:
    server = ScriptedServer([json_reply({"transcript": "no text field"})])
    async with server.run() as base, aclosing(OpenAiASR(asr_settings(base))) as asr:
        with pytest.raises(ProviderReplyError, match="no text"):
            await asr.transcribe(tone(0.2), "en")


# ---- speech -------------------------------------------------------------------------------------------


def tts_settings(base: str, **overrides: Any) -> OpenAiTtsSettings:
    data = {"provider": "openai", "base_url": base, "api_key": "sk-tts", "retry": FAST_RETRY}
    return OpenAiTtsSettings.model_validate({**data, **overrides})


def dominant_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


async def test_speech_streams_16k_audio_before_the_server_finishes() -> None:
    pcm24 = tone(1.0, rate=24000)
    gate = asyncio.Event()
    pieces = [pcm24[:9600], *split(pcm24[9600:], 4001)]  # 0.2 s, then pieces that split samples
    server = ScriptedServer([streamed(pieces, "audio/pcm", gate=gate)])
    async with (
        server.run() as base,
        aclosing(OpenAiTTS(tts_settings(base, model="tts-1-hd", voice="nova"))) as tts,
    ):
        speech = tts.synthesize("Hello there.", voice="echo")
        first = await anext(speech)
        assert not server.finished.is_set()
        gate.set()
        chunks = [first, *[c async for c in speech]]
    assert server.finished.is_set()
    assert all(len(c) % 2 == 0 and c for c in chunks)
    out = b"".join(chunks)
    assert abs(len(out) / 32000 - 1.0) <= 0.02
    assert abs(dominant_hz(out, 16000) - 440.0) < 5.0
    (request,) = server.received
    assert request.path == "/v1/audio/speech"
    assert request.headers["Authorization"] == "Bearer sk-tts"
    body = json.loads(request.body)
    assert body == {"model": "tts-1-hd", "input": "Hello there.", "voice": "echo", "response_format": "pcm"}


async def test_speech_retries_before_audio_but_not_after() -> None:
    pcm24 = tone(0.5, rate=24000)
    server = ScriptedServer([status(502, {}), streamed(split(pcm24, 4800), "audio/pcm")])
    async with server.run() as base, aclosing(OpenAiTTS(tts_settings(base))) as tts:
        out = b"".join([c async for c in tts.synthesize("Hi.")])
    assert len(server.received) == 2
    assert abs(len(out) / 32000 - 0.5) <= 0.02
    assert json.loads(server.received[1].body)["voice"] == "alloy"

    server = ScriptedServer([streamed([pcm24[:9600]], "audio/pcm", then="drop")])
    async with server.run() as base, aclosing(OpenAiTTS(tts_settings(base))) as tts:
        got: list[bytes] = []
        with pytest.raises(ProviderUnavailable):
            await drain(tts.synthesize("Hi."), got)
    assert got
    assert len(server.received) == 1


async def test_speech_of_nothing_sends_no_request() -> None:
    server = ScriptedServer([status(500, {})])
    async with server.run() as base, aclosing(OpenAiTTS(tts_settings(base))) as tts:
        assert [c async for c in tts.synthesize("  ")] == []
    assert server.received == []


# ---- Deepgram -----------------------------------------------------------------------------------------


def deepgram(url: str, key: str = "dg-secret", **options: Any) -> DeepgramASR:
    settings = DeepgramAsrSettings.model_validate(
        {"provider": "deepgram", "url": url, "api_key": key, "model": "nova-2", "retry": FAST_RETRY}
    )
    return DeepgramASR(settings, **options)


async def test_deepgram_stream_partials_then_one_final_per_flush() -> None:
    server = DeepgramServer()
    async with server.run() as url:
        asr = deepgram(url, finalize_timeout_s=5.0)
        stream = asr.stream("en-US")
        audio = tone(1.0)
        try:
            for offset in range(0, len(audio), 640):  # 20 ms frames, as the worker pushes them
                stream.push_frame(audio[offset : offset + 640])
            got: list[Transcript] = []
            async with asyncio.timeout(3):
                async for transcript in stream:
                    got.append(transcript)
                    if len(got) == 1:
                        stream.flush()
                    if transcript.final:
                        break
        finally:
            await stream.aclose()
            await asr.aclose()
    assert got[0] == Transcript("I", False, 0.0, 0.1, (Word("I", 0.0, 0.1),))
    final = got[-1]
    assert [t.final for t in got] == [False] * (len(got) - 1) + [True]
    assert final.text == "I would like to pay my bill."
    assert final.words[-1].text == "bill."
    assert final.end_s == pytest.approx(1.0)
    assert server.queries == [
        {
            "model": "nova-2",
            "language": "en-US",
            "encoding": "linear16",
            "sample_rate": "16000",
            "channels": "1",
            "interim_results": "true",
            "punctuate": "true",
        }
    ]
    assert bytes(server.audio) == audio
    assert max(server.binary_sizes) <= 3200
    assert [json.loads(t)["type"] for t in server.texts] == ["Finalize", "CloseStream"]


@pytest.mark.parametrize("mode", ["split", "covered"])
async def test_deepgram_transcribe_joins_final_pieces(mode: str) -> None:
    server = DeepgramServer(finalize=mode)
    async with server.run() as url, aclosing(deepgram(url, finalize_timeout_s=5.0)) as asr:
        started = time.monotonic()
        transcript = await asr.transcribe(tone(2.0), "en")
    assert transcript.final
    assert transcript.text == "I would like to pay my bill."
    assert len(transcript.words) == 7
    assert (transcript.start_s, transcript.end_s) == pytest.approx((0.0, 2.0))
    assert time.monotonic() - started < 2.0  # answered by the server, not by finalize_timeout_s
    assert bytes(server.audio) == tone(2.0)


async def test_deepgram_unanswered_finalize_settles_after_its_timeout() -> None:
    server = DeepgramServer(finalize="ignore")
    async with server.run() as url, aclosing(deepgram(url, finalize_timeout_s=0.2)) as asr:
        started = time.monotonic()
        transcript = await asr.transcribe(tone(0.1), "en")
    assert transcript == Transcript("", True)
    assert 0.2 <= time.monotonic() - started < 2.0


async def test_deepgram_keepalive_while_no_audio_flows() -> None:
    server = DeepgramServer()
    async with server.run() as url:
        asr = deepgram(url, keepalive_s=0.05)
        stream = asr.stream("en")
        try:
            stream.push_frame(tone(0.02))
            async with asyncio.timeout(3):
                await server.wait_for_texts(2)
        finally:
            await stream.aclose()
            await asr.aclose()
    assert {json.loads(t)["type"] for t in server.texts[:2]} == {"KeepAlive"}


async def test_deepgram_refused_key_is_a_reply_error_without_retry() -> None:
    server = DeepgramServer()
    async with server.run() as url, aclosing(deepgram(url, key="wrong")) as asr:
        with pytest.raises(ProviderReplyError, match=r"401: .*Invalid credentials"):
            await asr.transcribe(tone(0.2), "en")
    assert server.handshakes == 1


async def test_deepgram_server_closing_early_is_unavailable() -> None:
    server = DeepgramServer(close_code=1011)
    async with server.run() as url, aclosing(deepgram(url)) as asr:
        with pytest.raises(ProviderUnavailable, match="1011"):
            await asr.transcribe(tone(0.2), "en")


async def test_deepgram_refused_connection_is_unavailable_after_the_attempts() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with aclosing(deepgram(f"ws://127.0.0.1:{port}/v1/listen")) as asr:
        with pytest.raises(ProviderUnavailable, match="after 3 attempts"):
            await asr.transcribe(tone(0.2), "en")
