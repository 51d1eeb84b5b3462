"""Reading FreeSWITCH event headers into channel fields, on the hot path of every event.

Everything here reads the plain dict behind ``EventHeaders`` (see ``raw_headers``) and tolerates missing or
non-string values (JSON events carry arrays for some variables): a missing header reads as '' or 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from controller.calls.channel import Channel, ChannelState
from controller.freeswitch.events import AudioStreamEvent, EventHeaders, header_int
from controller.freeswitch.protocol import ProtocolError

__all__ = [
    "MEDIA_VARIABLES",
    "SIP_VARIABLES",
    "close_info",
    "derive_state",
    "hangup_cause",
    "header_int",
    "header_str",
    "raw_headers",
    "read_profile",
    "read_variables",
]

SIP_VARIABLES: Final[tuple[tuple[str, str], ...]] = (
    ("variable_sip_user_agent", "sip_user_agent"),
    ("variable_sip_from_host", "sip_from_host"),
    ("variable_sip_from_user", "sip_from_user"),
    ("variable_sip_to_user", "sip_to_user"),
    ("variable_sip_req_host", "sip_req_host"),
    ("variable_sip_network_ip", "sip_network_ip"),
    ("variable_sip_call_id", "sip_call_id"),  # links a leg to its Janus SIP plugin handle (janus/link.py)
    ("variable_sip_auth_username", "sip_auth_username"),  # the digest user: scopes a browser's feed (feed.py)
)
"""(event header, key in ``Channel.variables``) fixed by the INVITE: read when the channel appears, at
CHANNEL_PARK and at CHANNEL_ANSWER."""

MEDIA_VARIABLES: Final[tuple[tuple[str, str], ...]] = (
    ("Channel-Read-Codec-Name", "read_codec"),
    ("Channel-Read-Codec-Rate", "read_rate"),
    ("variable_rtp_use_codec_ptime", "ptime"),
)
"""(event header, key in ``Channel.variables``) that can change mid-call, read from every channel event: the
ptime was 20 at CHANNEL_ANSWER and 30 a moment later in esl_inbound_session.txt SESSION 2. Everything else
the router may need stays in ``Channel.headers``."""


def raw_headers(headers: Mapping[str, str]) -> Mapping[str, Any]:
    """The dict behind an ``EventHeaders`` view (``EventHeaders.raw``), for hot-path lookups.

    Values are strings except JSON arrays, which no header read here carries; callers that need a string
    check it.
    """
    return headers.raw if isinstance(headers, EventHeaders) else headers


_BY_ANSWER_STATE: Final = {
    "early": ChannelState.EARLY,
    "answered": ChannelState.ANSWERED,
    "hangup": ChannelState.HANGUP,
}


def derive_state(answer_state: str, call_state: str) -> ChannelState:
    """The state ``Answer-State`` implies; ``ringing`` while ``Channel-Call-State`` is DOWN is still NEW."""
    state = _BY_ANSWER_STATE.get(answer_state)
    if state is not None:
        return state
    if answer_state == "ringing" and call_state != "DOWN":
        return ChannelState.RINGING
    return ChannelState.NEW


def header_str(raw: Mapping[str, Any], name: str) -> str:
    """A header as a string ('' when absent or not a string)."""
    value = raw.get(name)
    return value if type(value) is str else ""


def hangup_cause(raw: Mapping[str, Any]) -> str:
    """``Hangup-Cause``, else ``variable_hangup_cause`` (events after the hangup carry only the latter)."""
    return header_str(raw, "Hangup-Cause") or header_str(raw, "variable_hangup_cause")


def read_profile(ch: Channel, raw: Mapping[str, Any]) -> None:
    """Caller-profile fields (Caller-* headers) and SIP variables, read at creation, PARK and ANSWER."""
    read_variables(ch, raw, SIP_VARIABLES)
    ch.caller_id_number = header_str(raw, "Caller-Caller-ID-Number") or ch.caller_id_number
    ch.caller_id_name = header_str(raw, "Caller-Caller-ID-Name") or ch.caller_id_name
    ch.destination_number = header_str(raw, "Caller-Destination-Number") or ch.destination_number
    ch.context = header_str(raw, "Caller-Context") or ch.context


def read_variables(
    ch: Channel, raw: Mapping[str, Any], names: tuple[tuple[str, str], ...] = MEDIA_VARIABLES
) -> list[str] | None:
    """Update the variables ``names``; return the keys that changed (None when none did)."""
    variables = ch.variables
    changed: list[str] | None = None
    for header, key in names:
        value = raw.get(header)
        if value is not None and type(value) is str and variables.get(key) != value:
            variables[key] = value
            if changed is None:
                changed = [key]
            else:
                changed.append(key)
    return changed


def close_info(event: AudioStreamEvent) -> tuple[int, str]:
    """Code and reason/error of ``::disconnect`` / ``::error`` (``{"message":{"code":N,"reason":…}}``)."""
    try:
        data = event.body_json()
    except ProtocolError:
        return 0, event.body or ""
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        return 0, ""
    code = message.get("code")
    text = message.get("reason", message.get("error", ""))
    return (code if type(code) is int else 0), (text if isinstance(text, str) else str(text))
