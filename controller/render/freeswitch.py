"""FreeSWITCH 1.10 configuration (``freeswitch/conf``) from the settings: a minimal tree, not the vanilla one.

Layout, relative to FreeSWITCH's conf dir. FreeSWITCH reads ``freeswitch.xml``, which names every other file
with its own ``X-PRE-PROCESS include`` line (no globs), so files left in the directory by anything else are
never read::

    freeswitch.xml                    the document: vars, then the configuration, directory, dialplan sections
    vars.xml                          pre-processor variables: domain, codec prefs, hold_music,
                                      recordings_dir, media timeouts (global: every channel reads them)
    autoload_configs/<name>.conf.xml  one <configuration> per module reading one (``CONFIG_FILES``, xml_curl)
    sip_profiles/internal.xml         sofia profile of phones and Janus's SIP plugin (included by sofia.conf)
    sip_profiles/external.xml         sofia profile of the trunks, with their gateways
    directory/switchyard.xml          the SIP users' domain (user_context: the user's dialing class)
    dialplan/switchyard.xml           one context per dialing class (controller.calls.contexts): line
                                      tests answer with a tone, outbound rules bridge (only where the
                                      class may dial the PSTN), routes park, else hangup
    dialplan/public.xml               context public: trunk DIDs → transfer into <calls.context>-inbound

FreeSWITCH facts this relies on (source at tag v1.10.12):

* ``src/switch_xml.c`` ``preprocess()`` works line by line before XML parsing: it replaces ``$${name}`` with
  pre-processor variables (unknown ones with nothing), drops every line holding ``<include>``, ``</include>``
  or ``<?``, and drops any line that mentions ``X-PRE-PROCESS`` without being that directive. Values are
  therefore refused when they hold ``$${``, the directive's name or a line break.
* ``src/switch_channel.c`` ``switch_channel_expand_variables_check()`` runs on condition expressions and
  action data (``mod_dialplan_xml.c``): it expands ``${...}`` and rewrites ``\\\\``, ``\\'`` and ``\\$``.
  Dialplan patterns and channel-variable values holding those are refused.
* ``mod_sofia/sofia.c``: sip-ip/rtp-ip ``0.0.0.0`` is replaced by the guessed address, so it is refused;
  ``parse_gateways()``: ``register`` defaults to true and then needs username and password (without them
  the gateway is skipped), a TLS ``register-transport`` needs a TLS profile (refused here: the external
  profile has no certificates), and without ``proxy`` the gateway's name becomes its host.
* ``mod_event_socket.c`` ``config()``: an empty password becomes ``ClueCon``; both are refused.
* ``mod_xml_curl.c`` ``do_config()``: a ``binding`` takes ``gateway-url`` (``bindings`` attribute: sections),
  ``gateway-credentials`` ``user:password`` (basic auth) and ``timeout`` (seconds). With ``janus.directory``
  browser users come from the controller; for others it says "not found" (see controller/api/directory.py).

Codec strings use ``switch_loadable_module.c`` ``switch_parse_codec_buf()`` syntax: ``NAME@<ms>i``. Without a
rate the default one is taken (48000 for OPUS, 8000 for the rest — G722's RTP clock; ``switch_core.c``
``switch_default_rate()``), so ``OPUS@20i,G722@20i,PCMU@20i,PCMA@20i`` asks 20 ms of each.

Errors: ``SettingsError`` whose message starts with the field path.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from controller.calls.contexts import DialingContexts
from controller.render import template_environment
from controller.render.settings import SipProfileSettings, Trunk
from controller.settings import Settings, SettingsError

__all__ = [
    "CONFIG_FILES", "ESL_ACL", "FILES", "HOLD_MUSIC", "MODULES", "TRUNK_ACL", "XML_CURL_FILE",
    "XML_CURL_MODULE", "render_freeswitch",
]  # fmt: skip

# Modules loaded at start: only what Switchyard uses, and no CDR module (mod_cdr_csv, mod_xml_cdr,
# mod_cdr_sqlite). G722 comes with mod_spandsp; tone_stream:// and silence_stream:// with mod_tone_stream.
MODULES: Final = (
    "mod_console",
    "mod_logfile",
    "mod_event_socket",
    "mod_sofia",
    "mod_loopback",
    "mod_commands",
    "mod_dptools",
    "mod_conference",
    "mod_dialplan_xml",
    "mod_spandsp",
    "mod_opus",
    "mod_sndfile",
    "mod_native_file",
    "mod_tone_stream",
    "mod_audio_stream",
)
# autoload_configs/<name>.conf.xml: the core's (switch, acl, modules) and those of the modules that read one.
CONFIG_FILES: Final = (
    "modules",
    "switch",
    "console",
    "logfile",
    "acl",
    "event_socket",
    "sofia",
    "conference",
    "opus",
    "spandsp",
)
FILES: Final = (
    "freeswitch.xml",
    "vars.xml",
    *(f"autoload_configs/{name}.conf.xml" for name in CONFIG_FILES),
    "sip_profiles/internal.xml",
    "sip_profiles/external.xml",
    "directory/switchyard.xml",
    "dialplan/switchyard.xml",
    "dialplan/public.xml",
)
# Only with janus.directory enabled: FreeSWITCH asks the controller for the browser users.
XML_CURL_MODULE: Final = "mod_xml_curl"
XML_CURL_FILE: Final = "autoload_configs/xml_curl.conf.xml"
ESL_ACL: Final = "switchyard_esl"
TRUNK_ACL: Final = "switchyard_trunks"
# No music-on-hold files are installed (local_stream:// would play nothing): a short 440 Hz beep every 5 s.
HOLD_MUSIC: Final = "tone_stream://%(250,4750,440);loops=-1"
_WELL_KNOWN_ESL_PASSWORD: Final = "ClueCon"

_PREPROCESSED: Final = re.compile(r"\$\$\{|x-pre-process|[\x00-\x1f\x7f]", re.IGNORECASE)
_EXPANDED: Final = re.compile(r"\$\\*\{")  # switch_utils.h switch_string_var_check_const()
_REWRITTEN: Final = re.compile(r"\\[\\'$]")


@dataclass(frozen=True, slots=True)
class _EventSocket:
    listen_ip: str
    port: int
    password: str
    acl: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _XmlCurl:
    url: str
    credentials: str
    timeout_s: int


@dataclass(frozen=True, slots=True)
class _User:
    extension: str
    password: str
    caller_id_name: str
    caller_id_number: str
    context: str


@dataclass(frozen=True, slots=True)
class _Dialing:
    """One rendered context: its callers, and whether it holds line tests and the PSTN rules."""

    name: str
    callers: str
    line_tests: bool
    pstn: bool


@dataclass(frozen=True, slots=True)
class _Gateway:
    name: str
    register: bool
    username: str | None
    password: str | None
    realm: str | None
    from_domain: str | None
    proxy: str
    transport: str


@dataclass(frozen=True, slots=True)
class _Outbound:
    name: str
    expression: str
    caller_id_number: str
    caller_id_name: str
    bridge: str


@dataclass(frozen=True, slots=True)
class _Did:
    name: str
    expression: str
    trunk: str
    destination: str


@dataclass(frozen=True, slots=True)
class _Route:
    name: str
    expression: str


@dataclass(frozen=True, slots=True)
class _LineTest:
    name: str
    expression: str
    tone: str
    max_s: int


def render_freeswitch(settings: Settings, templates: Path | None = None) -> dict[str, str]:
    """FreeSWITCH's configuration files: path relative to its conf dir → text, from the templates under
    ``templates`` (default: :func:`controller.render.default_templates`).

    Raises:
        SettingsError: a value cannot be rendered (the message starts with the field path).
        ValueError: there are no templates at ``templates``.
    """
    context = _context(settings)
    xml_curl = _xml_curl(settings)
    files = FILES
    if xml_curl is not None:
        context |= {
            "modules": _with_xml_curl(MODULES),
            "config_files": (*CONFIG_FILES, "xml_curl"),
            "xml_curl": xml_curl,
        }
        files = (*FILES, XML_CURL_FILE)
    env = template_environment("freeswitch", autoescape=True, root=templates)
    return {name: env.get_template(name + ".j2").render(context) for name in files}


def _with_xml_curl(modules: tuple[str, ...]) -> tuple[str, ...]:
    """``modules`` with mod_xml_curl right before mod_sofia, so its binding exists before any lookup."""
    at = modules.index("mod_sofia")
    return (*modules[:at], XML_CURL_MODULE, *modules[at:])


def _xml_curl(settings: Settings) -> _XmlCurl | None:
    janus = settings.janus
    directory = janus.directory
    if not (janus.enabled and directory.enabled):
        return None
    password = _secret("janus.directory.password", directory.secret)
    return _XmlCurl(
        url=_literal("janus.directory.url", directory.url),
        credentials=f"{directory.user}:{password}",
        timeout_s=directory.timeout_s,
    )


def _context(settings: Settings) -> dict[str, object]:
    sip = settings.sip
    _literal("sip.domain", sip.domain)
    if settings.calls.sip_domain not in (None, sip.domain):
        raise SettingsError(
            f"calls.sip_domain: {settings.calls.sip_domain!r} differs from sip.domain {sip.domain!r}, "
            "the only domain of the rendered directory"
        )
    _unique_dids(settings.trunks)
    contexts = DialingContexts(settings.calls.context)
    return {
        "modules": MODULES,
        "config_files": CONFIG_FILES,
        "domain": sip.domain,
        "dialplan_context": settings.calls.context,
        "inbound_context": contexts.inbound,
        "contexts": (
            _Dialing(contexts.local, "Desk users without outbound, API calls", True, False),
            _Dialing(contexts.pstn, "Desk users with outbound", True, True),
            _Dialing(contexts.browser, "Browser users", True, settings.calls.browser_outbound),
            _Dialing(contexts.agent, "Agent transfers (never a trunk)", False, False),
            _Dialing(contexts.inbound, "Trunk DIDs", True, False),
        ),
        "codecs": ",".join(f"{codec}@{sip.ptime_ms}i" for codec in sip.codecs),
        "hold_music": HOLD_MUSIC,
        "recordings_dir": settings.calls.recordings_dir,
        "media_timeout_ms": round(sip.media_timeout_s * 1000),
        "media_hold_timeout_ms": round(sip.media_hold_timeout_s * 1000),
        "rtp_start": sip.rtp_start,
        "rtp_end": sip.rtp_end,
        "max_sessions": sip.max_sessions,
        "sessions_per_second": sip.sessions_per_second,
        "user_agent": sip.user_agent,
        "internal": _profile("sip.internal", sip.internal),
        "external": _profile("sip.external", sip.external),
        "esl": _event_socket(settings),
        "esl_acl": ESL_ACL,
        "trunk_acl": TRUNK_ACL,
        "trunk_cidrs": tuple(
            dict.fromkeys(cidr for trunk in settings.trunks for cidr in trunk.inbound_cidrs)
        ),
        "gateways": tuple(_gateway(trunk) for trunk in settings.trunks),
        "users": tuple(_user(settings, index) for index in range(len(settings.users))),
        "outbound": tuple(rule for trunk in settings.trunks for rule in _outbound(trunk)),
        "line_tests": tuple(
            _LineTest(
                f"line-test-{test.number}",
                f"^{test.number}$",
                f"tone_stream://%(1000,0,{test.tone_hz});loops=-1",
                test.max_s,
            )
            for test in settings.line_tests
        ),
        "routes": tuple(
            _Route(f"route-{index}", _expression(f"calls.routes.{index}.destination", route.destination))
            for index, route in enumerate(settings.calls.routes)
        ),
        "dids": tuple(_dids(settings.trunks)),
        "unknown_cause": settings.calls.unknown_cause,
    }


def _literal(field: str, value: str) -> str:
    """``value`` unchanged, if FreeSWITCH's pre-processor will leave it alone."""
    if _PREPROCESSED.search(value):
        raise SettingsError(
            f"{field}: '$${{', 'X-PRE-PROCESS' and control characters are not allowed "
            "(FreeSWITCH's configuration pre-processor would rewrite or drop the line)"
        )
    return value


def _text(field: str, value: str) -> str:
    """A value FreeSWITCH also expands at run time (channel variables, action data)."""
    _literal(field, value)
    if _EXPANDED.search(value):
        raise SettingsError(f"{field}: '${{' would be expanded as a FreeSWITCH variable reference")
    return value


def _expression(field: str, pattern: str) -> str:
    """A whole-match condition expression from a settings pattern (its groups keep their numbers)."""
    _text(field, pattern)
    if _REWRITTEN.search(pattern):
        raise SettingsError(
            f"{field}: FreeSWITCH rewrites \\\\, \\' and \\$ in condition expressions; write the pattern "
            "without them (e.g. [$] for a literal dollar)"
        )
    return f"^(?:{pattern})$"


def _secret(field: str, read: Callable[[], str]) -> str:
    """A secret read with the model's reader method, checked for the pre-processor."""
    try:
        value = read()
    except ValueError as exc:  # read_secret's message already starts with the *_file field path
        raise SettingsError(str(exc)) from exc
    if not value:
        raise SettingsError(f"{field}: empty")
    return _literal(field, value)


def _profile(field: str, profile: SipProfileSettings) -> SipProfileSettings:
    for name in ("listen_ip", "external_ip"):
        value = getattr(profile, name)
        if value is not None and ipaddress.ip_address(value).is_unspecified:
            raise SettingsError(
                f"{field}.{name}: sofia replaces {value} with the address it guesses; give the address to use"
            )
    return profile


def _event_socket(settings: Settings) -> _EventSocket:
    socket = settings.event_socket
    node = settings.freeswitch.get(socket.node)
    if node is None:
        known = ", ".join(sorted(settings.freeswitch)) or "none"
        raise SettingsError(f"event_socket.node: no freeswitch node named {socket.node!r} (nodes: {known})")
    field = f"freeswitch.{socket.node}.password"
    password = _secret(field, node.secret)
    if password == _WELL_KNOWN_ESL_PASSWORD:
        raise SettingsError(f"{field}: {password!r} is FreeSWITCH's well-known default; choose another")
    return _EventSocket(socket.listen_ip, socket.port, password, socket.acl)


def _user(settings: Settings, index: int) -> _User:
    user = settings.users[index]
    field = f"users.{index}"
    return _User(
        extension=user.extension,
        password=_secret(f"{field}.password", user.secret),
        caller_id_name=_text(f"{field}.display_name", user.display_name or user.extension),
        caller_id_number=user.caller_id_number or user.extension,
        context=(DialingContexts(settings.calls.context).pstn if user.outbound else settings.calls.context),
    )


def _gateway(trunk: Trunk) -> _Gateway:
    field = f"trunks.{trunk.name}"
    if trunk.transport == "tls":
        raise SettingsError(
            f"{field}.transport: tls needs a TLS-enabled external profile, which is not rendered; "
            "use udp or tcp"
        )
    for name in ("proxy", "realm", "from_domain"):
        value = getattr(trunk, name)
        if value is not None:
            _literal(f"{field}.{name}", value)
    register = trunk.auth == "registration"
    return _Gateway(
        name=trunk.name,
        register=register,
        username=trunk.username if register else None,
        password=_secret(f"{field}.password", trunk.secret) if register else None,
        realm=trunk.realm,
        from_domain=trunk.from_domain,
        proxy=trunk.proxy,
        transport=trunk.transport,
    )


def _outbound(trunk: Trunk) -> list[_Outbound]:
    field = f"trunks.{trunk.name}"
    name = _text(f"{field}.caller_id_name", trunk.caller_id_name) if trunk.caller_id_name else None
    rules = []
    for index, rule in enumerate(trunk.outbound):
        number = rule.caller_id_number or trunk.caller_id_number
        rules.append(
            _Outbound(
                name=f"outbound-{trunk.name}-{index}",
                expression=_expression(f"{field}.outbound.{index}.pattern", rule.pattern),
                caller_id_number=number,
                caller_id_name=name or number,
                bridge=f"sofia/gateway/{trunk.name}/{rule.dial}",
            )
        )
    return rules


def _digits(did: str) -> str:
    return did.removeprefix("+")


def _unique_dids(trunks: tuple[Trunk, ...]) -> None:
    """DIDs are matched with an optional ``+``: ``+15550100`` and ``15550100`` are the same number."""
    owner: dict[str, tuple[str, str]] = {}
    for trunk in trunks:
        for did in trunk.dids:
            if _digits(did) in owner:
                other_trunk, other_did = owner[_digits(did)]
                raise SettingsError(
                    f"trunks.{trunk.name}.dids: {did} is the number {other_did} of trunk "
                    f"{other_trunk!r} already"
                )
            owner[_digits(did)] = (trunk.name, did)


def _dids(trunks: tuple[Trunk, ...]) -> list[_Did]:
    return [
        _Did(f"did-{trunk.name}-{_digits(did)}", rf"^\+?{_digits(did)}$", trunk.name, destination)
        for trunk in trunks
        for did, destination in trunk.dids.items()
    ]
