"""Latency accounting of one turn, from the end of the caller's speech (VAD) to the first chunk sent.

Stamps (monotonic seconds): speech end → turn decided (speech end + the end-of-turn silence window) →
ASR final → first agent token → first TTS audio → first chunk sent. ASR may start before the turn is
decided (at the caller's pause), so only the part of it after the decision is on the critical path.
*Pipeline overhead* is everything on the path after the decision that is not model compute (queues, the
event loop, resampling, base64, the socket): (first sent - decided) - ASR compute after the decision -
agent time to first token - TTS time to first audio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from media_worker.metrics import COMPUTE_STAGES, TURN_STAGES, WorkerMetrics

__all__ = ["TurnTimings"]

log = logging.getLogger("switchyard.worker.latency")


@dataclass(slots=True)
class TurnTimings:
    """The stamps and compute times of one turn (None: not reached)."""

    speech_end: float
    decided: float
    asr_start: float | None = None
    asr_final: float | None = None
    first_token: float | None = None
    first_audio: float | None = None
    first_sent: float | None = None
    agent_s: float = 0.0
    tts_s: float = 0.0

    @property
    def asr_s(self) -> float:
        """ASR compute time (0 before it finished)."""
        if self.asr_start is None or self.asr_final is None:
            return 0.0
        return self.asr_final - self.asr_start

    @property
    def asr_after_decision_s(self) -> float:
        """The part of the ASR compute that ran after the turn was decided."""
        if self.asr_start is None or self.asr_final is None:
            return 0.0
        return max(0.0, self.asr_final - max(self.decided, self.asr_start))

    def since_end_ms(self) -> dict[str, float]:
        """Each stamp reached, in ms after the end of speech."""
        times = (self.decided, self.asr_final, self.first_token, self.first_audio, self.first_sent)
        stamps = dict(zip(TURN_STAGES, times, strict=True))
        return {k: round((v - self.speech_end) * 1000, 1) for k, v in stamps.items() if v is not None}

    @property
    def overhead_s(self) -> float | None:
        """Decided → first chunk sent, minus the compute on that path; None before the first chunk."""
        if self.first_sent is None:
            return None
        return self.first_sent - self.decided - self.asr_after_decision_s - self.agent_s - self.tts_s

    def report(self, metrics: WorkerMetrics, call_id: str, turn: int) -> None:
        """Export the turn's figures and log them (once its first chunk was sent)."""
        since_end = self.since_end_ms()
        for stage, ms in since_end.items():
            metrics.turn_latency.labels(stage).observe(ms / 1000)
        for stage, seconds in zip(COMPUTE_STAGES, (self.asr_s, self.agent_s, self.tts_s), strict=True):
            metrics.stage_seconds.labels(stage).observe(seconds)
        overhead = self.overhead_s
        if overhead is not None:
            metrics.overhead_seconds.observe(max(0.0, overhead))
        figures = {**since_end, "asr_ms": self.asr_s * 1000, "agent_ms": self.agent_s * 1000}
        figures["tts_ms"] = self.tts_s * 1000
        if overhead is not None:
            figures["overhead_ms"] = overhead * 1000
        metrics.recent_turns.append(figures)
        log.info(
            "call %s turn %d: %s; asr %.0f ms, agent %.0f ms, tts %.0f ms, overhead %s ms",
            call_id,
            turn,
            " ".join(f"{k}={v:.0f}" for k, v in since_end.items()),
            self.asr_s * 1000,
            self.agent_s * 1000,
            self.tts_s * 1000,
            "-" if overhead is None else f"{overhead * 1000:.0f}",
        )
