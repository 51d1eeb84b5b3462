"""The scripted agent: a settings-driven IVR that needs no model and no network.

Intents are tried in their configured order against the caller's lower-cased words: an intent with
``keywords`` matches when every keyword is said (as a whole word, any order); one with ``pattern`` when the
regex is found. The first match answers with its reply and/or its action (transfer to an extension, hang
up, send DTMF); nothing matching → the fallback reply. The default intents (settings) make a small IVR:
pay a bill, opening hours, "human"/"agent" → transfer, "goodbye" → hang up.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Literal

from pydantic import Field, model_validator

from media_worker.agent.base import ActionRequest, Agent, AgentEvent, Message, TextDelta
from media_worker.registry import Provider, ProviderSettings
from switchyard.settings import SettingsModel

__all__ = ["PROVIDER", "Intent", "ScriptedAgent", "ScriptedAgentSettings"]


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


class ScriptedAgentSettings(ProviderSettings):
    """The built-in IVR: intents tried in order; the first match answers, else the fallback."""

    provider: Literal["scripted"] = "scripted"
    intents: tuple[Intent, ...] = Field(default_factory=_default_intents)
    fallback: str = "Sorry, I didn't catch that. You can say pay my bill, opening hours, or ask for a human."


class ScriptedAgent(Agent):
    """Answers by the first intent that matches, else the fallback."""

    name = "scripted"

    def __init__(self, settings: ScriptedAgentSettings) -> None:
        self.settings = settings
        self._patterns = [re.compile(i.pattern) if i.pattern else None for i in settings.intents]

    def match(self, text: str) -> Intent | None:
        """The first intent that ``text`` matches."""
        lowered = text.lower()
        words = set(re.findall(r"[a-z0-9']+", lowered))
        for intent, pattern in zip(self.settings.intents, self._patterns, strict=True):
            if intent.keywords and all(k.lower() in words for k in intent.keywords):
                return intent
            if pattern is not None and pattern.search(lowered):
                return intent
        return None

    async def reply(self, history: Sequence[Message]) -> AsyncIterator[AgentEvent]:
        """The matching intent's reply and action, or the fallback reply."""
        said = next((m.content for m in reversed(history) if m.role == "user"), "")
        intent = self.match(said)
        if intent is None:
            yield TextDelta(self.settings.fallback)
            return
        if intent.reply:
            yield TextDelta(intent.reply)
        if intent.action is not None:
            yield ActionRequest(intent.action, intent.argument)


PROVIDER = Provider(ScriptedAgentSettings, lambda settings, _executor: ScriptedAgent(settings))
