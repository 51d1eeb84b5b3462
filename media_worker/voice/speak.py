"""One streaming reply: agent text → sentences → TTS → audio out, overlapped.

A producer task reads the agent's stream, cuts it into sentences (:class:`SentenceSplitter`) and queues
them, with the agent's actions where they came; the reply generator synthesizes each queued sentence as soon
as it is there and yields its audio chunk by chunk, so the first sentence is heard while the agent is still
writing the rest. Closing the generator (barge-in) cancels the producer, which closes the agent's stream
(the HTTP request of a network agent) and the TTS iteration in progress.

A provider failure ends the reply with the apology (pre-rendered audio), never with silence.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from media_worker.agent.base import ActionRequest, Agent, Message, TextDelta
from media_worker.errors import ProviderError
from media_worker.metrics import WorkerMetrics
from media_worker.tts.base import TTS
from media_worker.voice.base import Output, close_stream
from media_worker.voice.latency import TurnTimings
from media_worker.voice.sentences import SentenceSplitter
from media_worker.voice.settings import route_entry
from switchyard.messages import AgentAction, encode, refused

__all__ = ["Reply", "apologise", "speak_text", "stream_reply", "transfer_allowed"]

log = logging.getLogger("switchyard.worker.voice")

_Item = str | ActionRequest | ProviderError | None  # None: the agent is done
PRODUCER_STOP_S = 2.0  # bound on waiting for a cancelled producer


@dataclass
class Reply:
    """The outcome of a reply: what was said (for the history and the transcript) and the actions."""

    spoken: list[str] = field(default_factory=list)
    actions: list[ActionRequest] = field(default_factory=list)
    failed: bool = False

    @property
    def text(self) -> str:
        """Everything the agent said, as one string."""
        return " ".join(self.spoken)


async def speak_text(
    text: str, tts: TTS, voice: str | None, timings: TurnTimings | None = None
) -> AsyncIterator[bytes]:
    """``text`` synthesized, chunk by chunk (the first chunk stamps ``timings.first_audio``)."""
    started = time.monotonic()
    async for pcm in tts.synthesize(text, voice):
        if timings is not None and timings.first_audio is None:
            timings.first_audio = time.monotonic()
            timings.tts_s = timings.first_audio - started
        yield pcm


async def stream_reply(
    agent: Agent,
    history: Sequence[Message],
    *,
    tts: TTS,
    voice: str | None,
    timings: TurnTimings,
    reply: Reply,
    apology: bytes,
    metrics: WorkerMetrics,
    transfers: Sequence[str] = (),
) -> AsyncIterator[Output]:
    """Yield the agent's reply as audio (and action messages), filling ``reply`` as it goes; a transfer
    ``transfers`` does not allow (:func:`transfer_allowed`) is not sent: it is logged and a ``refused``
    message tells the controller (its CDR keeps it)."""
    queue: asyncio.Queue[_Item] = asyncio.Queue()
    producer = asyncio.create_task(_produce(agent, history, timings, queue), name="agent reply")
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, ProviderError):
                yield _failed(reply, item, "agent", apology, metrics)
                return
            if isinstance(item, ActionRequest):
                if item.action == "transfer" and not transfer_allowed(transfers, item.argument):
                    log.warning("the agent's transfer to %r refused: not in its transfers", item.argument)
                    yield encode(refused("transfer", item.argument, "not_in_transfers"))
                    continue
                reply.actions.append(item)
                yield encode(AgentAction(item.action, item.argument))
                continue
            try:
                async for pcm in speak_text(item, tts, voice, timings):
                    yield pcm
            except ProviderError as exc:
                yield _failed(reply, exc, "tts", apology, metrics)
                return
            reply.spoken.append(item)
    finally:
        producer.cancel()
        await asyncio.wait({producer}, timeout=PRODUCER_STOP_S)


def transfer_allowed(entries: Sequence[str], destination: str) -> bool:
    """Whether an agent with ``transfers: entries`` may transfer to ``destination``, as far as the worker
    can tell: a pattern matches it whole.

    The worker does not know the routes nor the directory, so it lets the controller decide (which checks
    every transfer in any case, controller.calls.transfers) when the agent has no entries (the default:
    the directory's users and the routes' destinations) or when one of them names a route
    (``route:<name>``): refusing there would refuse what the controller allows by name.
    """
    if not entries or any(route_entry(entry) is not None for entry in entries):
        return True
    return any(re.fullmatch(pattern, destination) for pattern in entries)


def apologise(stage: str, exc: ProviderError, apology: bytes, metrics: WorkerMetrics) -> bytes:
    """Count and log a provider failure; returns the apology to speak instead."""
    log.warning("the %s provider failed: %s; speaking the apology", stage, exc)
    metrics.provider_failures.labels(stage).inc()
    return apology


def _failed(reply: Reply, exc: ProviderError, stage: str, apology: bytes, metrics: WorkerMetrics) -> bytes:
    reply.failed = True
    return apologise(stage, exc, apology, metrics)


async def _produce(
    agent: Agent, history: Sequence[Message], timings: TurnTimings, queue: asyncio.Queue[_Item]
) -> None:
    splitter = SentenceSplitter()
    started = time.monotonic()
    stream = agent.reply(history)
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                if timings.first_token is None and event.text:
                    timings.first_token = time.monotonic()
                    timings.agent_s = timings.first_token - started
                for sentence in splitter.feed(event.text):
                    queue.put_nowait(sentence)
            else:
                rest = splitter.flush()  # what was said before the action is spoken before it
                if rest:
                    queue.put_nowait(rest)
                queue.put_nowait(event)
        rest = splitter.flush()
        if rest:
            queue.put_nowait(rest)
    except ProviderError as exc:
        queue.put_nowait(exc)  # a sentence cut off by the failure is not spoken
    finally:
        queue.put_nowait(None)
        await close_stream(stream)  # stop the provider's request
