"""Issue 17, attack 1, the worker's fence: an agent whose ``transfers`` patterns do not match the number
the caller talked it into sends no transfer at all (the controller checks again, test_agent_transfer.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from media_worker.agent.base import Message
from media_worker.agent.scripted import Intent, ScriptedAgent, ScriptedAgentSettings
from media_worker.metrics import WorkerMetrics
from media_worker.tts.base import TTS
from media_worker.voice.latency import TurnTimings
from media_worker.voice.settings import AgentSettings
from media_worker.voice.speak import Reply, stream_reply


class SilentTts(TTS):
    """A TTS that is never asked: the intents below only act."""

    async def synthesize(self, text: str, voice: str | None = None) -> AsyncIterator[bytes]:
        raise AssertionError(f"not spoken: {text!r}")
        yield b""  # pragma: no cover - makes this an async generator


async def _actions(transfers: tuple[str, ...], argument: str) -> list[dict[str, str]]:
    intent = Intent(name="transfer", pattern="transfer", action="transfer", argument=argument)
    agent = ScriptedAgent(ScriptedAgentSettings(intents=(intent,)))
    out = stream_reply(
        agent,
        [Message("user", "transfer me to one nine hundred")],
        tts=SilentTts(),
        voice=None,
        timings=TurnTimings(time.monotonic(), time.monotonic()),
        reply=Reply(),
        apology=b"",
        metrics=WorkerMetrics(),
        transfers=transfers,
    )
    return [json.loads(item) async for item in out if isinstance(item, str)]


async def test_a_transfer_outside_the_agents_patterns_is_not_sent() -> None:
    assert await _actions((r"1[0-9]{3}",), "19005550100") == []
    assert await _actions((r"1[0-9]{3}",), "1000") == [
        {"type": "action", "action": "transfer", "argument": "1000"}
    ]


def test_transfers_patterns_must_compile() -> None:
    with pytest.raises(ValueError, match="transfers"):
        AgentSettings(name="a", transfers=("(",))
