"""``render_freeswitch``: golden files, FreeSWITCH's pre-processor, FreeSWITCH's element and param names.

Golden files: ``tests/unit/golden/freeswitch`` (``SWITCHYARD_UPDATE_GOLDEN=1`` rewrites them). The tree goes
through a model of FreeSWITCH's pre-processor (``src/switch_xml.c`` ``preprocess()``, v1.10.12) and the whole
document is parsed; names are checked against allowlists from the FreeSWITCH source files cited by each list.
"""

from __future__ import annotations

import os
import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.render.freeswitch import (
    FILES,
    HOLD_MUSIC,
    MODULES,
    TRUNK_ACL,
    XML_CURL_FILE,
    XML_CURL_MODULE,
    render_freeswitch,
)
from controller.settings import Settings, SettingsError, load_settings

GOLDEN = Path(__file__).parent / "golden" / "freeswitch"
ESL_SECRET = "esl-placeholder-secret"
USER_SECRETS = {"1000": "user-1000-placeholder", "1001": "user-1001-placeholder"}
TRUNK_SECRET = "trunk-carrier-placeholder"
DIRECTORY_SECRET = "directory-placeholder"
CODECS = "OPUS@20i,G722@20i,PCMU@20i"  # switch_loadable_module.c switch_parse_codec_buf(): NAME@<ms>i
UNSPECIFIED = re.compile(r'(?<![0-9.])0\.0\.0\.0(?![0-9])|"::"')

# Who reads which element (parent → children), v1.10.12: switch_xml.c (document/section, switch_xml_open_cfg,
# switch_xml_locate_user_in_domain: domain/params|variables|users/user), switch_loadable_module.c
# (modules/load), switch_core.c (network-lists/list/node; settings/param), mod_console.c and mod_logfile.c
# (mappings/map, profiles/profile/settings), mod_sofia/sofia.c (global_settings, profiles/profile/settings|
# gateways/gateway/param|variables/variable), mod_conference.c (profiles/profile/param), mod_opus.c
# (settings), mod_dialplan_xml.c (context/extension/condition/action|anti-action), mod_xml_curl.c do_config()
# (bindings/binding/param).
CHILDREN: dict[str, set[str]] = {
    "document": {"section"}, "section": {"configuration", "domain", "context"},
    "configuration": {
        "modules", "settings", "global_settings", "profiles", "mappings", "network-lists", "bindings"},
    "bindings": {"binding"}, "binding": {"param"},
    "modules": {"load"}, "network-lists": {"list"}, "list": {"node"}, "mappings": {"map"},
    "settings": {"param"}, "global_settings": {"param"}, "profiles": {"profile"},
    "profile": {"settings", "gateways", "mappings", "param"}, "gateways": {"gateway"},
    "gateway": {"param", "variables"}, "domain": {"params", "variables", "users"}, "params": {"param"},
    "variables": {"variable"}, "users": {"user"}, "user": {"params", "variables"}, "context": {"extension"},
    "extension": {"condition"}, "condition": {"action", "anti-action"},
}  # fmt: skip
LEAVES = {"load", "node", "map", "param", "variable", "action", "anti-action"}

# Param names by (configuration, path inside it); each name appears in the file cited.
SOFIA_PROFILE = {  # mod_sofia/sofia.c config_sofia()
    "dialplan", "context", "sip-ip", "sip-port", "rtp-ip", "ext-sip-ip", "ext-rtp-ip", "auth-calls",
    "auth-subscriptions", "inbound-reg-force-matching-username", "force-register-domain",
    "force-register-db-domain", "force-subscription-domain", "log-auth-failures", "codec-prefs",
    "inbound-codec-prefs", "outbound-codec-prefs", "inbound-codec-negotiation", "dtmf-type", "rfc2833-pt",
    "user-agent-string", "apply-inbound-acl", "apply-register-acl", "apply-nat-acl", "local-network-acl",
    "disable-register", "accept-blind-reg", "challenge-realm", "caller-id-type", "hold-music",
    "rtp-timeout-sec", "manual-rtp-bugs",
}  # fmt: skip
SOFIA_GATEWAY = {  # mod_sofia/sofia.c parse_gateways()
    "register", "username", "auth-username", "password", "realm", "from-user", "from-domain", "proxy",
    "register-proxy", "outbound-proxy", "register-transport", "caller-id-in-from", "extension", "context",
    "expire-seconds", "retry-seconds", "ping",
}  # fmt: skip
PARAMS: dict[tuple[str, str], set[str]] = {
    ("sofia.conf", "global_settings"): {"log-level", "auto-restart", "debug-presence"},  # sofia.c
    ("sofia.conf", "profiles/profile/settings"): SOFIA_PROFILE,
    ("sofia.conf", "profiles/profile/gateways/gateway"): SOFIA_GATEWAY,
    ("event_socket.conf", "settings"): {  # mod_event_socket.c config()
        "listen-ip", "listen-port", "password", "apply-inbound-acl", "nat-map", "stop-on-bind-error"},
    ("switch.conf", "settings"): {  # switch_core.c switch_load_core_config()
        "loglevel", "colorize-console", "rtp-start-port", "rtp-end-port", "max-sessions",
        "sessions-per-second"},
    ("console.conf", "settings"): {"colorize", "loglevel", "uuid", "json"},  # mod_console.c config_logger()
    # mod_logfile.c mod_logfile_load(), load_profile()
    ("logfile.conf", "settings"): {"rotate-on-hup"},
    ("logfile.conf", "profiles/profile/settings"): {"logfile", "rollover", "maximum-rotate", "uuid"},
    # mod_conference.c conference_new(), mod_opus.c opus_load_config()
    ("conference.conf", "profiles/profile"): {"rate", "interval", "energy-level", "comfort-noise"},
    ("opus.conf", "settings"): {"use-vbr", "use-dtx", "complexity", "keep-fec-enabled"},
    ("xml_curl.conf", "bindings/binding"): {  # mod_xml_curl.c do_config()
        "gateway-url", "gateway-credentials", "auth-scheme", "disable-100-continue", "method", "timeout",
        "enable-cacert-check", "ssl-cert-path", "ssl-key-path", "ssl-key-password", "ssl-version",
        "ssl-cacert-file", "enable-ssl-verifyhost", "cookie-file", "use-dynamic-url", "enable-post-var",
        "bind-local", "response-max-bytes"},
}  # fmt: skip


# The fixture: two users, a registration trunk (two DIDs, one outbound rule), an IP-auth trunk, three routes,
# a two-entry event-socket ACL, an external address on one profile, Janus with the browser users' directory
# (mod_xml_curl). Secrets are placeholders.
SETTINGS = r"""
freeswitch: {main: {host: 10.0.0.5, password: esl-placeholder-secret}}
event_socket: {node: main, listen_ip: 10.0.0.5, acl: [10.0.0.0/24, 127.0.0.1]}
sip: {domain: pbx.example.com, rtp_start: 16384, rtp_end: 17383, codecs: [OPUS, G722, PCMU],
      internal: {listen_ip: 10.0.0.5, port: 5060},
      external: {listen_ip: 10.0.0.5, port: 5080, external_ip: 203.0.113.7}}
users:
  - {extension: "1000", display_name: Front Desk, password: user-1000-placeholder}
  - {extension: "1001", caller_id_number: "+15550101001", password: user-1001-placeholder}
trunks:
  - {name: carrier, proxy: "sip.carrier.example:5060", auth: registration, username: acct42,
     password: trunk-carrier-placeholder, realm: sip.carrier.example, from_domain: carrier.example,
     inbound_cidrs: [192.0.2.0/28, 198.51.100.10], dids: {"+15550100000": "7000", "15550100001": "1000"},
     caller_id_number: "+15550100000", caller_id_name: Example Inc,
     outbound: [{pattern: '(?:\+?1)?([2-9]\d{9})', dial: "+1$1"}]}
  - {name: ipauth, proxy: pstn.ip.example, transport: tcp, auth: ip, caller_id_number: "+15550109999",
     inbound_cidrs: [192.0.2.0/28, 203.0.113.64/27], dids: {"+15550109999": "7000"}}
calls:
  sip_domain: pbx.example.com
  routes:
    - {destination: "7000", action: agent default}
    - {destination: "(100[0-9])", action: user $1}
    - {destination: '8(\d{3})|9(\d{2})', action: conference $1}
janus:
  enabled: true
  admin_secret: janus-admin-placeholder
  directory:
    {enabled: true, url: "http://10.0.0.9:8080/freeswitch/directory", password: directory-placeholder}
"""


Change = Callable[[dict[str, Any]], None]


def _data(change: Change | None = None) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SETTINGS)
    if change is not None:
        change(data)
    return data


def _render(change: Change | None = None) -> dict[str, str]:
    return render_freeswitch(Settings.model_validate(_data(change)))


def _set(path: str, value: Any) -> Change:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value

    return change


@pytest.fixture(scope="module")
def tree() -> dict[str, str]:
    return _render()


def _preprocess(tree: dict[str, str], name: str, variables: dict[str, str], seen: list[str]) -> str:
    """What FreeSWITCH's pre-processor makes of ``name`` (switch_xml.c preprocess(), preprocess_glob())."""
    seen.append(name)
    out = []
    for raw in tree[name].splitlines(keepends=True):
        line = re.sub(r"\$\$\{([^}]*)\}", lambda m: variables.get(m.group(1), ""), raw)
        assert "<!--#" not in line
        if "<include>" in line or "</include>" in line or "<?" in line:
            continue
        directive = re.search("x-pre-process", line, re.IGNORECASE)
        if directive is None:
            out.append(line)
            continue
        assert line[directive.start() - 1] == "<", f"{name}: a line mentioning the directive is dropped"
        match = re.fullmatch(r'\s*<X-PRE-PROCESS cmd="(set|include)" data="([^"]*)"/>\s*', line)
        assert match is not None, line
        if match.group(1) == "set":
            key, _, value = match.group(2).partition("=")
            variables[key.strip()] = value.strip()
        else:
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), match.group(2)))
            out.append(_preprocess(tree, target, variables, seen))
    return "".join(out)


def _document(tree: dict[str, str]) -> tuple[ET.Element, dict[str, str], list[str]]:
    variables: dict[str, str] = {}
    seen: list[str] = []
    root = ET.fromstring(_preprocess(tree, "freeswitch.xml", variables, seen))
    return root, variables, seen


@pytest.fixture(scope="module")
def root(tree: dict[str, str]) -> ET.Element:
    return _document(tree)[0]


def test_tree_matches_golden_files(tree: dict[str, str]) -> None:
    if os.environ.get("SWITCHYARD_UPDATE_GOLDEN") == "1":
        for old in GOLDEN.rglob("*.xml"):
            old.unlink()
        for name, text in tree.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_bytes(text.encode())
    golden = {path.relative_to(GOLDEN).as_posix() for path in GOLDEN.rglob("*.xml")}
    assert golden == set(tree) == {*FILES, XML_CURL_FILE}
    for name, text in tree.items():
        assert (GOLDEN / name).read_bytes() == text.encode(), f"{name} differs from its golden file"


def test_each_file_parses_and_the_document_includes_each_once(tree: dict[str, str]) -> None:
    for text in tree.values():
        ET.fromstring(text)
    root, variables, seen = _document(tree)
    assert sorted(seen) == sorted([*FILES, XML_CURL_FILE])
    assert (root.tag, root.get("type")) == ("document", "freeswitch/xml")
    assert variables == {
        "domain": "pbx.example.com", "domain_name": "pbx.example.com", "global_codec_prefs": CODECS,
        "outbound_codec_prefs": CODECS, "hold_music": HOLD_MUSIC,
        "recordings_dir": "/var/lib/freeswitch/recordings",
    }  # fmt: skip
    assert "local_stream" not in "".join(tree.values())


def test_elements_are_freeswitch_elements(root: ET.Element) -> None:
    for parent in root.iter():
        allowed = set() if parent.tag in LEAVES else CHILDREN[parent.tag]
        assert {child.tag for child in parent} <= allowed, parent.tag


def _param_paths(config: ET.Element) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def walk(element: ET.Element, path: str) -> None:
        for child in element:
            if child.tag == "param":
                found.setdefault(path, set()).add(child.attrib["name"])
            else:
                walk(child, f"{path}/{child.tag}".lstrip("/"))

    walk(config, "")
    return found


def test_param_names_are_freeswitch_params(root: ET.Element) -> None:
    for config in root.iterfind("section[@name='configuration']/configuration"):
        for path, names in _param_paths(config).items():
            key = (config.attrib["name"], path)
            assert key in PARAMS, key
            assert names <= PARAMS[key], (key, names - PARAMS[key])
    domain = root.find("section[@name='directory']/domain")
    assert domain is not None
    assert {p.get("name") for p in domain.iterfind("params/param")} == {"dial-string"}  # mod_dptools.c
    assert {p.get("name") for p in domain.iterfind("users/user/params/param")} == {"password"}  # sofia_reg.c


def _params(root: ET.Element, path: str) -> dict[str, str]:
    return {p.attrib["name"]: p.attrib["value"] for p in root.iterfind(path)}


def test_profiles_event_socket_acl_and_core(root: ET.Element) -> None:
    internal = _params(root, ".//profile[@name='internal']/settings/param")
    external = _params(root, ".//profile[@name='external']/settings/param")
    assert [internal[k] for k in ("context", "auth-calls", "sip-ip", "rtp-ip", "sip-port")] == [
        "switchyard", "true", "10.0.0.5", "10.0.0.5", "5060"]  # fmt: skip
    assert "ext-sip-ip" not in internal  # only where configured
    assert internal["force-register-domain"] == "pbx.example.com"
    keys = ("context", "auth-calls", "apply-inbound-acl", "ext-sip-ip", "ext-rtp-ip")
    assert [external[k] for k in keys] == ["public", "false", TRUNK_ACL, "203.0.113.7", "203.0.113.7"]
    for profile in (internal, external):
        assert [profile[k] for k in ("inbound-codec-prefs", "outbound-codec-prefs", "dtmf-type")] == [
            CODECS, CODECS, "rfc2833"]  # fmt: skip
    esl = _params(root, ".//configuration[@name='event_socket.conf']/settings/param")
    assert [esl[k] for k in ("listen-ip", "listen-port", "password")] == ["10.0.0.5", "8021", ESL_SECRET]
    lists = {e.attrib["name"]: e for e in root.iterfind(".//network-lists/list")}
    assert {e.attrib["default"] for e in lists.values()} == {"deny"}
    acl = [(n.attrib["type"], n.attrib["cidr"]) for n in lists[esl["apply-inbound-acl"]]]
    assert acl == [("allow", "10.0.0.0/24"), ("allow", "127.0.0.1/32")]
    trunk_acl = [n.attrib["cidr"] for n in lists[TRUNK_ACL]]
    assert trunk_acl == ["192.0.2.0/28", "198.51.100.10/32", "203.0.113.64/27"]
    switch = _params(root, ".//configuration[@name='switch.conf']/settings/param")
    assert [switch[k] for k in ("rtp-start-port", "rtp-end-port", "loglevel")] == ["16384", "17383", "info"]


def test_gateways(root: ET.Element) -> None:
    carrier = _params(root, ".//gateway[@name='carrier']/param")
    assert carrier == {
        "register": "true", "username": "acct42", "password": TRUNK_SECRET, "realm": "sip.carrier.example",
        "from-domain": "carrier.example", "proxy": "sip.carrier.example:5060", "register-transport": "udp",
        "caller-id-in-from": "true", "extension": "auto_to_user",
    }  # fmt: skip
    # parse_gateways(): register defaults to true (then username/password are required), proxy to the name.
    assert _params(root, ".//gateway[@name='ipauth']/param") == {
        "register": "false", "proxy": "pstn.ip.example", "register-transport": "tcp",
        "caller-id-in-from": "true", "extension": "auto_to_user",
    }  # fmt: skip


def _context(root: ET.Element, name: str) -> list[tuple[str, str | None, list[tuple[str, str]]]]:
    context = root.find(f"section[@name='dialplan']/context[@name='{name}']")
    assert context is not None
    result = []
    for extension in context:
        condition = extension.find("condition")
        assert condition is not None
        actions = [(a.attrib["application"], a.get("data", "")) for a in condition]
        result.append((extension.attrib["name"], condition.get("expression"), actions))
    return result


def test_dialplan(root: ET.Element) -> None:
    switchyard = _context(root, "switchyard")
    names = ["outbound-carrier-0", "route-0", "route-1", "route-2", "unrouted"]
    assert [name for name, _, _ in switchyard] == names
    _, expression, actions = switchyard[0]
    assert expression == r"^(?:(?:\+?1)?([2-9]\d{9}))$"
    assert actions == [
        ("set", "effective_caller_id_number=+15550100000"),
        ("set", "effective_caller_id_name=Example Inc"),
        ("bridge", "sofia/gateway/carrier/+1$1"),
    ]
    routes = ["^(?:7000)$", "^(?:(100[0-9]))$", r"^(?:8(\d{3})|9(\d{2}))$"]
    assert [e for _, e, _ in switchyard[1:4]] == routes
    route = re.compile(switchyard[3][1] or "")
    assert [bool(route.search(n)) for n in ("8123", "912", "81234", "9123", "18123")] == [1, 1, 0, 0, 0]
    assert all(actions == [("park", "")] for _, _, actions in switchyard[1:4])
    assert switchyard[4][1:] == (None, [("hangup", "UNALLOCATED_NUMBER")])
    public = _context(root, "public")
    assert [(e, a) for _, e, a in public[:3]] == [
        (r"^\+?15550100000$", [("set", "switchyard_trunk=carrier"), ("transfer", "7000 XML switchyard")]),
        (r"^\+?15550100001$", [("set", "switchyard_trunk=carrier"), ("transfer", "1000 XML switchyard")]),
        (r"^\+?15550109999$", [("set", "switchyard_trunk=ipauth"), ("transfer", "7000 XML switchyard")]),
    ]
    assert public[3][1:] == (None, [("hangup", "UNALLOCATED_NUMBER")])


def test_patterns_are_xml_escaped() -> None:
    text = _render(_set("calls.routes.2.destination", r"(?P<room>8\d{3})&?"))["dialplan/switchyard.xml"]
    assert r'expression="^(?:(?P&lt;room&gt;8\d{3})&amp;?)$"' in text
    expressions = [condition.get("expression") for condition in ET.fromstring(text).iter("condition")]
    assert r"^(?:(?P<room>8\d{3})&?)$" in expressions


def test_directory_and_modules(root: ET.Element) -> None:
    users = {}
    for user in root.iterfind(".//domain[@name='pbx.example.com']/users/user"):
        variables = {v.attrib["name"]: v.attrib["value"] for v in user.iterfind("variables/variable")}
        users[user.attrib["id"]] = variables
    assert users == {
        "1000": {"user_context": "switchyard", "effective_caller_id_name": "Front Desk",
                 "effective_caller_id_number": "1000"},
        "1001": {"user_context": "switchyard", "effective_caller_id_name": "1001",
                 "effective_caller_id_number": "+15550101001"},
    }  # fmt: skip
    loaded = [load.attrib["module"] for load in root.iterfind(".//modules/load")]
    at = MODULES.index("mod_sofia")
    assert loaded == [*MODULES[:at], XML_CURL_MODULE, *MODULES[at:]]
    assert [m for m in loaded if "cdr" in m or m == "mod_audio_stream"] == ["mod_audio_stream"]


def test_xml_curl_binding_asks_the_controller_for_directory_lookups(root: ET.Element) -> None:
    binding = root.find(".//configuration[@name='xml_curl.conf']/bindings/binding")
    assert binding is not None
    params = {p.attrib["name"]: p for p in binding.iterfind("param")}
    url = params["gateway-url"]
    assert url.get("value") == "http://10.0.0.9:8080/freeswitch/directory"
    assert url.get("bindings") == "directory"
    assert params["gateway-credentials"].get("value") == f"freeswitch:{DIRECTORY_SECRET}"
    assert (params["auth-scheme"].get("value"), params["timeout"].get("value")) == ("basic", "5")


@pytest.mark.parametrize("janus", [{"enabled": False}, {"enabled": True, "admin_secret": "janus-admin-1"}])
def test_no_xml_curl_without_the_janus_directory(janus: dict[str, Any]) -> None:
    tree = _render(_set("janus", janus))
    assert set(tree) == set(FILES)
    assert XML_CURL_MODULE not in tree["autoload_configs/modules.conf.xml"]
    assert "xml_curl" not in tree["freeswitch.xml"]


def test_secrets_appear_only_where_expected(tree: dict[str, str]) -> None:
    def holders(secret: str) -> set[str]:
        return {name for name, text in tree.items() if secret in text}

    assert holders(ESL_SECRET) == {"autoload_configs/event_socket.conf.xml"}
    for secret in USER_SECRETS.values():
        assert holders(secret) == {"directory/switchyard.xml"}
    assert holders(TRUNK_SECRET) == {"sip_profiles/external.xml"}
    assert holders(DIRECTORY_SECRET) == {XML_CURL_FILE}
    assert tree["sip_profiles/external.xml"].count(TRUNK_SECRET) == 1
    assert "default_password" not in "".join(tree.values())


def test_no_unspecified_address_unless_configured(tree: dict[str, str]) -> None:
    assert not [name for name, text in tree.items() if UNSPECIFIED.search(text)]
    rendered = _render(_set("event_socket.listen_ip", "0.0.0.0"))
    assert [name for name, text in rendered.items() if UNSPECIFIED.search(text)] == [
        "autoload_configs/event_socket.conf.xml"
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("event_socket.node", "x"), "event_socket.node: no freeswitch node named 'x'"),
        (_set("freeswitch.main.password", "ClueCon"), "freeswitch.main.password: 'ClueCon'"),
        (_set("freeswitch.main.password", ""), "freeswitch.main.password: empty"),
        (_set("sip.internal.listen_ip", "0.0.0.0"), "sip.internal.listen_ip: sofia replaces 0.0.0.0"),
        (_set("trunks.1.transport", "tls"), "trunks.ipauth.transport: tls"),
        (_set("users.0.password", "abc$${domain}xyz"), "users.0.password: '$${'"),
        (_set("users.0.display_name", "x-pre-process"), "users.0.display_name: '$${', 'X-PRE-PROCESS'"),
        (_set("trunks.0.caller_id_name", "A ${uuid}"), "trunks.carrier.caller_id_name: '${'"),
        (_set("calls.routes.0.destination", r"7\\000"), "calls.routes.0.destination: FreeSWITCH rewrites"),
        (_set("calls.sip_domain", "other.example"), "calls.sip_domain: 'other.example' differs"),
        (_set("trunks.1.dids", {"15550100000": "7000"}), "trunks.ipauth.dids: 15550100000 is the number"),
    ],
)
def test_render_errors_name_the_field(change: Change, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        _render(change)
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (_set("users.0.password", None), "users.0: Value error, give exactly one of password"),
        (_set("trunks.0.username", None), "trunks.0: Value error, auth registration needs username"),
        (_set("event_socket.acl", ["10.0.0.300/8"]), "event_socket.acl: Value error, '10.0.0.300/8' is not"),
        (_set("trunks.1.inbound_cidrs", ["example.com"]), "trunks.1.inbound_cidrs: Value error"),
        (_set("sip.codecs", ["OPUS", "G729"]), "sip.codecs.1: Input should be"),
        (_set("sip.rtp_end", 16384), "sip: Value error, rtp_end must be above rtp_start"),
        (_set("trunks.1.dids", {"+15550100000": "7000"}), "trunks: the DID '+15550100000' is used twice"),
    ],
)
def test_settings_errors_name_the_field(change: Change, fragment: str, tmp_path: Path) -> None:
    path = tmp_path / "switchyard.yaml"
    path.write_text(yaml.safe_dump(_data(change)))
    with pytest.raises(SettingsError) as caught:
        load_settings({}, path)
    assert fragment in str(caught.value)
