"""Building each configured agent's pipeline from its settings, with models loaded once per process.

Each provider is made by its catalog (:mod:`media_worker.registry`: the provider module its block names).
Providers are keyed by their settings: two agents with the same ASR (or TTS, or agent) block share one
instance, so Whisper and Piper load once however many agents use them, and each TTS speaks through a
:class:`~media_worker.tts.cache.SpeechCache` (words said on many calls are made once). CPU-bound
inference (Whisper, Piper) runs in one thread pool of ``media_worker.inference_threads``, off the event
loop, so ingest and VAD never wait for it. espeak-ng is the fallback voice for the apology when an
agent's TTS cannot render it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from typing import TypeVar

from media_worker.agent.base import PROVIDERS as AGENT_PROVIDERS
from media_worker.agent.base import Agent
from media_worker.asr.base import ASR
from media_worker.asr.base import PROVIDERS as ASR_PROVIDERS
from media_worker.metrics import WorkerMetrics
from media_worker.registry import Catalog, ProviderSettings
from media_worker.tts.base import PROVIDERS as TTS_PROVIDERS
from media_worker.tts.base import TTS
from media_worker.tts.cache import SpeechCache
from media_worker.voice.base import VoicePipeline
from media_worker.voice.conversation import ConversationPipeline, Providers
from media_worker.voice.settings import AgentSettings

__all__ = ["ProviderRegistry"]

log = logging.getLogger("switchyard.worker.voice")

T = TypeVar("T")


class ProviderRegistry:
    """Creates providers on first use of a configuration and keeps them for the process."""

    def __init__(self, executor: Executor, *, speech_cache_bytes: int = 0) -> None:
        self.executor = executor
        self.speech_cache_bytes = speech_cache_bytes
        self._made: dict[Hashable, object] = {}

    def _once(
        self, catalog: Catalog[T], settings: ProviderSettings, wrap: Callable[[T], T] | None = None
    ) -> T:
        key = (catalog.kind, settings.model_dump_json())
        if key not in self._made:
            made = catalog.make(settings, self.executor)
            self._made[key] = made if wrap is None else wrap(made)
        return self._made[key]  # type: ignore[return-value]

    def asr(self, settings: ProviderSettings) -> ASR:
        """The recogniser of ``settings`` (an ``asr:`` block)."""
        return self._once(ASR_PROVIDERS, settings)

    def tts(self, settings: ProviderSettings) -> TTS:
        """The synthesiser of ``settings`` (a ``tts:`` block)."""
        return self._once(TTS_PROVIDERS, settings, self._cached)

    def _cached(self, tts: TTS) -> TTS:
        if self.speech_cache_bytes == 0:
            return tts
        return SpeechCache(tts, self.speech_cache_bytes)

    def agent(self, settings: ProviderSettings) -> Agent:
        """The agent of ``settings`` (an ``agent:`` block)."""
        return self._once(AGENT_PROVIDERS, settings)

    def pipelines(self, agents: Sequence[AgentSettings], metrics: WorkerMetrics) -> dict[str, VoicePipeline]:
        """One pipeline per configured agent, by name."""
        fallback = self.tts(TTS_PROVIDERS.parse({"provider": "espeak"}))
        made: dict[str, VoicePipeline] = {}
        for settings in agents:
            providers = Providers(
                self.asr(settings.asr), self.agent(settings.agent), self.tts(settings.tts), fallback
            )
            made[settings.name] = ConversationPipeline(settings, providers, metrics)
            log.info(
                "agent %s: asr %s, agent %s, tts %s",
                settings.name,
                settings.asr.provider,
                settings.agent.provider,
                settings.tts.provider,
            )
        return made

    async def aclose(self) -> None:
        """Close every provider (HTTP sessions)."""
        for provider in self._made.values():
            if isinstance(provider, ASR | TTS | Agent):
                await provider.aclose()
