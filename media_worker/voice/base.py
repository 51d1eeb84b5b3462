"""The interface between a call's turn-taking and whatever answers the caller.

A :class:`VoicePipeline` exists once per agent configuration; ``open`` gives each call its
:class:`Dialog`, which keeps that call's conversation. The session asks the dialog for a *generation*
(an async iterator of outputs) at three moments: the call starts (``greeting``), the caller finished a turn
(``respond``), the caller said nothing for the agent's silence timeout (``silence``). A generation yields
16 kHz L16 audio (``bytes``, sent as ``streamAudio`` as soon as it is yielded) and text messages for the
controller (``str``: JSON relayed by FreeSWITCH as ``mod_audio_stream::json``: actions, transcripts), in the
order they must arrive. Closing a generation early (barge-in) must stop all work behind it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from switchyard.wire import StreamMetadata

__all__ = ["Dialog", "Output", "Utterance", "VoicePipeline", "close_stream"]

Output = bytes | str  # audio (16 kHz L16) or a JSON text message for the controller


@dataclass(frozen=True, slots=True)
class Utterance:
    """One caller turn: 16 kHz L16 audio and where it lies in the stream (milliseconds).

    ``ended_at`` is the monotonic clock when the caller stopped speaking (VAD), the start of every latency
    the turn accounts for; ``decided_at`` when the end-of-turn silence window had passed.
    """

    call: StreamMetadata
    audio: bytes
    start_ms: int
    end_ms: int
    cut: bool = False  # True when the turn hit max_turn_ms rather than a pause
    ended_at: float = 0.0
    decided_at: float = 0.0


class Dialog(ABC):
    """One call's conversation with its agent."""

    barge_in: bool = True  # the caller may interrupt the agent
    vad_profile: str = "auto"  # "sip", "webrtc" or "auto" (by the call type)
    silence_timeout_s: float | None = None  # None: no reprompts

    def greeting(self) -> AsyncIterator[Output] | None:
        """What the agent says when the call starts (None: nothing)."""
        return None

    @abstractmethod
    def respond(self, utterance: Utterance) -> AsyncIterator[Output]:
        """The agent's answer to a caller turn."""

    def prepare(self, utterance: Utterance) -> None:  # noqa: B027 - optional hook
        """The caller paused (maybe the end of the turn): start work that ``respond`` may reuse."""

    def silence(self) -> AsyncIterator[Output] | None:
        """What the agent says when the caller has been silent for ``silence_timeout_s`` (None: nothing)."""
        return None

    def transcripts(self) -> Sequence[str]:
        """The call's transcript messages so far, as sent (a restarted controller asks for them again)."""
        return ()

    def first_audio_sent(self, at: float) -> None:  # noqa: B027 - optional hook
        """The first audio chunk of the current answer left the worker at monotonic time ``at``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """The call's stream closed."""


class VoicePipeline(ABC):
    """Answers callers with speech; one per agent configuration, shared by its calls."""

    @abstractmethod
    def open(self, call: StreamMetadata) -> Dialog:
        """The dialog of a new call."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare before the first call (e.g. render the apology prompt)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the pipeline holds (models, connections)."""


async def close_stream(stream: AsyncIterator[Any]) -> None:
    """Close a provider's or a dialog's stream early (async generators: stop the work behind it)."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
