"""Janus 1.1 configuration (``janus/conf``) rendered from ``settings.janus``.

The files are libconfig (``.jcfg``): Janus parses them with libconfig (``src/config.c``, ``config_read``).
Option names follow the samples Janus ships (``conf/*.jcfg.sample.in``, installed by Debian as
``/etc/janus/*.jcfg``) and the code that reads them (``src/janus.c``, ``src/transports/janus_http.c``,
``janus_websockets.c``, ``src/plugins/janus_sip.c``, ``src/events/janus_sampleevh.c``, tag v1.1.2).

What is rendered:

* ``janus.jcfg``: Admin API secret, token auth (tokens are added by the controller through the Admin API,
  so no ``token_auth_secret``), no ``api_secret``, logs on stdout; STUN and TURN only when configured;
  every plugin but the SIP plugin, every transport but HTTP and WebSockets, every event handler but the
  sample HTTP one, and every logger disabled (by file name: Janus compares the ``disable`` entries with the
  ``.so`` names in its folders).
* ``janus.transport.http.jcfg`` / ``janus.transport.websockets.jcfg``: the Janus API over HTTP on
  ``listen_ip`` only and over a WebSocket: plain on ``ws_ip`` (default ``listen_ip``), and with
  ``janus.tls`` secure (WSS) on ``tls.ip`` with the transport's own ``certificates`` (``cert_pem``,
  ``cert_key``, a TLS 1.2 AEAD cipher list: ``switchyard.tls.AEAD_CIPHERS``), the plain one then off unless
  ``tls.plain_ws``; the Admin API over plain HTTP on ``admin_ip`` only. The core's ``certificates`` (DTLS)
  stay empty: Janus makes its own, and browsers check DTLS by the SDP's fingerprint, not by a CA.
* ``janus.plugin.sip.jcfg``: the SIP plugin towards FreeSWITCH.
* ``janus.eventhandler.sampleevh.jcfg``: events POSTed to the controller with basic auth.

RTP ports: the range ``janus.rtp_start``-``janus.rtp_end`` is split in two. The lower half is the core's
``rtp_port_range`` (the WebRTC side: one port per PeerConnection, bundle and rtcp-mux); the upper half is
the SIP plugin's (its plain RTP/RTCP pairs towards FreeSWITCH). The two allocators never compete for a port
and a firewall can open only the WebRTC half to the public.

Errors: ``SettingsError`` whose message starts with the field path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

import jinja2

from controller.janus.settings import JanusSettings
from controller.render import template_environment
from controller.settings import Settings, SettingsError
from switchyard.tls import AEAD_CIPHERS

__all__ = [
    "EVENT_HANDLERS",
    "EVENT_TYPES",
    "KEPT_EVENT_HANDLER",
    "KEPT_PLUGIN",
    "KEPT_TRANSPORTS",
    "LOGGERS",
    "PLUGINS",
    "SIP_USER_AGENT",
    "TRANSPORTS",
    "libconfig_string",
    "libconfig_value",
    "render_janus",
]

# The shared objects of Janus 1.1.2 (upstream's full set; Debian's `janus` package installs all of them in
# /usr/lib/<arch>/janus/{plugins,transports,events,loggers}).
PLUGINS: Final = tuple(
    f"libjanus_{name}.so"
    for name in (
        "audiobridge",
        "duktape",
        "echotest",
        "lua",
        "nosip",
        "recordplay",
        "sip",
        "streaming",
        "textroom",
        "videocall",
        "videoroom",
        "voicemail",
    )
)
TRANSPORTS: Final = tuple(
    f"libjanus_{name}.so" for name in ("http", "mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets")
)
EVENT_HANDLERS: Final = tuple(
    f"libjanus_{name}.so"
    for name in ("gelfevh", "mqttevh", "nanomsgevh", "rabbitmqevh", "sampleevh", "wsevh")
)
LOGGERS: Final = ("libjanus_jsonlog.so",)
KEPT_PLUGIN: Final = "libjanus_sip.so"
KEPT_TRANSPORTS: Final = ("libjanus_http.so", "libjanus_websockets.so")
KEPT_EVENT_HANDLER: Final = "libjanus_sampleevh.so"

# The sample handler's event mask (labels from src/events.c): session and handle life, ICE/DTLS state
# (webrtc), media state and statistics, the SIP plugin's own events (registered, incomingcall, hangup…) and
# core start/shutdown (how the controller notices a Janus restart). Not jsep (whole SDPs), transports or
# external.
EVENT_TYPES: Final = ("sessions", "handles", "webrtc", "media", "plugins", "core")

# User-Agent of the SIP plugin's requests: FreeSWITCH sees it on WebRTC legs (variable_sip_user_agent), which
# is how the controller tells a browser call from a phone call. A register request may override it.
SIP_USER_AGENT: Final = "Switchyard-Janus-SIP"

# Folders Janus refuses to write recordings/captures into (general.protected_folders; the SIP plugin can
# record on a client's request). The same system folders the shipped janus.jcfg protects.
_PROTECTED_FOLDERS: Final = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/proc",
    "/sbin",
    "/sys",
    "/usr",
    "/var",
)
_MIN_SECRET: Final = 8
_MIN_RTP_PORTS: Final = 20
_FILES: Final = (
    "janus.jcfg",
    "janus.transport.http.jcfg",
    "janus.transport.websockets.jcfg",
    "janus.plugin.sip.jcfg",
    "janus.eventhandler.sampleevh.jcfg",
)

# libconfig's string escapes (lib/scanner.l, v1.5 as in Debian 12): \\ \" \n \r \t \f and \xNN.
_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}


def libconfig_string(text: str) -> str:
    """``text`` as a libconfig string literal (quoted; backslash, quote and control characters escaped).

    Raises:
        ValueError: ``text`` holds a NUL character (libconfig strings are C strings).
    """
    if "\0" in text:
        raise ValueError("contains a NUL character")
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def libconfig_value(value: object) -> str:
    """A scalar (bool, int, str) or an array of strings as libconfig source.

    Raises:
        TypeError: the value has another type.
        ValueError: a string holds a NUL character.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return libconfig_string(value)
    if isinstance(value, tuple | list) and all(isinstance(item, str) for item in value):
        return "[" + ", ".join(libconfig_string(item) for item in value) + "]"
    raise TypeError(f"no libconfig form for {type(value).__name__}")


def _environment(templates: Path | None) -> jinja2.Environment:
    env = template_environment("janus", autoescape=False, root=templates)
    env.filters["lc"] = libconfig_value
    return env


def render_janus(settings: Settings, templates: Path | None = None) -> dict[str, str]:
    """Janus's configuration files: name inside the configs folder → text, from the templates under
    ``templates`` (default: :func:`controller.render.default_templates`).

    Raises:
        SettingsError: Janus is not enabled, or a value cannot be rendered (the message names the field).
        ValueError: there are no templates at ``templates``.
    """
    janus = settings.janus
    if not janus.enabled:
        raise SettingsError("janus.enabled: rendering janus/conf needs janus.enabled true")
    context = _context(janus)
    env = _environment(templates)
    return {name: env.get_template(name + ".j2").render(context) for name in _FILES}


def _context(janus: JanusSettings) -> dict[str, object]:
    ice_range, sip_range = _rtp_ranges(janus)
    _check_listeners(janus)
    return {
        "janus": janus,
        "admin_secret": _secret(_given("janus.admin_secret", janus.admin_secret_file), janus.admin_key),
        "events_secret": (
            _secret(_given("janus.events.password", janus.events.password_file), janus.events.secret)
            if janus.events.enabled
            else ""
        ),
        "turn_password": _turn_password(janus),
        "ice_rtp_range": ice_range,
        "sip_rtp_range": sip_range,
        "disabled_plugins": _others(PLUGINS, {KEPT_PLUGIN}),
        "disabled_transports": _others(TRANSPORTS, set(KEPT_TRANSPORTS)),
        "disabled_event_handlers": _others(EVENT_HANDLERS, {KEPT_EVENT_HANDLER}),
        "disabled_loggers": _others(LOGGERS, set()),
        "event_types": ",".join(EVENT_TYPES),
        "sip_user_agent": SIP_USER_AGENT,
        "protected_folders": _PROTECTED_FOLDERS,
        "tls": _tls_files(janus),
        "tls_ciphers": AEAD_CIPHERS,
    }


def _tls_files(janus: JanusSettings) -> dict[str, str] | None:
    """The WSS certificate and key paths, checked for libconfig."""
    if janus.tls is None:
        return None
    files = {"cert_file": str(janus.tls.cert_file), "key_file": str(janus.tls.key_file)}
    for field, path in files.items():
        _check_text(f"janus.tls.{field}", path)
    return files


def _others(names: Iterable[str], kept: set[str]) -> str:
    return ",".join(name for name in names if name not in kept)


def _given(field: str, path: Path | None) -> str:
    """The field a secret came from: inline, or its ``*_file`` sibling."""
    return field if path is None else f"{field}_file"


def _secret(field: str, read: Callable[[], str]) -> str:
    """A secret checked for libconfig and for strength; ``read`` is the model's reader method."""
    try:
        value = read()
    except ValueError as exc:  # read_secret's message already starts with the *_file field path
        raise SettingsError(str(exc)) from exc
    _check_text(field, value)
    if len(value) < _MIN_SECRET:
        raise SettingsError(f"{field}: at least {_MIN_SECRET} characters")
    return value


def _turn_password(janus: JanusSettings) -> str:
    password = janus.nat.turn_password
    if janus.nat.turn_server is None or password is None:
        return ""
    value = password.get_secret_value()
    _check_text("janus.nat.turn_password", value)
    return value


def _check_text(field: str, value: str) -> None:
    try:
        libconfig_string(value)
    except ValueError as exc:
        raise SettingsError(f"{field}: {exc}") from exc


def _rtp_ranges(janus: JanusSettings) -> tuple[str, str]:
    """The core's (WebRTC) and the SIP plugin's port ranges: the lower and upper half of the RTP range.

    The SIP plugin draws a port in [min, max), rounds an odd one up and binds RTCP on the next port
    (janus_sip.c, janus_sip_allocate_local_ports), so its max is made odd to keep RTCP inside the range.
    """
    if janus.rtp_end - janus.rtp_start + 1 < _MIN_RTP_PORTS:
        raise SettingsError(
            f"janus.rtp_end: the range {janus.rtp_start}-{janus.rtp_end} needs at least {_MIN_RTP_PORTS} "
            "ports (half for WebRTC, half for the SIP plugin)"
        )
    middle = janus.rtp_start + (janus.rtp_end - janus.rtp_start + 1) // 2
    sip_max = janus.rtp_end if janus.rtp_end % 2 else janus.rtp_end - 1
    return f"{janus.rtp_start}-{middle - 1}", f"{middle}-{sip_max}"


def _check_listeners(janus: JanusSettings) -> None:
    for field, port in janus.listener_ports().items():
        if janus.rtp_start <= port <= janus.rtp_end:
            raise SettingsError(
                f"janus.{field}: {port} lies inside the RTP range {janus.rtp_start}-{janus.rtp_end}"
            )
