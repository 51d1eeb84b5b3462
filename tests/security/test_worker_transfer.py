"""Issue 17, attack 1, the worker's fence: an agent whose ``transfers`` patterns do not match the number
the caller talked it into sends no transfer at all (the controller checks again, test_agent_transfer.py),
and tells the controller it refused one (``{"type":"refused",...}``), so the CDR shows it. An agent whose
``transfers`` name a route (``route:<name>``) leaves those to the controller, which knows the routes.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from media_worker.agent.base import Message
from media_worker.agent.scripted import Intent, ScriptedAgent, ScriptedAgentSettings
from media_worker.metrics import WorkerMetrics
from media_worker.tts.base import TTS
from media_worker.vad.silero import SileroModel
from media_worker.voice.base import VoicePipeline
from media_worker.voice.latency import TurnTimings
from media_worker.voice.providers import ProviderRegistry
from media_worker.voice.settings import AgentSettings
from media_worker.voice.speak import Reply, stream_reply
from tests.controllerkit import register_worker, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.wire import Event
from tests.speech import build_call, tools_available
from tests.workerkit import running_worker

PREMIUM = "19005550100"


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


def _refused(argument: str) -> dict[str, str]:
    return {"type": "refused", "action": "transfer", "argument": argument, "reason": "not_in_transfers"}


async def test_a_transfer_outside_the_agents_patterns_is_not_sent() -> None:
    assert await _actions((r"1[0-9]{3}",), PREMIUM) == [_refused(PREMIUM)]
    assert await _actions((r"1[0-9]{3}",), "1000") == [
        {"type": "action", "action": "transfer", "argument": "1000"}
    ]


async def test_the_refusal_carries_only_printable_characters() -> None:
    """A model's argument is any text: the refusal shows it with odd characters as ``?``, cut at 64."""
    assert await _actions((r"1[0-9]{3}",), "1 900 555;$(id)") == [_refused("1?900?555???id?")]
    assert await _actions((r"1[0-9]{3}",), "9" * 100) == [_refused("9" * 64)]


async def test_named_routes_are_left_to_the_controller() -> None:
    """The worker does not know the routes: with a ``route:`` entry it sends what its patterns miss (the
    controller checks it by the route, test_agent_transfer.py::test_a_named_route_allows_its_destinations)."""
    sent = [{"type": "action", "action": "transfer", "argument": "9196"}]
    assert await _actions((r"1[0-9]{3}", "route:echo"), "9196") == sent


def test_transfers_entries_must_compile_or_name_a_route() -> None:
    with pytest.raises(ValueError, match="transfers"):
        AgentSettings(name="a", transfers=("(",))
    with pytest.raises(ValueError, match="route:<name>"):
        AgentSettings(name="a", transfers=("route:",))
    with pytest.raises(ValueError, match="route:<name>"):
        AgentSettings(name="a", transfers=("route:a b",))
    assert AgentSettings(name="a", transfers=("route:desks",)).transfers == ("route:desks",)


# -- end to end: the emulated caller, a real worker app, the controller ----------------------------------
AGENT: dict[str, Any] = {
    "name": "support",
    "greeting": None,
    "transfers": ["1[0-9]{3}"],  # the desk phones, nothing else
    "tts": {"provider": "espeak"},
    "agent": {
        "provider": "scripted",
        "intents": [
            {
                "name": "premium",
                "pattern": r"\bpremium\b",
                "reply": "Let me see.",
                "action": "transfer",
                "argument": PREMIUM,
            }
        ],
    },
}
RATE = 16000  # a wideband phone: Whisper tiny.en hears espeak-ng better than at 8 kHz


@pytest.fixture(scope="module")
def registry() -> Iterator[ProviderRegistry]:
    with ThreadPoolExecutor(2, thread_name_prefix="inference") as executor:
        yield ProviderRegistry(executor)


def _worker_json(events: list[Event], uuid: str) -> list[dict[str, Any]]:
    return [
        json.loads(e.body or "{}")
        for e in events
        if e.subclass == "mod_audio_stream::json" and e.get("Unique-ID") == uuid
    ]


@pytest.mark.skipif(not tools_available(), reason="espeak-ng and sox are needed")
async def test_a_worker_refusal_reaches_the_cdr(registry: ProviderRegistry, tmp_path: Path) -> None:
    """The caller asks for the premium line; the worker's agent asks to transfer there; the worker refuses
    (its patterns: desk phones), tells the controller, and the CDR shows it; nothing is transferred."""
    caller = build_call(tmp_path, RATE, [(0.8, "Please transfer me to the premium line.")], tail=6)
    metrics = WorkerMetrics()
    pipelines: dict[str, VoicePipeline] = dict(
        registry.pipelines([AgentSettings.model_validate(AGENT)], metrics)
    )
    routes = [{"destination": "^7150$", "action": "agent support"}]
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_worker(SileroModel(None, 1), pipelines, metrics) as rw,
        running_controller(
            fs, tmp_path, calls={"routes": routes}, agents=[{"name": "support", "transfers": ["1[0-9]{3}"]}]
        ) as rc,
    ):
        await register_worker(rc, rw.worker.settings.worker_id, f"ws://127.0.0.1:{rw.port}")
        events = fs.record_events()
        uuid = await fs.inject_inbound_call(destination="7150", codec="G722", rate=RATE, audio=caller.path)

        def turned() -> bool:
            return any(m.get("type") == "transcript" for m in _worker_json(events, uuid))

        await fs.wait_for(turned, timeout=30)  # sent after the refusal, on the same socket
        await fs.caller_hangup(uuid)
        await rc.call_ended(uuid, timeout=10)
        record = await rc.controller.store.get(uuid)
    sent = _worker_json(events, uuid)
    assert _refused(PREMIUM) in sent
    assert not [m for m in sent if m.get("type") == "action"]
    assert not [e for e in events if e.get("API-Command") == "uuid_transfer"]
    assert record is not None
    assert "premium" in record.transcript[0].caller.lower()
    assert record.extra.get("transfer_refused") == PREMIUM
    assert record.extra.get("transfer_refused_by") == "worker"
