"""``render_freeswitch``: golden files, FreeSWITCH's pre-processor, FreeSWITCH's element and param names.

Golden files: ``tests/unit/golden/freeswitch`` (``SWITCHYARD_UPDATE_GOLDEN=1`` rewrites them). The tree goes
through a model of FreeSWITCH's pre-processor (tests/unit/fsrenderkit.py) and the whole document is parsed;
names are checked against allowlists from the FreeSWITCH source files cited by each list.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from controller.render.freeswitch import FILES, HOLD_MUSIC, XML_CURL_FILE
from tests.unit.fsrenderkit import CODECS, _document

GOLDEN = Path(__file__).parent / "golden" / "freeswitch"

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
        "recordings_dir": "/var/lib/freeswitch/recordings", "media_timeout": "30000",
        "media_hold_timeout": "600000",
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
