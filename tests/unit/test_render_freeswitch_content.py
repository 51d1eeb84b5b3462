"""``render_freeswitch``: what the rendered configuration says for the settings fixture (SIP profiles,
event socket, ACLs, gateways, dialplan, directory, modules, the xml_curl binding), where secrets and
unspecified addresses appear, and the errors that name the offending settings field.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.render.freeswitch import FILES, MODULES, TRUNK_ACL, XML_CURL_FILE, XML_CURL_MODULE
from controller.settings import SettingsError, load_settings
from tests.unit.fsrenderkit import (
    CODECS,
    DIRECTORY_SECRET,
    ESL_SECRET,
    TRUNK_SECRET,
    USER_SECRETS,
    Change,
    _context,
    _data,
    _document,
    _render,
    _set,
)

UNSPECIFIED = re.compile(r'(?<![0-9.])0\.0\.0\.0(?![0-9])|"::"')


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


def test_dialplan(root: ET.Element) -> None:
    assert [name for name, _, _ in _context(root, "switchyard")] == [
        "line-test-9197", "route-0", "route-1", "route-2", "unrouted"]  # fmt: skip
    line_test, *switchyard = _context(root, "switchyard-pstn")  # the PSTN rules: desk users with outbound
    assert line_test == (
        "line-test-9197",
        "^9197$",
        [
            ("answer", ""),
            ("sched_hangup", "+3600 ALLOTTED_TIMEOUT"),
            ("playback", "tone_stream://%(1000,0,1004);loops=-1"),
        ],
    )
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
        (
            r"^\+?15550100000$",
            [("set", "switchyard_trunk=carrier"), ("transfer", "7000 XML switchyard-inbound")],
        ),
        (
            r"^\+?15550100001$",
            [("set", "switchyard_trunk=carrier"), ("transfer", "1000 XML switchyard-inbound")],
        ),
        (
            r"^\+?15550109999$",
            [("set", "switchyard_trunk=ipauth"), ("transfer", "7000 XML switchyard-inbound")],
        ),
    ]
    assert public[3][1:] == (None, [("hangup", "UNALLOCATED_NUMBER")])


def test_rtp_timeouts_are_global_media_timeout_variables_in_milliseconds(tree: dict[str, str]) -> None:
    """A vanished phone is hung up (MEDIA_TIMEOUT): ``media_timeout``/``media_hold_timeout`` in ms as global
    variables every channel falls back to; never the deprecated profile params."""
    _, variables, _ = _document(tree)
    assert (variables["media_timeout"], variables["media_hold_timeout"]) == ("30000", "600000")
    changed = _render(lambda d: d["sip"].update(media_timeout_s=12.5, media_hold_timeout_s=0))
    _, variables, _ = _document(changed)
    assert (variables["media_timeout"], variables["media_hold_timeout"]) == ("12500", "0")
    for name in ("sip_profiles/internal.xml", "sip_profiles/external.xml"):
        assert "rtp-timeout-sec" not in tree[name]
        assert "rtp-hold-timeout-sec" not in tree[name]


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
        "1000": {"user_context": "switchyard-pstn", "effective_caller_id_name": "Front Desk",
                 "effective_caller_id_number": "1000"},
        "1001": {"user_context": "switchyard-pstn", "effective_caller_id_name": "1001",
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
        (_set("line_tests", [{"number": "9197"}] * 2), "line_tests: the number '9197' is used twice"),
        (_set("line_tests.0.number", "91*7"), "line_tests.0.number: String should match"),
        (_set("line_tests.0.tone_hz", 8000), "line_tests.0.tone_hz: Input should be less than"),
    ],
)
def test_settings_errors_name_the_field(change: Change, fragment: str, tmp_path: Path) -> None:
    path = tmp_path / "switchyard.yaml"
    path.write_text(yaml.safe_dump(_data(change)))
    with pytest.raises(SettingsError) as caught:
        load_settings({}, path)
    assert fragment in str(caught.value)
