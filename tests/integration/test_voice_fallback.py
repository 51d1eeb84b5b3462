"""Never dead air: when a network provider fails mid-call, the caller hears the apology.

An agent configured with OpenAI-compatible ASR and chat endpoints (local servers speaking the real shapes)
and espeak-ng as its voice, built the way the worker builds it; its dialog answers a turn. The chat server
fails (5xx after the retries, a stall past the deadline, a cut after the first sentence): the answer ends
with the pre-rendered apology, and whatever was complete before the failure is still spoken.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import pytest

from media_worker.metrics import WorkerMetrics
from media_worker.voice.base import Dialog, Output, Utterance
from media_worker.voice.conversation import ConversationPipeline
from media_worker.voice.providers import ProviderRegistry
from media_worker.voice.settings import AgentSettings
from switchyard.wire import StreamMetadata
from tests.providerkit import Reply, ScriptedServer, chunk, json_reply, sse, stall, status, streamed
from tests.speech import tools_available

pytestmark = pytest.mark.skipif(not tools_available(), reason="espeak-ng is needed")

FAST_RETRY = {"attempts": 2, "initial_s": 0.01, "maximum_s": 0.02}
CALL = StreamMetadata(call_id="c1", sample_rate=16000, agent="cloud")


@pytest.fixture
def registry() -> Iterator[ProviderRegistry]:
    with ThreadPoolExecutor(1) as executor:
        yield ProviderRegistry(executor)


@asynccontextmanager
async def cloud_agent(registry: ProviderRegistry, chat: list[Reply]) -> AsyncIterator[tuple[Dialog, bytes]]:
    """A started pipeline whose ASR hears "what are your hours" and whose chat server answers ``chat``."""
    asr = ScriptedServer([json_reply({"text": "What are your hours?"})])
    llm = ScriptedServer(chat)
    async with asr.run() as asr_url, llm.run() as llm_url:
        network: dict[str, Any] = {"provider": "openai", "retry": FAST_RETRY, "timeout_s": 2.0}
        settings = AgentSettings.model_validate(
            {
                "name": "cloud",
                "asr": {**network, "base_url": asr_url},
                "agent": {**network, "base_url": llm_url, "model": "m"},
                "tts": {"provider": "espeak"},
            }
        )
        pipeline = registry.pipelines([settings], WorkerMetrics())["cloud"]
        assert isinstance(pipeline, ConversationPipeline)
        await pipeline.start()
        try:
            yield pipeline.open(CALL), pipeline.apology
        finally:
            await registry.aclose()


async def _answer(dialog: Dialog) -> list[Output]:
    utterance = Utterance(CALL, bytes(16000), 0, 1000, ended_at=0.0, decided_at=0.0)
    return [out async for out in dialog.respond(utterance)]


@pytest.mark.parametrize(
    "failure",
    [status(503, {"error": {"message": "overloaded"}}), stall()],
    ids=["5xx", "timeout"],
)
async def test_chat_failure_before_any_text_is_the_apology(
    registry: ProviderRegistry, failure: Reply
) -> None:
    async with cloud_agent(registry, [failure]) as (dialog, apology):
        outputs = await _answer(dialog)
    audio = [o for o in outputs if isinstance(o, bytes)]
    assert len(apology) > 16000  # more than half a second of speech
    assert audio == [apology]


async def test_chat_cut_after_a_sentence_speaks_it_then_apologises(registry: ProviderRegistry) -> None:
    body = sse(chunk("We are open from nine to five. "), chunk("On Saturdays we"), done=False)
    reply = streamed([body], "text/event-stream", then="drop")
    async with cloud_agent(registry, [reply]) as (dialog, apology):
        outputs = await _answer(dialog)
    audio = [o for o in outputs if isinstance(o, bytes)]
    texts = [o for o in outputs if isinstance(o, str)]
    assert len(audio) >= 2
    assert audio[-1] == apology
    assert sum(len(a) for a in audio[:-1]) > 16000  # the complete first sentence was spoken
    assert '"agent":"We are open from nine to five."' in texts[-1]
