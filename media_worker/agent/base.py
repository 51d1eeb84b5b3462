"""The agent interface: the conversation so far → the agent's reply, streamed, plus the actions it requests.

An :class:`Agent` is shared by every call of its configuration; the per-call state is the history the
pipeline passes in (system prompt first, the caller's latest words last). ``reply`` yields
:class:`TextDelta` pieces as they are produced (the pipeline cuts them into sentences for TTS) and
:class:`ActionRequest` items (transfer, hang up, send DTMF) that the pipeline hands to the controller after
the words before them were spoken. Closing the iterator (barge-in) must cancel the work behind it.
Failures raise :class:`media_worker.errors.ProviderError` subclasses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from media_worker.registry import Catalog

__all__ = ["PROVIDERS", "ActionRequest", "Agent", "AgentEvent", "Message", "TextDelta"]

Role = Literal["system", "user", "assistant"]
ActionKind = Literal["transfer", "hangup", "dtmf"]


@dataclass(frozen=True, slots=True)
class Message:
    """One entry of the conversation."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of the agent's reply text."""

    text: str


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """Something the agent asks the PBX to do: ``transfer`` (argument: extension), ``hangup``, ``dtmf``
    (argument: digits)."""

    action: ActionKind
    argument: str = ""


AgentEvent = TextDelta | ActionRequest


class Agent(ABC):
    """A conversation agent; one instance per process and configuration."""

    name: str = "agent"

    @abstractmethod
    def reply(self, history: Sequence[Message]) -> AsyncIterator[AgentEvent]:
        """The reply to the last (user) message of ``history``, streamed."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the agent holds (HTTP sessions)."""


PROVIDERS: Catalog[Agent] = Catalog("agent", "media_worker.agent")
"""The agent providers: the modules of ``media_worker/agent/`` with a ``PROVIDER``."""
