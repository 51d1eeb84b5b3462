"""The text messages of a stream after its metadata, both ways, typed and decoded once.

Controller → worker (``uuid_audio_stream <uuid> send_text <json>``, one word: JSON without spaces):
``playback`` start/stop of the n-th ``streamAudio`` file, a ``dtmf`` digit the caller pressed, ``barge_in``
when the controller broke the playback itself, ``transcript_request`` when a restarted controller adopted
the call (the worker sends its turns again; ones ended while no controller listened would be lost). The
worker decodes them with :func:`parse_control`.

Worker → controller (relayed by FreeSWITCH as ``mod_audio_stream::json``): ``barge_in`` (break the
agent's playback), ``action`` (transfer / hangup / dtmf once the queued speech has played),
``transcript`` (a finished turn, for the feed and the CDR) and ``refused`` (the worker did not send an
action the agent asked for, e.g. a transfer outside its ``transfers``: the controller notes it in the log
and the CDR and acts on nothing in it). ``streamAudio`` goes to FreeSWITCH itself,
which writes the file and fires ``mod_audio_stream::play``. The controller decodes the rest with
:func:`parse_worker_message`: a worker is a trust boundary, so each field is checked by type and bounds
and anything else is ``None`` with the reason (never an exception, never a half-valid message).

Both sides encode with :func:`encode`: compact JSON, no spaces, so it survives ``send_text``.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from switchyard.wire import CLOSE_BAD_DATA, WireError

__all__ = [
    "ACTIONS",
    "ActionRefused",
    "AgentAction",
    "BargeIn",
    "ControlMessage",
    "Dtmf",
    "PlaybackEvent",
    "TranscriptRequest",
    "TurnTranscript",
    "WorkerMessage",
    "encode",
    "parse_control",
    "parse_worker_message",
    "printable_argument",
    "refused",
    "stream_audio_message",
    "to_json",
]

ActionKind = Literal["transfer", "hangup", "dtmf"]
ACTIONS: Final[frozenset[str]] = frozenset({"transfer", "hangup", "dtmf"})
MAX_ARGUMENT: Final = 64  # an extension or DTMF digits; the command builders check the characters
MAX_TEXT: Final = 4000  # one side of a transcript turn
MAX_LATENCIES: Final = 16
REFUSABLE: Final[frozenset[str]] = frozenset({"transfer"})  # what a worker refuses (media_worker.voice.speak)
_REFUSED_ARGUMENT: Final = re.compile(r"[A-Za-z0-9_.+#*@/:?-]{1,64}")
_NOT_PRINTABLE: Final = re.compile(r"[^A-Za-z0-9_.+#*@/:?-]")
_REASON: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_PLAY_FILE = re.compile(r"_(\d+)\.tmp\.[A-Za-z0-9]+$")
_DTMF_DIGITS: Final = "0123456789*#ABCDabcd"


# -- controller → worker ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlaybackEvent:
    """The controller saw PLAYBACK_START/STOP of the n-th ``streamAudio`` file (``index``)."""

    started: bool
    file: str
    index: int | None
    status: str = ""


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A DTMF digit the caller pressed."""

    digit: str


@dataclass(frozen=True, slots=True)
class BargeIn:
    """Playback broken: by the worker (the caller spoke over it) or by the controller (e.g. an API call)."""


@dataclass(frozen=True, slots=True)
class TranscriptRequest:
    """Send every transcript turn of the call again (a restarted controller adopted it)."""


ControlMessage = PlaybackEvent | Dtmf | BargeIn | TranscriptRequest


# -- worker → controller ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AgentAction:
    """The agent asks for ``action`` once its queued speech has played (``argument``: extension, digits)."""

    action: ActionKind
    argument: str = ""


@dataclass(frozen=True, slots=True)
class TurnTranscript:
    """One finished turn: what the caller said, what the agent answered, and the turn's timings."""

    turn: int
    caller: str
    agent: str
    latency_ms: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActionRefused:
    """The worker did not send the agent's ``action`` to ``argument``, for ``reason`` (one word, e.g.
    ``not_in_transfers``). Built with :func:`refused`; the controller only notes it (log, CDR)."""

    action: Literal["transfer"]
    argument: str
    reason: str


WorkerMessage = BargeIn | AgentAction | TurnTranscript | ActionRefused
Message = ControlMessage | WorkerMessage
_TYPES: Final[dict[type[Any], str]] = {
    PlaybackEvent: "playback",
    Dtmf: "dtmf",
    BargeIn: "barge_in",
    TranscriptRequest: "transcript_request",
    AgentAction: "action",
    TurnTranscript: "transcript",
    ActionRefused: "refused",
}


def encode(message: Message) -> str:
    """The message as compact JSON (no spaces: ``send_text`` carries one word)."""
    if isinstance(message, PlaybackEvent):
        body: dict[str, object] = {"type": "playback", "event": "start" if message.started else "stop"}
        body["file"] = message.file
        if not message.started:
            body["status"] = message.status
    else:
        body = {"type": _TYPES[type(message)], **dataclasses.asdict(message)}
        if isinstance(message, AgentAction) and not message.argument:
            del body["argument"]
    return orjson.dumps(body).decode()


def to_json(message: WorkerMessage) -> dict[str, object]:
    """The message as the JSON object it was sent as (for the event feed)."""
    decoded: dict[str, object] = orjson.loads(encode(message))
    return decoded


def stream_audio_message(pcm16k: bytes) -> str:
    """``streamAudio`` with raw 16 kHz L16 (FreeSWITCH writes it to a ``.r16`` file): built as a string,
    the hot path of every answer."""
    audio = base64.b64encode(pcm16k).decode("ascii")
    return (
        '{"type":"streamAudio","data":{"audioDataType":"raw","sampleRate":16000,"audioData":"' + audio + '"}}'
    )


def printable_argument(text: str) -> str:
    """An agent's argument as logs and CDRs may show it: at most 64 of ``A-Z a-z 0-9 _ . + # * @ / : -``,
    any other character as ``?`` (a model's argument is any text), ``?`` when empty."""
    return _NOT_PRINTABLE.sub("?", text[:MAX_ARGUMENT]) or "?"


def refused(action: Literal["transfer"], argument: str, reason: str) -> ActionRefused:
    """The ``refused`` message of an action the worker did not send (``argument`` made printable).

    Raises:
        ValueError: ``reason`` is not one lower-case word of at most 32 characters (``[a-z][a-z0-9_]*``).
    """
    if not _REASON.fullmatch(reason):
        raise ValueError(f"reason {reason!r}: one lower-case word of at most 32 characters")
    return ActionRefused(action, printable_argument(argument), reason)


# -- decoding ------------------------------------------------------------------------------------------
def _object(text: str) -> tuple[dict[str, Any] | None, str]:
    """The text as a JSON object with a string ``type``, or None and why."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, "text frame is not JSON"
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None, "text frame is not a JSON object with a type"
    return value, ""


def parse_control(text: str) -> ControlMessage | None:
    """Decode a controller's text frame; ``None`` for a well-formed message of an unknown type.

    Raises:
        WireError: 1003 when the text is not a JSON object with a string ``type``, or a known type is
        malformed.
    """
    msg, why = _object(text)
    if msg is None:
        raise WireError(CLOSE_BAD_DATA, why)
    kind = msg["type"]
    if kind == "playback":
        event, file = msg.get("event"), msg.get("file")
        if event not in ("start", "stop") or not isinstance(file, str):
            raise WireError(CLOSE_BAD_DATA, "playback: needs event start|stop and file")
        match = _PLAY_FILE.search(file)
        index = int(match.group(1)) if match else None
        return PlaybackEvent(event == "start", file, index, str(msg.get("status", "")))
    if kind == "dtmf":
        digit = msg.get("digit")
        if not isinstance(digit, str) or len(digit) != 1 or digit not in _DTMF_DIGITS:
            raise WireError(CLOSE_BAD_DATA, "dtmf: digit must be one of 0-9 * # A-D")
        return Dtmf(digit.upper())
    if kind == "barge_in":
        return BargeIn()
    if kind == "transcript_request":
        return TranscriptRequest()
    return None


def parse_worker_message(text: str) -> tuple[WorkerMessage | None, str]:
    """Decode a worker's ``::json`` text: the message, or ``None`` and why ('' for an unknown type)."""
    msg, why = _object(text)
    if msg is None:
        return None, why
    kind = msg["type"]
    if kind == "barge_in":
        return BargeIn(), ""
    if kind == "action":
        return _action(msg)
    if kind == "transcript":
        return _transcript(msg)
    if kind == "refused":
        return _refused(msg)
    return None, ""


def _action(msg: Mapping[str, Any]) -> tuple[AgentAction | None, str]:
    action, argument = msg.get("action"), msg.get("argument", "")
    if action not in ACTIONS:
        return None, "action: must be transfer, hangup or dtmf"
    if not isinstance(argument, str) or len(argument) > MAX_ARGUMENT:
        return None, f"action.argument: a string of at most {MAX_ARGUMENT} characters"
    if action != "hangup" and not argument:
        return None, f"action.argument: {action} needs one"
    return AgentAction(action, argument), ""


def _refused(msg: Mapping[str, Any]) -> tuple[ActionRefused | None, str]:
    """An allowlist, as everything from a worker: an unexpected character or length refuses the message."""
    action, argument, reason = msg.get("action"), msg.get("argument"), msg.get("reason")
    if action not in REFUSABLE:
        return None, "refused.action: must be transfer"
    if not isinstance(argument, str) or not _REFUSED_ARGUMENT.fullmatch(argument):
        return None, "refused.argument: 1 to 64 of A-Z a-z 0-9 _ . + # * @ / : ? -"
    if not isinstance(reason, str) or not _REASON.fullmatch(reason):
        return None, "refused.reason: one lower-case word of at most 32 characters"
    return ActionRefused("transfer", argument, reason), ""


def _transcript(msg: Mapping[str, Any]) -> tuple[TurnTranscript | None, str]:
    turn, caller, agent = msg.get("turn"), msg.get("caller"), msg.get("agent")
    if not isinstance(turn, int) or isinstance(turn, bool) or not 0 <= turn < 1_000_000:
        return None, "transcript.turn: a whole number from 0"
    if not isinstance(caller, str) or not isinstance(agent, str):
        return None, "transcript.caller/agent: strings"
    if len(caller) > MAX_TEXT or len(agent) > MAX_TEXT:
        return None, f"transcript: a side longer than {MAX_TEXT} characters"
    latency = msg.get("latency_ms", {})
    if not isinstance(latency, dict) or len(latency) > MAX_LATENCIES:
        return None, "transcript.latency_ms: an object of at most 16 timings"
    if not all(_timing(v) for v in latency.values()):
        return None, "transcript.latency_ms: at most 16 finite, non-negative numbers"
    timings = {str(k)[:32]: float(v) for k, v in latency.items()}
    return TurnTranscript(turn, caller, agent, timings), ""


def _timing(value: object) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value) and value >= 0  # type: ignore[arg-type,operator]
