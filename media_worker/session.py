"""One call's stream on the worker: VAD decisions → turns → the voice pipeline → speech back, and barge-in.

The session is the batcher's listener for its call (``on_audio``/``on_window`` run on the event loop
once per tick) and owns two tasks: the *sender*, the only writer of the WebSocket, and the *generation*
of the current answer. A caller who starts speaking while the agent's chunks are queued or playing makes
the session send ``{"type":"barge_in"}`` ahead of anything else, drop the unsent chunks and cancel the
generation (the controller then runs ``uuid_break <uuid> all``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from media_worker.metrics import WorkerMetrics
from media_worker.settings import WorkerSettings
from media_worker.speaking import AgentSpeech
from media_worker.turns import TurnEnded, TurnTaker
from media_worker.vad.batcher import VadStream
from media_worker.vad.detector import SpeechEnded, SpeechStarted
from media_worker.vad.model import RATE
from media_worker.voice.base import Dialog, Output, Utterance, close_stream
from switchyard.messages import (
    BargeIn,
    ControlMessage,
    Dtmf,
    PlaybackEvent,
    TranscriptRequest,
    encode,
    stream_audio_message,
)
from switchyard.tasks import cancel_all
from switchyard.wire import StreamMetadata

__all__ = ["CallSession"]

log = logging.getLogger("switchyard.worker.session")

Send = Callable[[str], Awaitable[None]]


class CallSession:
    """The worker's side of one mod_audio_stream connection (after its metadata)."""

    def __init__(
        self,
        meta: StreamMetadata,
        settings: WorkerSettings,
        dialog: Dialog,
        metrics: WorkerMetrics,
        send: Send,
    ) -> None:
        self.meta = meta
        self._settings = settings
        self._dialog = dialog
        self._metrics = metrics
        self._send = send
        kind = meta.call_type if dialog.vad_profile == "auto" else dialog.vad_profile
        self.turns = TurnTaker(settings.webrtc if kind == "webrtc" else settings.sip)
        self._barge_in_on = settings.barge_in.enabled and dialog.barge_in
        timeout = dialog.silence_timeout_s
        self._silence_samples = None if timeout is None else int(timeout * RATE)
        self._quiet_since: int | None = None  # stream sample since which neither side has spoken
        self.speech = AgentSpeech(settings.barge_in.echo_return_loss_db)
        self.stream = VadStream(meta.sample_rate, self)
        # The latest speech events and turns (for logs and tests); bounded, turns hold their audio.
        self.events: deque[SpeechStarted | SpeechEnded | TurnEnded] = deque(maxlen=64)
        self.dtmf: list[str] = []
        self.barge_ins = 0
        self._chunk_bytes = RATE * settings.chunk_ms // 1000 * 2
        self._outbox: deque[str | bytes] = deque()  # str = text message, bytes = audio to send as a chunk
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._generation: asyncio.Task[None] | None = None
        self._awaiting_first_audio = False  # the current answer's first chunk is not sent yet

    # -- batcher listener ------------------------------------------------------------------------
    def on_audio(self, pcm: bytes) -> None:
        """New 16 kHz L16 audio for the tape."""
        self.turns.audio(pcm)

    def on_window(self, prob: float, level_db: float, end: int) -> None:
        """A VAD decision: speech events, barge-in, end of turn."""
        gate = self.speech.echo_floor_db(end)
        event, turn = self.turns.window(prob, level_db, end, gate)
        if event is not None:
            self.events.append(event)
            if isinstance(event, SpeechStarted):
                self._caller_started(event)
            elif isinstance(event, SpeechEnded) and self.turns.in_turn:
                self._dialog.prepare(self._utterance(self.turns.so_far(event.at), end))
        if turn is not None:
            self.events.append(turn)
            self._turn_ended(turn, end)
        self._check_silence(end)

    def _check_silence(self, now: int) -> None:
        """Reprompt when neither side has spoken for the dialog's silence timeout."""
        busy = (
            self.turns.in_turn
            or self.turns.detector.speaking
            or self.speech.outstanding
            or (self._generation is not None and not self._generation.done())
        )
        if self._silence_samples is None or busy:
            self._quiet_since = None
            return
        if self._quiet_since is None:
            self._quiet_since = now
        elif now - self._quiet_since >= self._silence_samples:
            self._quiet_since = None
            log.info("call %s: caller silent for %.1f s", self.meta.call_id, self._silence_samples / RATE)
            self._generate(self._dialog.silence(), "silence")

    # -- control messages --------------------------------------------------------------------------
    def control(self, message: ControlMessage) -> None:
        """A text frame from the controller (``uuid_audio_stream … send_text``)."""
        if isinstance(message, PlaybackEvent):
            if message.started:
                self.speech.started(message.index)
            else:
                self.speech.stopped(message.index, self.stream.received)
        elif isinstance(message, Dtmf):
            self.dtmf.append(message.digit)
            log.info("call %s: DTMF %s", self.meta.call_id, message.digit)
            if self.speech.outstanding:
                self._barge_in("dtmf")
        elif isinstance(message, BargeIn):
            self.speech.flushed()
            self._cancel_answer()
        elif isinstance(message, TranscriptRequest):
            self._outbox.extend(self._dialog.transcripts())
            self._wake.set()

    # -- decisions ---------------------------------------------------------------------------------
    def _caller_started(self, event: SpeechStarted) -> None:
        if not self._barge_in_on:
            return
        if self.speech.outstanding:
            self._barge_in(f"speech at {event.at * 1000 // RATE} ms")
        elif self._generation is not None and not self._generation.done():
            self._cancel_answer()  # the caller goes on talking: the answer in the making is stale

    def _barge_in(self, why: str) -> None:
        log.info("call %s: barge-in (%s)", self.meta.call_id, why)
        self.barge_ins += 1
        self._metrics.barge_ins.inc()
        self._cancel_answer()
        self.speech.flushed()
        self._outbox.appendleft(encode(BargeIn()))
        self._wake.set()

    def _cancel_answer(self) -> None:
        self._awaiting_first_audio = False
        if self._generation is not None:
            self._generation.cancel()
            self._generation = None
        # Unsent audio goes; text (e.g. a barge_in not yet out) stays.
        kept = [m for m in self._outbox if isinstance(m, str)]
        self._outbox.clear()
        self._outbox.extend(kept)

    def _utterance(self, turn: TurnEnded, now: int) -> Utterance:
        decided = time.monotonic()
        return Utterance(
            self.meta,
            turn.audio,
            turn.start * 1000 // RATE,
            turn.end * 1000 // RATE,
            turn.cut,
            ended_at=decided - max(0, now - turn.end) / RATE,
            decided_at=decided,
        )

    def _turn_ended(self, turn: TurnEnded, now: int) -> None:
        self._metrics.turns.labels(self.meta.call_type).inc()
        log.info(
            "call %s: turn %d-%d ms%s",
            self.meta.call_id,
            turn.start * 1000 // RATE,
            turn.end * 1000 // RATE,
            " (cut)" if turn.cut else "",
        )
        self._generate(self._dialog.respond(self._utterance(turn, now)), "turn")

    def _generate(self, outputs: AsyncIterator[Output] | None, what: str) -> None:
        """Run one generation of the dialog (replacing any in progress)."""
        self._cancel_answer()
        if outputs is not None:
            self._awaiting_first_audio = what == "turn"
            name = f"{what} {self.meta.call_id}"
            self._generation = asyncio.create_task(self._answer(outputs), name=name)

    async def _answer(self, outputs: AsyncIterator[Output]) -> None:
        try:
            async for out in outputs:
                if isinstance(out, str):
                    self._outbox.append(out)
                else:
                    for start in range(0, len(out) - len(out) % 2, self._chunk_bytes):
                        self._outbox.append(out[start : start + self._chunk_bytes])
                self._wake.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: the voice pipeline failed", self.meta.call_id)
        finally:
            await close_stream(outputs)  # stop the work behind it (LLM, TTS) at once

    # -- sending -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the sender (once the stream is accepted) and the greeting."""
        self._sender = asyncio.create_task(self._send_loop(), name=f"send {self.meta.call_id}")
        self._generate(self._dialog.greeting(), "greeting")

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                item = self._outbox.popleft()
                if isinstance(item, bytes):
                    self.speech.chunk_sent(item)  # FreeSWITCH numbers the files in the order it gets them
                    text = stream_audio_message(item)
                    if self._awaiting_first_audio:
                        self._awaiting_first_audio = False
                        self._dialog.first_audio_sent(time.monotonic())
                else:
                    text = item
                try:
                    await self._send(text)
                except ConnectionError:
                    return  # the socket is gone; the handler ends the session
                self._metrics.bytes_out.inc(len(text))

    async def aclose(self) -> None:
        """Stop the generation and the sender (the socket is closing)."""
        await cancel_all(t for t in (self._generation, self._sender) if t is not None)
        await self._dialog.aclose()
