"""``render_janus``: golden files, libconfig quoting, what is switched off, and errors naming the field.

Goldens live in ``tests/unit/golden/janus/<case>/``; ``SWITCHYARD_UPDATE_GOLDEN=1`` rewrites them, otherwise
they are compared byte for byte.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.render.janus import (
    EVENT_HANDLERS,
    KEPT_EVENT_HANDLER,
    KEPT_PLUGIN,
    KEPT_TRANSPORTS,
    LOGGERS,
    PLUGINS,
    TRANSPORTS,
    libconfig_string,
    libconfig_value,
    render_janus,
)
from controller.settings import Settings, SettingsError

GOLDEN = Path(__file__).parent / "golden" / "janus"
UPDATE = os.environ.get("SWITCHYARD_UPDATE_GOLDEN") == "1"
# Where Debian's janus package puts its shared objects (any architecture).
INSTALLED = sorted(Path("/usr/lib").glob("*/janus"))

CASES: dict[str, dict[str, Any]] = {
    "defaults": {"enabled": True, "admin_secret": "admin-secret-1"},
    "full": {
        "enabled": True,
        "server_name": "janus-a",
        "listen_ip": "10.1.2.3",
        "http_port": 18088,
        "ws_port": 18188,
        "admin_ip": "10.9.9.9",
        "admin_port": 17088,
        "admin_secret": 'adm"in\\secret',
        "token_auth": True,
        "rtp_start": 30000,
        "rtp_end": 30999,
        "sip_local_ip": "10.1.2.4",
        "nat": {"public_ip": "203.0.113.7", "ice_enforce_list": ["eth1", "10.1."], "ice_ignore_list": []},
        "events": {
            "enabled": True,
            "url": "http://10.0.0.10:8080/janus/events",
            "user": "janus-a",
            "password": 'ev"ents\\pw',
        },
    },
}


def _settings(janus: dict[str, Any]) -> Settings:
    return Settings.model_validate({"janus": janus})


def _items(text: str) -> dict[tuple[str, str], str]:
    """``(section, option) → value source`` of a rendered file (one option per line, as rendered)."""
    items: dict[tuple[str, str], str] = {}
    section = ""
    for line in text.splitlines():
        if opened := re.fullmatch(r"(\w+): \{", line):
            section = opened.group(1)
        elif option := re.fullmatch(r"\t(\w+) = (.+)", line):
            items[(section, option.group(1))] = option.group(2)
    return items


def _unquote(literal: str) -> str:
    """A libconfig string literal decoded by the scanner's rules (libconfig lib/scanner.l, v1.5)."""
    assert literal.startswith('"')
    assert literal.endswith('"')
    body, out, i = literal[1:-1], [], 0
    simple = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "\\": "\\", '"': '"'}
    while i < len(body):
        char = body[i]
        assert char != '"', f"unescaped quote in {literal!r}"
        if char != "\\":
            out.append(char)
            i += 1
        elif body[i + 1] in simple:
            out.append(simple[body[i + 1]])
            i += 2
        elif re.fullmatch(r"[xX][0-9A-Fa-f]{2}", body[i + 1 : i + 4]):
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        else:
            raise AssertionError(f"stray backslash in {literal!r}")
    return "".join(out)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    files = render_janus(_settings(CASES[case]))
    folder = GOLDEN / case
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.jcfg"):
            stale.unlink()
        for name, text in files.items():
            (folder / name).write_bytes(text.encode())
    assert sorted(files) == sorted(path.name for path in folder.glob("*.jcfg"))
    for name, text in files.items():
        assert text.encode() == (folder / name).read_bytes(), name


def test_secret_with_quote_and_backslash_is_escaped() -> None:
    files = render_janus(_settings(CASES["full"]))
    core = _items(files["janus.jcfg"])
    handler = _items(files["janus.eventhandler.sampleevh.jcfg"])
    assert core[("general", "admin_secret")] == r'"adm\"in\\secret"'
    assert _unquote(core[("general", "admin_secret")]) == 'adm"in\\secret'
    assert _unquote(handler[("general", "backend_pwd")]) == 'ev"ents\\pw'


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("plain", '"plain"'),
        ('a"b', r'"a\"b"'),
        ("a\\b", r'"a\\b"'),
        ("\\x41", r'"\\x41"'),
        ("line\nbreak\ttab\rcr\fff", r'"line\nbreak\ttab\rcr\fff"'),
        ("bell\x07del\x7f", r'"bell\x07del\x7f"'),
        ("# not a comment // nor this", '"# not a comment // nor this"'),
        ("é€", '"é€"'),
    ],
)
def test_libconfig_string(text: str, literal: str) -> None:
    assert libconfig_string(text) == literal


@given(st.text(alphabet=st.characters(blacklist_characters="\0")))
def test_libconfig_string_decodes_back(text: str) -> None:
    assert _unquote(libconfig_string(text)) == text


def test_libconfig_value_forms() -> None:
    assert libconfig_value(True) == "true"
    assert libconfig_value(False) == "false"
    assert libconfig_value(8088) == "8088"
    assert libconfig_value(("/a", 'b"')) == r'["/a", "b\""]'
    with pytest.raises(ValueError, match="NUL"):
        libconfig_string("a\0b")
    with pytest.raises(TypeError):
        libconfig_value(1.5)


def test_stun_and_turn_are_off_by_default() -> None:
    text = render_janus(_settings(CASES["defaults"]))["janus.jcfg"]
    assert not re.search(r"stun|turn_", text)


def test_stun_and_turn_when_configured() -> None:
    nat = {
        "stun_server": "stun.example.net",
        "stun_port": 3479,
        "turn_server": "turn.example.net",
        "turn_port": 5349,
        "turn_type": "tls",
        "turn_user": "janus",
        "turn_password": 'tu"rn',
    }
    nat_items = _items(render_janus(_settings({**CASES["defaults"], "nat": nat}))["janus.jcfg"])
    assert nat_items[("nat", "stun_server")] == '"stun.example.net"'
    assert nat_items[("nat", "stun_port")] == "3479"
    assert nat_items[("nat", "turn_server")] == '"turn.example.net"'
    assert nat_items[("nat", "turn_port")] == "5349"
    assert nat_items[("nat", "turn_type")] == '"tls"'
    assert nat_items[("nat", "turn_user")] == '"janus"'
    assert _unquote(nat_items[("nat", "turn_pwd")]) == 'tu"rn'


def _installed(kind: str, constant: tuple[str, ...]) -> set[str]:
    """The ``.so`` files Janus would load (it skips other names), else the renderer's list."""
    if not INSTALLED:
        return set(constant)
    return {path.name for path in (INSTALLED[0] / kind).glob("*.so")}


@pytest.mark.parametrize(
    ("section", "kind", "constant", "kept"),
    [
        ("plugins", "plugins", PLUGINS, {KEPT_PLUGIN}),
        ("transports", "transports", TRANSPORTS, set(KEPT_TRANSPORTS)),
        ("events", "events", EVENT_HANDLERS, {KEPT_EVENT_HANDLER}),
        ("loggers", "loggers", LOGGERS, set()),
    ],
)
def test_everything_but_the_wanted_is_disabled(
    section: str, kind: str, constant: tuple[str, ...], kept: set[str]
) -> None:
    core = _items(render_janus(_settings(CASES["defaults"]))["janus.jcfg"])
    disabled = set(_unquote(core[(section, "disable")]).split(","))
    installed = _installed(kind, constant)
    assert kept <= installed
    assert disabled == installed - kept


def test_listeners_bind_only_the_configured_addresses() -> None:
    files = render_janus(_settings(CASES["full"]))
    http = _items(files["janus.transport.http.jcfg"])
    ws = _items(files["janus.transport.websockets.jcfg"])
    assert (http[("general", "ip")], http[("general", "port")]) == ('"10.1.2.3"', "18088")
    assert (http[("admin", "admin_ip")], http[("admin", "admin_port")]) == ('"10.9.9.9"', "17088")
    assert (http[("general", "https")], http[("admin", "admin_https")]) == ("false", "false")
    assert (ws[("general", "ws_ip")], ws[("general", "ws_port")]) == ('"10.1.2.3"', "18188")
    assert [ws[("general", "wss")], ws[("admin", "admin_ws")], ws[("admin", "admin_wss")]] == ["false"] * 3


@pytest.mark.parametrize(
    ("start", "end", "ice", "sip"),
    [(20000, 40000, "20000-29999", "30000-39999"), (30000, 30999, "30000-30499", "30500-30999")],
)
def test_rtp_range_is_split_between_webrtc_and_sip(start: int, end: int, ice: str, sip: str) -> None:
    files = render_janus(_settings({**CASES["defaults"], "rtp_start": start, "rtp_end": end}))
    assert _items(files["janus.jcfg"])[("media", "rtp_port_range")] == f'"{ice}"'
    assert _items(files["janus.plugin.sip.jcfg"])[("general", "rtp_port_range")] == f'"{sip}"'


def test_events_off_renders_a_disabled_handler() -> None:
    files = render_janus(_settings(CASES["defaults"]))
    assert _items(files["janus.jcfg"])[("events", "broadcast")] == "false"
    assert _items(files["janus.eventhandler.sampleevh.jcfg"]) == {("general", "enabled"): "false"}


@pytest.mark.parametrize(
    ("janus", "message"),
    [
        ({"enabled": False}, "janus.enabled: "),
        ({**CASES["defaults"], "admin_secret": "short"}, "janus.admin_secret: at least 8 characters"),
        ({**CASES["defaults"], "admin_secret": "nul\0inside"}, "janus.admin_secret: contains a NUL"),
        (
            {**CASES["full"], "events": {**CASES["full"]["events"], "password": "pw\0pw-pw-pw"}},
            "janus.events.password: contains a NUL",
        ),
        ({**CASES["defaults"], "rtp_start": 20000, "rtp_end": 20010}, "janus.rtp_end: the range 20000-20010"),
        ({**CASES["defaults"], "http_port": 25000}, "janus.http_port: 25000 lies inside the RTP range"),
        (
            {
                **CASES["defaults"],
                "nat": {"turn_server": "t.example", "turn_user": "u", "turn_password": "a\0b"},
            },
            "janus.nat.turn_password: contains a NUL",
        ),
    ],
)
def test_errors_name_the_field(janus: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        render_janus(_settings(janus))
    assert str(raised.value).startswith(message)


def test_unreadable_secret_file_names_the_field(tmp_path: Path) -> None:
    janus = {"enabled": True, "admin_secret_file": str(tmp_path / "missing")}
    with pytest.raises(SettingsError) as raised:
        render_janus(_settings(janus))
    assert str(raised.value).startswith("janus.admin_secret_file: ")


def test_secret_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "admin").write_text("from-a-file-secret\n")
    files = render_janus(_settings({"enabled": True, "admin_secret_file": str(tmp_path / "admin")}))
    assert _items(files["janus.jcfg"])[("general", "admin_secret")] == '"from-a-file-secret"'
