"""The worker as ``switchyard-worker`` assembles it from the settings: the default offline agent greets a
caller; a stream naming an agent the worker does not have is refused with a reason naming the field."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import numpy as np

from media_worker.__main__ import make_worker
from media_worker.server import build_app
from media_worker.settings import WorkerProcessSettings
from media_worker.tts.cache import SpeechCache
from switchyard.wire import CLOSE_POLICY
from tests.appkit import served as served_app
from tests.speech import synthesize
from tests.workerkit import STREAM_SECRET, stream_token


@asynccontextmanager
async def served(settings: WorkerProcessSettings) -> AsyncIterator[str]:
    """The worker ``make_worker`` builds, on an ephemeral loopback port; yields its ws:// base."""
    async with served_app(build_app(make_worker(settings))) as port:
        yield f"ws://127.0.0.1:{port}"


async def test_default_agent_greets_and_unknown_agent_is_refused() -> None:
    settings = WorkerProcessSettings.model_validate({"media_worker": {"stream_secret": STREAM_SECRET}})
    assert [a.name for a in settings.agents] == ["default"]
    async with served(settings) as base, aiohttp.ClientSession() as http:
        greeted = await http.ws_connect(f"{base}/stream/c1", timeout=aiohttp.ClientWSTimeout(ws_close=5))
        await greeted.send_str(
            json.dumps(
                {"call_id": "c1", "sample_rate": 16000, "agent": "default", "token": stream_token("c1")}
            )
        )
        first = await greeted.receive(timeout=10)
        await greeted.close()
        refused = await http.ws_connect(f"{base}/stream/c2")
        await refused.send_str(
            json.dumps(
                {"call_id": "c2", "sample_rate": 16000, "agent": "nobody", "token": stream_token("c2")}
            )
        )
        closing = await refused.receive(timeout=5)
        await refused.close()
    assert first.type is aiohttp.WSMsgType.TEXT
    assert json.loads(first.data)["type"] == "streamAudio"
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert closing.data == CLOSE_POLICY
    assert "metadata.agent" in str(closing.extra)


async def test_a_greeting_said_on_every_call_is_synthesized_once() -> None:
    settings = WorkerProcessSettings.model_validate({"media_worker": {"stream_secret": STREAM_SECRET}})
    worker = make_worker(settings)
    assert worker.providers is not None
    agent = settings.agents[0]
    tts = worker.providers.tts(agent.tts)
    assert isinstance(tts, SpeechCache)
    async with served_app(build_app(worker)) as port, aiohttp.ClientSession() as http:
        greetings: list[list[str]] = []
        for call in ("c1", "c2"):
            ws = await http.ws_connect(f"ws://127.0.0.1:{port}/stream/{call}")
            meta = {"call_id": call, "sample_rate": 16000, "agent": "default", "token": stream_token(call)}
            await ws.send_str(json.dumps(meta))
            heard = [json.loads((await ws.receive(timeout=10)).data)["data"]["audioData"]]
            while (agent.greeting, None) not in tts:  # the whole greeting made before hanging up
                heard.append(json.loads((await ws.receive(timeout=10)).data)["data"]["audioData"])
            greetings.append(heard)
            await ws.close()
    assert greetings[1] == greetings[0][: len(greetings[1])]
    assert tts.hits == 1


async def test_a_transcript_request_gets_every_turn_again(tmp_path: Path) -> None:
    """What a restarted controller sends (``transcript_request``): the worker answers with each finished
    turn's transcript message, exactly as it first sent it."""
    settings = WorkerProcessSettings.model_validate({"media_worker": {"stream_secret": STREAM_SECRET}})
    words = synthesize("I would like to pay my bill, please.", 16000, tmp_path)
    silence = np.zeros(16000, dtype=np.int16)
    audio = np.concatenate([silence, words, silence, silence]).tobytes()
    async with served(settings) as base, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{base}/stream/c1")
        meta = {"call_id": "c1", "sample_rate": 16000, "agent": "default", "token": stream_token("c1")}
        await ws.send_str(json.dumps(meta))
        for at in range(0, len(audio), 640):  # 20 ms frames, four times real time
            await ws.send_bytes(audio[at : at + 640])
            await asyncio.sleep(0.005)
        first = await _next_transcript(ws)
        await ws.send_str('{"type":"transcript_request"}')
        again = await _next_transcript(ws)
        await ws.close()
    assert "bill" in json.loads(first)["caller"].lower()
    assert again == first


async def _next_transcript(ws: aiohttp.ClientWebSocketResponse) -> str:
    async with asyncio.timeout(20):
        while True:
            message = await ws.receive()
            assert message.type is aiohttp.WSMsgType.TEXT, message
            if json.loads(message.data)["type"] == "transcript":
                return str(message.data)
