"""An agent's voice pipeline: ASR → agent → TTS for each caller turn, with greeting, reprompts and apology.

Per call, a :class:`ConversationDialog` keeps the history (system prompt, what the agent said, what the
caller said). When the caller pauses, ``prepare`` starts transcribing at once; if the pause turns out to be
the end of the turn, ``respond`` finds the transcript ready (the end-of-turn silence window hides the ASR
time). After each answer a transcript message (caller text, agent text, latencies) goes to the controller.
Silence for the agent's timeout → the reprompt; after ``max_reprompts`` of them, the goodbye and a hangup.
Any provider failure → the apology, rendered once when the pipeline starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence

from media_worker.agent.base import Agent, Message
from media_worker.asr.base import ASR, Transcript
from media_worker.errors import ProviderError
from media_worker.metrics import WorkerMetrics
from media_worker.tts.base import TTS
from media_worker.voice.base import Dialog, Output, Utterance, VoicePipeline
from media_worker.voice.latency import TurnTimings
from media_worker.voice.settings import AgentSettings
from media_worker.voice.speak import Reply, apologise, speak_text, stream_reply
from switchyard.messages import AgentAction, TurnTranscript, encode
from switchyard.wire import StreamMetadata

__all__ = ["ConversationDialog", "ConversationPipeline", "Providers"]

log = logging.getLogger("switchyard.worker.voice")

KEPT_TURNS = 100  # transcript messages kept per call for a restarted controller
PREPARED_STOP_S = 1.0  # bound on waiting for a stale eager transcription to stop


class Providers:
    """The three providers of an agent plus the fallback TTS for the apology."""

    def __init__(self, asr: ASR, agent: Agent, tts: TTS, fallback_tts: TTS) -> None:
        self.asr, self.agent, self.tts, self.fallback_tts = asr, agent, tts, fallback_tts


class ConversationPipeline(VoicePipeline):
    """The pipeline of one configured agent."""

    def __init__(self, settings: AgentSettings, providers: Providers, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.providers = providers
        self.metrics = metrics
        self.apology = b""

    async def start(self) -> None:
        """Render the apology with the agent's TTS, else with the fallback TTS."""
        for tts in (self.providers.tts, self.providers.fallback_tts):
            try:
                self.apology = b"".join([c async for c in speak_text(self.settings.apology, tts, None)])
                return
            except ProviderError as exc:
                log.warning("agent %s: apology not rendered by %s: %s", self.settings.name, tts.name, exc)
        log.error("agent %s: no TTS could render the apology", self.settings.name)

    def open(self, call: StreamMetadata) -> Dialog:
        """A new call's dialog."""
        return ConversationDialog(self, call)


class ConversationDialog(Dialog):
    """One call's conversation."""

    def __init__(self, pipeline: ConversationPipeline, call: StreamMetadata) -> None:
        self._p = pipeline
        s = pipeline.settings
        self.call = call
        self.barge_in = s.barge_in
        self.vad_profile = s.vad_profile
        self.silence_timeout_s = s.silence.timeout_s
        self.history: list[Message] = [Message("system", s.system_prompt)]
        self.turn = 0
        self.reprompts = 0
        self._prepared: tuple[int, int, asyncio.Task[tuple[Transcript, float]]] | None = None
        self._timings: TurnTimings | None = None  # of the answer whose first chunk is awaited
        self._transcripts: deque[str] = deque(maxlen=KEPT_TURNS)

    # -- the session's hooks -----------------------------------------------------------------------
    def greeting(self) -> AsyncIterator[Output] | None:
        """The agent's greeting (None when the settings have none)."""
        text = self._p.settings.greeting
        return None if not text else self._say(text)

    def prepare(self, utterance: Utterance) -> None:
        """Start transcribing the caller's words so far (reused if the turn ends right here)."""
        self._drop_prepared()
        task = asyncio.create_task(self._transcribe(utterance), name=f"asr {self.call.call_id}")
        self._prepared = (utterance.start_ms, utterance.end_ms, task)

    async def respond(self, utterance: Utterance) -> AsyncIterator[Output]:
        """Transcribe, ask the agent, speak its answer sentence by sentence; then the transcript."""
        timings = TurnTimings(utterance.ended_at, utterance.decided_at)
        try:
            transcript, timings.asr_start = await self._take_transcript(utterance)
        except ProviderError as exc:
            yield apologise("asr", exc, self._p.apology, self._p.metrics)
            return
        timings.asr_final = time.monotonic()
        said = transcript.text.strip()
        if not said:
            log.info("call %s: nothing recognised in the turn; no answer", self.call.call_id)
            return
        self.reprompts = 0
        self.turn += 1
        self.history.append(Message("user", said))
        self._timings = timings
        reply = Reply()
        async for out in stream_reply(
            self._p.providers.agent,
            self.history,
            tts=self._p.providers.tts,
            voice=self._p.settings.voice,
            timings=timings,
            reply=reply,
            apology=self._p.apology,
            metrics=self._p.metrics,
            transfers=self._p.settings.transfers,
        ):
            yield out
        if reply.text:
            self.history.append(Message("assistant", reply.text))
        message = encode(TurnTranscript(self.turn, said, reply.text, timings.since_end_ms()))
        self._transcripts.append(message)
        yield message

    def silence(self) -> AsyncIterator[Output] | None:
        """The reprompt, or after ``max_reprompts`` the goodbye and a hangup."""
        s = self._p.settings.silence
        if self.reprompts >= s.max_reprompts:
            return self._say(s.goodbye, hangup=True)
        self.reprompts += 1
        return self._say(s.reprompt)

    def transcripts(self) -> Sequence[str]:
        """The last ``KEPT_TURNS`` transcript messages, as sent."""
        return tuple(self._transcripts)

    def first_audio_sent(self, at: float) -> None:
        """Close the latency account of the current answer."""
        timings, self._timings = self._timings, None
        if timings is not None:
            timings.first_sent = at
            timings.report(self._p.metrics, self.call.call_id, self.turn)

    async def aclose(self) -> None:
        """Stop an eager transcription still running."""
        self._drop_prepared()

    # -- internals --------------------------------------------------------------------------------
    async def _say(self, text: str, hangup: bool = False) -> AsyncIterator[Output]:
        try:
            async for pcm in speak_text(text, self._p.providers.tts, self._p.settings.voice):
                yield pcm
        except ProviderError as exc:
            yield apologise("tts", exc, self._p.apology, self._p.metrics)
        self.history.append(Message("assistant", text))
        if hangup:
            yield encode(AgentAction("hangup"))

    async def _transcribe(self, utterance: Utterance) -> tuple[Transcript, float]:
        started = time.monotonic()
        transcript = await self._p.providers.asr.transcribe(utterance.audio, self._p.settings.language)
        return transcript, started

    async def _take_transcript(self, utterance: Utterance) -> tuple[Transcript, float]:
        prepared = self._prepared
        if prepared is not None and prepared[:2] == (utterance.start_ms, utterance.end_ms):
            self._prepared = None
            return await prepared[2]
        self._drop_prepared()  # the caller spoke on after the pause: that transcript is stale
        return await self._transcribe(utterance)

    def _drop_prepared(self) -> None:
        if self._prepared is not None:
            self._prepared[2].cancel()
            self._prepared = None
