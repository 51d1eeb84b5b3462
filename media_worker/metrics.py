"""The worker's Prometheus metrics, in a registry of its own (one per app, so tests build isolated apps).

Besides the exported series the worker keeps the last few thousand frame-to-decision lags in a ring so
``/healthz`` can report p50/p99 now, which the controller's pool and the benchmark read.
"""

from __future__ import annotations

from collections import deque
from typing import get_args

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from switchyard.wire import CallType

__all__ = ["COMPUTE_STAGES", "TURN_STAGES", "WorkerMetrics"]

COMPUTE_STAGES = ("asr", "agent", "tts")
"""The ``stage`` labels of the compute-time histogram and the provider failures."""
TURN_STAGES = ("turn_decided", "asr_final", "first_token", "first_audio", "first_chunk_sent")
"""The ``stage`` labels of the turn latency: stamps after the end of the caller's speech."""

_LAG_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_RUN_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16)
_TURN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0)
_OVERHEAD_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)


class WorkerMetrics:
    """Counters, gauges and histograms of one worker process."""

    def __init__(self, registry: CollectorRegistry | None = None, lag_ring: int = 8192) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.active_streams = Gauge("switchyard_worker_active_streams", "Open audio streams", registry=r)
        self.frames = Counter("switchyard_worker_frames", "Binary audio frames received", registry=r)
        self.bytes_in = Counter("switchyard_worker_bytes_in", "Audio bytes received", registry=r)
        self.bytes_out = Counter("switchyard_worker_bytes_out", "Bytes sent back to FreeSWITCH", registry=r)
        self.dropped_frames = Counter(
            "switchyard_worker_dropped_frames", "Frames discarded because scoring fell behind", registry=r
        )
        self.vad_batch_size = Histogram(
            "switchyard_worker_vad_batch_size", "Windows per model run", buckets=_BATCH_BUCKETS, registry=r
        )
        self.vad_batch_seconds = Histogram(
            "switchyard_worker_vad_batch_seconds",
            "Duration of one model run",
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.vad_lag_seconds = Histogram(
            "switchyard_worker_vad_lag_seconds",
            "From the arrival of the frame completing a window to its decision",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.turns = Counter(
            "switchyard_worker_turns", "Caller turns handed to the agent", ["call_type"], registry=r
        )
        self.barge_ins = Counter(
            "switchyard_worker_barge_ins", "Caller speech that interrupted the agent", registry=r
        )
        self.closed = Counter(
            "switchyard_worker_streams_closed", "Streams ended, by reason", ["reason"], registry=r
        )
        self.turn_latency = Histogram(
            "switchyard_worker_turn_latency_seconds",
            "From the end of the caller's speech to each stage of the answer",
            ["stage"],
            buckets=_TURN_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "switchyard_worker_stage_seconds",
            "Compute time of a turn's stages: asr, agent (to first token), tts (to first audio)",
            ["stage"],
            buckets=_TURN_BUCKETS,
            registry=r,
        )
        self.overhead_seconds = Histogram(
            "switchyard_worker_pipeline_overhead_seconds",
            "Turn decided to first chunk sent, minus the ASR compute after it, agent and TTS compute",
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        self.provider_failures = Counter(
            "switchyard_worker_provider_failures", "Provider errors, by stage", ["stage"], registry=r
        )
        # Known label values start at zero, so dashboards show 0 rather than "no data" before the first turn.
        for stage in COMPUTE_STAGES:
            self.stage_seconds.labels(stage)
            self.provider_failures.labels(stage)
        for stage in TURN_STAGES:
            self.turn_latency.labels(stage)
        for call_type in get_args(CallType):
            self.turns.labels(call_type)
        self.recent_turns: deque[dict[str, float]] = deque(maxlen=256)  # per-turn figures, newest last
        self._lags = np.zeros(lag_ring, dtype=np.float64)
        self._lag_count = 0

    def observe_batch(self, size: int, seconds: float) -> None:
        """One model run (called from the VAD thread; prometheus-client is thread-safe)."""
        self.vad_batch_size.observe(size)
        self.vad_batch_seconds.observe(seconds)

    def observe_lag(self, seconds: float) -> None:
        """Frame-to-decision lag of one window."""
        self.vad_lag_seconds.observe(seconds)
        self._lags[self._lag_count % len(self._lags)] = seconds
        self._lag_count += 1

    def lag_percentiles(self) -> tuple[float, float] | None:
        """(p50, p99) of the recent lags in seconds, None before the first decision."""
        n = min(self._lag_count, len(self._lags))
        if n == 0:
            return None
        p50, p99 = np.percentile(self._lags[:n], [50, 99])
        return float(p50), float(p99)
