"""Voice turn latency: synthesized caller utterances through a real worker with the offline defaults.

The worker (Silero VAD, Whisper tiny.en, the scripted agent, Piper joe-medium; one inference thread, one
model thread each) runs in this process, which is pinned to one core. A client speaking mod_audio_stream's
protocol (metadata text, then 20 ms L16 frames at 16 kHz in real time) plays each utterance followed by
silence and waits for the agent's answer before the next one. Per turn the worker records (see
``media_worker/voice/latency.py``): end of caller speech (VAD) → turn decided (the SIP profile's 500 ms
end-of-turn window) → ASR final → first agent token → first TTS audio → first chunk sent, and the compute
times. *Overhead* = (first chunk sent - turn decided) - ASR compute after the decision - agent - TTS.
The client also measures the end of the utterance's audio → the first ``streamAudio`` received.

Targets: overhead p95 <= 30 ms; end of caller speech → first chunk sent p50 <= 800 ms.
Last line: ``overhead_p95_ms=<n> first_audio_p50_ms=<n> asr_p50_ms=<n> agent_p50_ms=<n>
tts_first_audio_p50_ms=<n>``.

Impossible results end the run with exit 1 and one line on stderr (:mod:`bench.result`): a turn with no
answer within 15 s, a provider failure (the answer was the apology), fewer turns recorded by the worker
than answered, a figure that is not finite.

Run: ``make bench`` or ``python -m bench.voice_turn [--rounds 3] [--utterances 6]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web

from bench import streamkey
from bench.result import ImpossibleResult, figures_line, require_finite, run
from media_worker.metrics import COMPUTE_STAGES, WorkerMetrics
from media_worker.server import Worker, build_app
from media_worker.settings import WorkerSettings
from media_worker.vad.silero import SileroModel
from media_worker.voice.providers import ProviderRegistry
from media_worker.voice.settings import AgentSettings
from tests.speech import synthesize

RATE = 16000
FRAME = RATE // 50 * 2  # 20 ms of L16
UTTERANCES = (
    "I want to pay my bill.",
    "What are your opening hours?",
    "I would like to make a payment on my bill please.",
    "When are you open on Monday?",
    "Can you help me with something else?",
    "I need some information about my account.",
)
SILENCE_S = 1.2  # after each utterance: longer than the 500 ms end-of-turn window
ANSWER_S = 15.0  # deadline for the first answer chunk of a turn


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))]


async def serve_worker(executor: ThreadPoolExecutor) -> tuple[web.AppRunner, Worker, int]:
    """The worker with one offline agent (no greeting, no reprompts during the bench)."""
    agent = AgentSettings.model_validate({"name": "bench", "greeting": None, "silence": {"timeout_s": 600}})
    metrics = WorkerMetrics()
    pipelines = ProviderRegistry(executor).pipelines([agent], metrics)
    settings = WorkerSettings.model_validate(
        {
            "port": 0,
            "inference_threads": 1,
            "stream_secret": streamkey.SECRET,
            "worker_id": streamkey.WORKER_ID,
        }
    )
    worker = Worker(settings, SileroModel(None, 1), pipelines, metrics)
    runner = web.AppRunner(build_app(worker), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, worker, int(runner.addresses[0][1])


async def speak(ws: aiohttp.ClientWebSocketResponse, pcm: bytes, answers: asyncio.Queue[float]) -> float:
    """Send ``pcm`` then silence in real time; returns seconds from the end of speech to the answer."""
    audio = pcm + bytes(int(SILENCE_S * RATE) * 2)
    start = time.monotonic()
    speech_end = start + len(pcm) / 2 / RATE
    while not answers.empty():
        answers.get_nowait()
    for i in range(0, len(audio) - FRAME + 1, FRAME):
        await asyncio.sleep(max(0.0, start + i / 2 / RATE - time.monotonic()))
        await ws.send_bytes(audio[i : i + FRAME])
    try:
        async with asyncio.timeout(ANSWER_S):
            first = await answers.get()
    except TimeoutError:
        raise ImpossibleResult(f"no answer within {ANSWER_S:g} s of the end of an utterance") from None
    await asyncio.sleep(2.0)  # let the answer play out (the worker only counts it as sent)
    return first - speech_end


async def listen(ws: aiohttp.ClientWebSocketResponse, answers: asyncio.Queue[float]) -> None:
    """Stamp the first streamAudio of each answer (the client clears the queue per turn)."""
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT and '"streamAudio"' in msg.data[:40]:
            answers.put_nowait(time.monotonic())


async def talk(rounds: int, utterances: int) -> None:
    """Synthesize, serve, talk, report."""
    with tempfile.TemporaryDirectory() as tmp:
        speech = [synthesize(t, RATE, Path(tmp)).astype("<i2").tobytes() for t in UTTERANCES[:utterances]]
    with ThreadPoolExecutor(1, thread_name_prefix="inference") as executor:
        runner, worker, port = await serve_worker(executor)
        client_s: list[float] = []
        try:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"ws://127.0.0.1:{port}/stream/bench-call")
                meta = {"call_id": "bench-call", "sample_rate": RATE, "agent": "bench", "call_type": "sip"}
                meta["token"] = streamkey.token("bench-call")
                await ws.send_str(json.dumps(meta))
                answers: asyncio.Queue[float] = asyncio.Queue()
                listener = asyncio.create_task(listen(ws, answers))
                for _ in range(rounds):
                    for pcm in speech:
                        client_s.append(await speak(ws, pcm, answers))
                await ws.close()
                listener.cancel()
                await asyncio.wait({listener}, timeout=2)
        finally:
            await runner.cleanup()
    registry = worker.metrics.registry
    failures = {
        stage: registry.get_sample_value("switchyard_worker_provider_failures_total", {"stage": stage})
        for stage in COMPUTE_STAGES
    }
    if any(failures.values()):
        raise ImpossibleResult(f"provider failures {failures}: the answers were the apology")
    report(list(worker.metrics.recent_turns), client_s)


def report(turns: list[dict[str, float]], client_s: list[float]) -> None:
    """Print per-stage p50/p95 and the last line."""
    print(f"turns: {len(turns)} recorded by the worker, {len(client_s)} answered to the client")
    rows = {
        "ASR time": [t["asr_ms"] for t in turns],
        "agent time to first token": [t["agent_ms"] for t in turns],
        "TTS time to first audio": [t["tts_ms"] for t in turns],
        "pipeline overhead": [t["overhead_ms"] for t in turns if "overhead_ms" in t],
        "speech end -> turn decided": [t["turn_decided"] for t in turns],
        "speech end -> ASR final": [t["asr_final"] for t in turns],
        "speech end -> first chunk sent": [t["first_chunk_sent"] for t in turns],
        "client: audio end -> first streamAudio": [s * 1000 for s in client_s],
    }
    for name, values in rows.items():
        print(f"{name:42s} p50 {percentile(values, 0.5):8.1f} ms  p95 {percentile(values, 0.95):8.1f} ms")
    if len(turns) < len(client_s):
        raise ImpossibleResult(
            f"the worker recorded {len(turns)} turns; the client got {len(client_s)} answers"
        )
    figures = {
        "overhead_p95_ms": percentile(rows["pipeline overhead"], 0.95),
        "first_audio_p50_ms": percentile(rows["speech end -> first chunk sent"], 0.5),
        "asr_p50_ms": percentile(rows["ASR time"], 0.5),
        "agent_p50_ms": percentile(rows["agent time to first token"], 0.5),
        "tts_first_audio_p50_ms": percentile(rows["TTS time to first audio"], 0.5),
    }
    require_finite(**figures)
    print(figures_line(turns=len(turns), **figures))


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="times the utterance set is spoken")
    parser.add_argument("--utterances", type=int, default=len(UTTERANCES), help="of the set, the first N")
    parser.add_argument("--core", type=int, default=0, help="the core to pin to (-1: no pinning)")
    args = parser.parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    asyncio.run(talk(max(1, min(args.rounds, 20)), max(1, min(args.utterances, len(UTTERANCES)))))


if __name__ == "__main__":
    run("voice_turn", main)
