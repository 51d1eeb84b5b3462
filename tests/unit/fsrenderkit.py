"""What the ``render_freeswitch`` tests share: the settings fixture and its placeholder secrets, helpers that
render it with a change, and a model of FreeSWITCH's pre-processor (``src/switch_xml.c`` ``preprocess()``,
v1.10.12) that turns the rendered tree into one parsed document.
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import yaml

from controller.render.freeswitch import render_freeswitch
from controller.settings import Settings

ESL_SECRET = "esl-placeholder-secret"
USER_SECRETS = {"1000": "user-1000-placeholder", "1001": "user-1001-placeholder"}
TRUNK_SECRET = "trunk-carrier-placeholder"
DIRECTORY_SECRET = "directory-placeholder"
CODECS = "OPUS@20i,G722@20i,PCMU@20i"  # switch_loadable_module.c switch_parse_codec_buf(): NAME@<ms>i


# The fixture: two users, a registration trunk (two DIDs, one outbound rule), an IP-auth trunk, three routes,
# a line test, a two-entry event-socket ACL, an external address on one profile, Janus with the browser
# users' directory (mod_xml_curl). Secrets are placeholders.
SETTINGS = r"""
freeswitch: {main: {host: 10.0.0.5, password: esl-placeholder-secret}}
event_socket: {node: main, listen_ip: 10.0.0.5, acl: [10.0.0.0/24, 127.0.0.1]}
sip: {domain: pbx.example.com, rtp_start: 16384, rtp_end: 17383, codecs: [OPUS, G722, PCMU],
      internal: {listen_ip: 10.0.0.5, port: 5060},
      external: {listen_ip: 10.0.0.5, port: 5080, external_ip: 203.0.113.7}}
users:
  - {extension: "1000", display_name: Front Desk, password: user-1000-placeholder}
  - {extension: "1001", caller_id_number: "+15550101001", password: user-1001-placeholder}
line_tests: [{number: "9197"}]
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
