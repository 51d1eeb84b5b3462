"""Every FreeSWITCH API command the controller sends, built here from validated arguments.

A builder checks each argument against an allowlist when the ``Command`` is made, so a request, an agent's
message or a settings value can only ever become the command its builder names: no space, newline, brace or
comma reaches FreeSWITCH where it would split an argument, start another ESL command (a newline ends the
command line, mod_event_socket.c), set channel variables (``{…}``), chain dialplan applications (``,`` of an
inline transfer) or run one (``app::arg`` in a playback path, switch_ivr_async.c ``switch_ivr_broadcast``).
``Command`` itself refuses an unknown verb and any argument that is not one printable word.

The commands are mod_commands' ``uuid_*``, ``originate``, ``show``, ``status``, mod_sofia's ``sofia
profile`` and mod_audio_stream's ``uuid_audio_stream`` (ARCHITECTURE.md, "Real-server facts").

Exceptions::

    ValueError
    └── InvalidCommand   an argument is outside its allowlist (``field`` names it)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import orjson

__all__ = [
    "CONTEXT_PATTERN",
    "DTMF_PATTERN",
    "HANGUP_CAUSES",
    "SHOW_CALLS",
    "SHOW_CHANNELS",
    "SHOW_REGISTRATIONS",
    "STATUS",
    "STREAM_URL_PATTERN",
    "VAR_VALUE_PATTERN",
    "Command",
    "InvalidCommand",
    "answer",
    "break_all",
    "bridge",
    "broadcast",
    "buglist",
    "dump",
    "exists",
    "flush_inbound_reg",
    "hold",
    "kill",
    "originate",
    "park",
    "record_start",
    "record_stop_all",
    "send_dtmf",
    "setvars",
    "stream_heartbeat",
    "stream_send_text",
    "stream_start",
    "stream_stop",
    "transfer",
    "transfer_inline",
]

# Q.850 cause names FreeSWITCH knows (switch_channel.c CAUSE_CHART) that make sense for ending a call.
HANGUP_CAUSES: Final = frozenset(
    {
        "UNALLOCATED_NUMBER", "NO_ROUTE_TRANSIT_NET", "NO_ROUTE_DESTINATION", "USER_BUSY",
        "NO_USER_RESPONSE", "NO_ANSWER", "SUBSCRIBER_ABSENT", "CALL_REJECTED", "NUMBER_CHANGED",
        "DESTINATION_OUT_OF_ORDER", "INVALID_NUMBER_FORMAT", "FACILITY_REJECTED", "NORMAL_CLEARING",
        "NORMAL_UNSPECIFIED", "NORMAL_CIRCUIT_CONGESTION", "NETWORK_OUT_OF_ORDER", "NORMAL_TEMPORARY_FAILURE",
        "SWITCH_CONGESTION", "SERVICE_UNAVAILABLE", "INCOMPATIBLE_DESTINATION", "OUTGOING_CALL_BARRED",
        "INCOMING_CALL_BARRED", "BEARERCAPABILITY_NOTAUTH", "RECOVERY_ON_TIMER_EXPIRE", "ORIGINATOR_CANCEL",
        "ALLOTTED_TIMEOUT", "MANAGER_REQUEST", "SYSTEM_SHUTDOWN",
    }
)  # fmt: skip

# Patterns the API's request models share (pydantic ``pattern=``; here always ``fullmatch``).
DTMF_PATTERN: Final = r"^[0-9A-Da-d*#wW]{1,32}$"
"""DTMF digits; ``w`` / ``W`` pause 500 ms / 1 s (switch_channel.c ``switch_channel_queue_dtmf_string``)."""
CONTEXT_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}$"
"""Dialplan contexts, gateways, agent names."""
STREAM_URL_PATTERN: Final = r"^wss?://[A-Za-z0-9_.:\[\]/@%-]+$"
VAR_VALUE_PATTERN: Final = r"^[A-Za-z0-9_.:/@+#*-]{0,128}$"
"""A value inside originate's ``{…}``: no ``,`` (next variable), ``}`` (end) or quote."""

_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EXTENSION: Final = re.compile(r"[A-Za-z0-9_.+#*@-]{1,64}")
_NAME: Final = re.compile(CONTEXT_PATTERN)
_DOMAIN: Final = re.compile(r"[A-Za-z0-9.-]{1,253}")
_DTMF: Final = re.compile(DTMF_PATTERN)
_PLAYABLE: Final = re.compile(r"[A-Za-z0-9_./:%(),;=@+#*!~-]{1,512}")
_STREAM_URL: Final = re.compile(STREAM_URL_PATTERN)
_VAR_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_VAR_VALUE: Final = re.compile(VAR_VALUE_PATTERN)
_APP_ARG: Final = re.compile(r"[A-Za-z0-9_.+#*@/-]{0,128}")
_ADDRESS: Final = re.compile(r"[A-Za-z0-9_.+-]{1,64}@[A-Za-z0-9.-]{1,253}")
_WORD: Final = re.compile(r"[!-~]+")  # printable ASCII, no space
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_MAX_URL, _MAX_TEXT, _MAX_METADATA = 512, 4096, 8192

_VERBS: Final = frozenset(
    {
        "uuid_answer", "uuid_exists", "uuid_kill", "uuid_park", "uuid_hold", "uuid_bridge", "uuid_transfer",
        "uuid_send_dtmf", "uuid_broadcast", "uuid_break", "uuid_record", "uuid_audio_stream", "uuid_setvar",
        "uuid_dump", "uuid_buglist", "uuid_setvar_multi", "originate", "show", "status", "sofia",
    }
)  # fmt: skip
_INLINE_APPS: Final = frozenset({"answer", "echo", "bridge", "conference"})
_RATES: Final = {8000: "8k", 16000: "16k"}
_NO_VARIABLES: Final[Mapping[str, str]] = {}


class InvalidCommand(ValueError):
    """An argument is outside its allowlist; ``field`` names it."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        super().__init__(f"{field}: {str(value)[:80]!r} is not {rule}")
        self.field = field
        self.reason = str(self)


@dataclass(frozen=True, slots=True)
class Command:
    """One API command: a known verb and printable one-word arguments, then an optional ``rest``.

    ``rest`` is a last argument that may hold spaces (FreeSWITCH takes the rest of the line), never a
    control character. ``background`` commands go as ``bgapi`` (their result comes as BACKGROUND_JOB).
    """

    verb: str
    args: tuple[str, ...] = ()
    rest: str = ""
    background: bool = False

    def __post_init__(self) -> None:
        if self.verb not in _VERBS:
            raise InvalidCommand("verb", self.verb, "a command the controller sends")
        for arg in self.args:
            if not _WORD.fullmatch(arg):
                raise InvalidCommand(self.verb, arg, "one printable word")
        if _CONTROL.search(self.rest):
            raise InvalidCommand(self.verb, self.rest, "free of control characters")

    @property
    def line(self) -> str:
        """The command line, as ``api``/``bgapi`` take it."""
        return " ".join((self.verb, *self.args, *((self.rest,) if self.rest else ())))

    def __str__(self) -> str:
        return self.line


def _checked(field: str, value: str, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidCommand(field, value, rule)
    return value


def _uuid(value: str, field: str = "uuid") -> str:
    return _checked(field, value, _UUID, "a canonical UUID")


def _playable(field: str, value: str) -> str:
    _checked(field, value, _PLAYABLE, "a file, tone_stream:// or silence_stream:// without spaces")
    if "::" in value:  # "app::args" runs a dialplan application (switch_ivr_broadcast)
        raise InvalidCommand(field, value, "a file (app::args runs an application)")
    return value


# ---- call control (mod_commands) -------------------------------------------------------------------


def answer(uuid: str) -> Command:
    """``uuid_answer <uuid>``."""
    return Command("uuid_answer", (_uuid(uuid),))


def exists(uuid: str) -> Command:
    """``uuid_exists <uuid>``: ``true`` / ``false`` from the session table itself (not the core database,
    which lags the events: tests/fixtures/live/show_json.txt)."""
    return Command("uuid_exists", (_uuid(uuid),))


def dump(uuid: str) -> Command:
    """``uuid_dump <uuid> json``: the channel's own record as one JSON object of event headers (caller
    profile times in microseconds, ``Answer-State``, every ``variable_*``), read from the session itself."""
    return Command("uuid_dump", (_uuid(uuid), "json"))


def buglist(uuid: str) -> Command:
    """``uuid_buglist <uuid>``: the media bugs on the channel (switch_core_media_bug_enumerate), one
    ``<function>`` each; mod_audio_stream's is ``audio_stream``."""
    return Command("uuid_buglist", (_uuid(uuid),))


def setvars(uuid: str, variables: Mapping[str, str]) -> Command:
    """``uuid_setvar_multi <uuid> <name>=<value>;...`` (mod_commands splits on ``;`` then ``=``)."""
    if not variables:
        raise InvalidCommand("variables", "", "at least one variable")
    text = ";".join(_variable(key, value) for key, value in variables.items())
    return Command("uuid_setvar_multi", (_uuid(uuid), text))


def kill(uuid: str, cause: str = "NORMAL_CLEARING") -> Command:
    """``uuid_kill <uuid> <cause>``."""
    if cause not in HANGUP_CAUSES:
        raise InvalidCommand("cause", cause, "a known hangup cause")
    return Command("uuid_kill", (_uuid(uuid), cause))


def park(uuid: str) -> Command:
    """``uuid_park <uuid>``."""
    return Command("uuid_park", (_uuid(uuid),))


def hold(uuid: str, held: bool = True) -> Command:
    """``uuid_hold <uuid>`` / ``uuid_hold off <uuid>``."""
    return Command("uuid_hold", (_uuid(uuid),) if held else ("off", _uuid(uuid)))


def bridge(a: str, b: str) -> Command:
    """``uuid_bridge <a> <b>``."""
    return Command("uuid_bridge", (_uuid(a), _uuid(b, "other")))


def transfer(uuid: str, destination: str, context: str | None = None) -> Command:
    """``uuid_transfer <uuid> <destination> [XML <context>]`` (without: the leg's own dialplan/context)."""
    args = (_uuid(uuid), _checked("destination", destination, _EXTENSION, "an extension"))
    if context is None:
        return Command("uuid_transfer", args)
    return Command("uuid_transfer", (*args, "XML", _checked("context", context, _NAME, "a context name")))


def transfer_inline(uuid: str, apps: Sequence[tuple[str, str]]) -> Command:
    """``uuid_transfer <uuid> <app[:arg],...> inline``: run the applications instead of the dialplan."""
    parts = []
    for app, arg in apps:
        if app not in _INLINE_APPS:
            raise InvalidCommand("app", app, f"one of {sorted(_INLINE_APPS)}")
        _checked(app, arg, _APP_ARG, "an application argument without , : or spaces")
        parts.append(f"{app}:{arg}" if arg else app)
    if not parts:
        raise InvalidCommand("apps", "", "at least one application")
    return Command("uuid_transfer", (_uuid(uuid), ",".join(parts), "inline"))


def send_dtmf(uuid: str, digits: str) -> Command:
    """``uuid_send_dtmf <uuid> <digits>``."""
    return Command("uuid_send_dtmf", (_uuid(uuid), _checked("digits", digits, _DTMF, "DTMF digits")))


def broadcast(uuid: str, file: str) -> Command:
    """``uuid_broadcast <uuid> <file> aleg``: queued behind what the leg is playing."""
    return Command("uuid_broadcast", (_uuid(uuid), _playable("file", file), "aleg"))


def break_all(uuid: str) -> Command:
    """``uuid_break <uuid> all``: stop the current file and drop the queued ones."""
    return Command("uuid_break", (_uuid(uuid), "all"))


def record_start(uuid: str, path: str) -> Command:
    """``uuid_record <uuid> start <path>``."""
    return Command("uuid_record", (_uuid(uuid), "start", _playable("path", path)))


def record_stop_all(uuid: str) -> Command:
    """``uuid_record <uuid> stop all``."""
    return Command("uuid_record", (_uuid(uuid), "stop", "all"))


# ---- mod_audio_stream ------------------------------------------------------------------------------


def stream_start(uuid: str, url: str, rate: int, metadata: str) -> Command:
    """``uuid_audio_stream <uuid> start <url> mono <8k|16k> <metadata>`` (metadata: a JSON object)."""
    if len(url) > _MAX_URL:
        raise InvalidCommand("url", url, f"at most {_MAX_URL} characters")
    _checked("url", url, _STREAM_URL, "a ws:// or wss:// URL")
    if rate not in _RATES:
        raise InvalidCommand("rate", rate, "8000 or 16000")
    if len(metadata) > _MAX_METADATA or not isinstance(_json(metadata), dict):
        raise InvalidCommand("metadata", metadata, f"a JSON object of at most {_MAX_METADATA} characters")
    return Command("uuid_audio_stream", (_uuid(uuid), "start", url, "mono", _RATES[rate]), metadata)


def stream_heartbeat(uuid: str, seconds: int) -> Command:
    """``uuid_setvar <uuid> STREAM_HEART_BEAT <seconds>``: the next ``uuid_audio_stream … start`` pings
    every ``seconds`` (audio_streamer_glue.cpp reads it at start as a whole number; unset, the interval is
    uninitialised, so always set it)."""
    if not 1 <= seconds <= 3600:
        raise InvalidCommand("seconds", seconds, "whole seconds from 1 to 3600")
    return Command("uuid_setvar", (_uuid(uuid), "STREAM_HEART_BEAT", str(seconds)))


def _json(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def stream_stop(uuid: str) -> Command:
    """``uuid_audio_stream <uuid> stop``."""
    return Command("uuid_audio_stream", (_uuid(uuid), "stop"))


def stream_send_text(uuid: str, text: str) -> Command:
    """``uuid_audio_stream <uuid> send_text <text>``: one word (the module sends only the first)."""
    if len(text) > _MAX_TEXT:
        raise InvalidCommand("text", text, f"at most {_MAX_TEXT} characters")
    _checked("text", text, _WORD, "one word of printable ASCII (send_text stops at a space)")
    return Command("uuid_audio_stream", (_uuid(uuid), "send_text", text))


# ---- originate --------------------------------------------------------------------------------------

Target = Literal["user", "extension", "gateway"]

_ORIGINATE_OWN: Final = frozenset(
    {"origination_uuid", "originate_timeout", "origination_caller_id_number", "origination_caller_id_name"}
)
"""Variables the builder sets from its own arguments: ``variables`` may not set them again."""


def originate(
    target: Target,
    destination: str,
    *,
    uuid: str,
    timeout_s: int,
    variables: Mapping[str, str] = _NO_VARIABLES,
    caller_id_number: str = "",
    caller_id_name: str = "",
    tags: Mapping[str, str] = _NO_VARIABLES,
    context: str = "",
    gateway: str = "",
    domain: str | None = None,
) -> Command:
    """``originate {<variables>}<endpoint> &park()`` as bgapi, for the new leg ``uuid``.

    The variables are ``origination_uuid``, ``originate_timeout``, then ``variables``, the caller id ones
    (when given) and ``tags`` (the controller's own, e.g. the agent). The endpoint by target::

        user        user/<destination>[@<domain>]
        extension   loopback/<destination>/<context>
        gateway     sofia/gateway/<gateway>/<destination>
    """
    clash = sorted(_ORIGINATE_OWN & variables.keys())
    if clash:
        raise InvalidCommand("variables", clash[0], "a variable the controller does not set itself")
    if type(timeout_s) is not int or timeout_s < 1:
        raise InvalidCommand("timeout_s", timeout_s, "a whole number of seconds")
    pairs = {"origination_uuid": _uuid(uuid), "originate_timeout": str(timeout_s), **variables}
    if caller_id_number:
        pairs["origination_caller_id_number"] = caller_id_number
    if caller_id_name:
        pairs["origination_caller_id_name"] = caller_id_name
    pairs.update(tags)
    text = ",".join(_variable(key, value) for key, value in pairs.items())
    endpoint = _endpoint(target, destination, context, gateway, domain)
    return Command("originate", (f"{{{text}}}{endpoint}", "&park()"), background=True)


def _endpoint(target: Target, destination: str, context: str, gateway: str, domain: str | None) -> str:
    number = _checked("destination", destination, _EXTENSION, "an extension or number")
    if target == "user":
        return (
            f"user/{number}@{_checked('domain', domain, _DOMAIN, 'a domain')}" if domain else f"user/{number}"
        )
    if target == "gateway":
        return f"sofia/gateway/{_checked('gateway', gateway, _NAME, 'a gateway name')}/{number}"
    if target == "extension":
        return f"loopback/{number}/{_checked('context', context, _NAME, 'a context name')}"
    raise InvalidCommand("target", target, "user, extension or gateway")


def _variable(key: str, value: str) -> str:
    _checked("variables", key, _VAR_NAME, "a variable name")
    return f"{key}={_checked(key, value, _VAR_VALUE, 'a value without , } quotes or spaces')}"


# ---- node state and registrations ------------------------------------------------------------------

STATUS: Final = Command("status")
SHOW_CHANNELS: Final = Command("show", ("channels", "as", "json"))
SHOW_CALLS: Final = Command("show", ("calls", "as", "json"))
SHOW_REGISTRATIONS: Final = Command("show", ("registrations", "as", "json"))


def flush_inbound_reg(address: str, profile: str = "internal") -> Command:
    """``sofia profile <profile> flush_inbound_reg <user>@<domain> reboot`` (mod_sofia.c ``cmd_profile``)."""
    name = _checked("profile", profile, _NAME, "a profile name")
    who = _checked("address", address, _ADDRESS, "a SIP user@domain")
    return Command("sofia", ("profile", name, "flush_inbound_reg", who, "reboot"))
