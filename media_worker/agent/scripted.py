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

from media_worker.agent.base import ActionRequest, Agent, AgentEvent, Message, TextDelta
from media_worker.voice.settings import Intent, ScriptedAgentSettings

__all__ = ["ScriptedAgent"]


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
