"""Building each configured agent's pipeline from its settings, with models loaded once per process.

Providers are keyed by their settings: two agents with the same ASR (or TTS, or agent) block share one
instance, so Whisper and Piper load once however many agents use them. CPU-bound inference (Whisper,
Piper) runs in one thread pool of ``worker.inference_threads``, off the event loop, so ingest and VAD
never wait for it. espeak-ng is the fallback voice for the apology when an agent's TTS cannot render it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from typing import TypeVar

from media_worker.agent.base import Agent
from media_worker.asr.base import ASR
from media_worker.metrics import WorkerMetrics
from media_worker.tts.base import TTS
from media_worker.voice.base import VoicePipeline
from media_worker.voice.conversation import ConversationPipeline, Providers
from media_worker.voice.settings import (
    AgentProviderSettings,
    AgentSettings,
    AsrSettings,
    EspeakTtsSettings,
    OpenAiAgentSettings,
    OpenAiAsrSettings,
    OpenAiTtsSettings,
    PiperTtsSettings,
    ScriptedAgentSettings,
    TtsSettings,
    WhisperAsrSettings,
)

__all__ = ["ProviderRegistry"]

log = logging.getLogger("switchyard.worker.voice")

T = TypeVar("T")


class ProviderRegistry:
    """Creates providers on first use of a configuration and keeps them for the process."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._made: dict[Hashable, object] = {}

    def _once(self, key: Hashable, make: Callable[[], T]) -> T:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]  # type: ignore[return-value]

    def asr(self, settings: AsrSettings) -> ASR:
        """The recogniser of ``settings``."""
        return self._once(("asr", settings.model_dump_json()), lambda: self._make_asr(settings))

    def tts(self, settings: TtsSettings) -> TTS:
        """The synthesiser of ``settings``."""
        return self._once(("tts", settings.model_dump_json()), lambda: self._make_tts(settings))

    def agent(self, settings: AgentProviderSettings) -> Agent:
        """The agent of ``settings``."""
        return self._once(("agent", settings.model_dump_json()), lambda: _make_agent(settings))

    def _make_asr(self, settings: AsrSettings) -> ASR:
        if isinstance(settings, WhisperAsrSettings):
            from media_worker.asr.whisper import WhisperASR  # noqa: PLC0415 - loads CTranslate2

            return WhisperASR(settings, self.executor)
        if isinstance(settings, OpenAiAsrSettings):
            from media_worker.asr.openai import OpenAiASR  # noqa: PLC0415

            return OpenAiASR(settings)
        from media_worker.asr.deepgram import DeepgramASR  # noqa: PLC0415

        return DeepgramASR(settings)

    def _make_tts(self, settings: TtsSettings) -> TTS:
        if isinstance(settings, PiperTtsSettings):
            from media_worker.tts.piper import PiperTTS  # noqa: PLC0415 - loads the voice

            return PiperTTS(settings, self.executor)
        if isinstance(settings, EspeakTtsSettings):
            from media_worker.tts.espeak import EspeakTTS  # noqa: PLC0415

            return EspeakTTS(settings)
        assert isinstance(settings, OpenAiTtsSettings)
        from media_worker.tts.openai import OpenAiTTS  # noqa: PLC0415

        return OpenAiTTS(settings)

    def pipelines(self, agents: Sequence[AgentSettings], metrics: WorkerMetrics) -> dict[str, VoicePipeline]:
        """One pipeline per configured agent, by name."""
        fallback = self.tts(EspeakTtsSettings(provider="espeak"))
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


def _make_agent(settings: AgentProviderSettings) -> Agent:
    if isinstance(settings, ScriptedAgentSettings):
        from media_worker.agent.scripted import ScriptedAgent  # noqa: PLC0415

        return ScriptedAgent(settings)
    assert isinstance(settings, OpenAiAgentSettings)
    from media_worker.agent.openai import OpenAiAgent  # noqa: PLC0415

    return OpenAiAgent(settings)
