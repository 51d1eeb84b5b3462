"""SIP users and gateways a test declares, sofia's registration events and ``show registrations``.

A registration fires CUSTOM ``sofia::register`` with the headers of esl_inbound_session.txt SESSION 2 (sipp's
REGISTER of user 1000); ``unregister_user`` fires ``sofia::unregister`` (sofia_reg.c
sofia_reg_handle_register_token, not captured); ``expire_user`` fires ``sofia::expire`` as the registration
check does for a row past its expiry (sofia_reg.c sofia_reg_check_expire -> sofia_reg_del_callback, not
captured); ``sofia profile internal flush_inbound_reg`` removes rows the same way. ``show registrations``
reads the core's registrations table (switch_core_sqldb.c create_registrations_sql; rows added by
sofia_reg.c via switch_core_add_registration).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fsemu.core import SwitchCore
from tests.fsemu.wire import HeaderValue

# switch_core_sqldb.c create_registrations_sql: the table's columns, in order (``select *``).
REGISTRATION_COLUMNS = (
    "reg_user", "realm", "token", "url", "expires", "network_ip", "network_port", "network_proto", "hostname",
    "metadata",
)  # fmt: skip
# The vanilla directory's users (conf/vanilla/directory/default/1000.xml ... 1019.xml).
VANILLA_USERS = frozenset(str(n) for n in range(1000, 1020))
# mod_sofia sofia.c: sip-expires-late-margin defaults to 60 s, added to the registration's expiry.
EXPIRES_LATE_MARGIN = 60


@dataclass
class SipUser:
    """A registered SIP endpoint and how it behaves when called."""

    user: str
    domain: str = "127.0.0.1"
    contact_host: str = "127.0.0.1"
    contact_port: int = 5070
    user_agent: str = "SIPp"
    answer_after: float | None = 0.05
    expires: int = 3600
    reject: str | None = None
    codec: str = "PCMA"
    audio: Path | None = None
    call_id: str = field(default_factory=lambda: f"{random.randrange(1, 10**6)}-{random.randrange(10**5)}")
    registered_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def contact(self) -> str:
        """The Contact URI without the scheme (``1000@127.0.0.1:5070``)."""
        return f"{self.user}@{self.contact_host}:{self.contact_port}"


@dataclass
class Gateway:
    """A sofia gateway (profile ``external`` by default) and how its far end answers."""

    name: str
    answer_after: float | None = 0.05
    reject: str | None = None
    profile: str = "external"
    proxy: str = "192.0.2.50"
    up: bool = True
    codec: str = "PCMA"
    audio: Path | None = None


def directory_vars(user: str, domain: str) -> list[tuple[str, HeaderValue]]:
    """The vanilla directory user's params and variables, as sofia::register carries them (capture S2)."""
    return [
        ("sip_number_alias", user), ("sip_auth_username", user), ("sip_auth_realm", domain),
        ("number_alias", user), ("user_name", user), ("domain_name", domain), ("record_stereo", "true"),
        ("default_gateway", "example.com"), ("default_areacode", "918"),
        ("transfer_fallback_extension", "operator"), ("toll_allow", "domestic,international,local"),
        ("accountcode", user), ("user_context", "default"), ("effective_caller_id_name", f"Extension {user}"),
        ("effective_caller_id_number", user), ("outbound_caller_id_name", "FreeSWITCH"),
        ("outbound_caller_id_number", "0000000000"), ("callgroup", "techsupport"),
    ]  # fmt: skip


class Registry:
    """Registered users (one per user: ``multiple-registrations`` is off by default) and gateways."""

    def __init__(self, core: SwitchCore) -> None:
        self.core = core
        self.users: dict[str, SipUser] = {}
        self.directory: set[str] = set(VANILLA_USERS)
        self.gateways: dict[str, Gateway] = {}

    def register(self, entry: SipUser) -> None:
        """A REGISTER was accepted: the row is (re)written and CUSTOM sofia::register fires."""
        self.users[entry.user] = entry
        self.directory.add(entry.user)
        self.core.fire(
            "CUSTOM", self._register_headers(entry), calling="SOFIA_REGISTER", subclass="sofia::register"
        )

    def unregister(self, user: str) -> None:
        """REGISTER with Expires: 0: the row goes and CUSTOM sofia::unregister fires (not captured)."""
        entry = self.users.pop(user, None)
        if entry is None:
            raise KeyError(user)
        headers: list[tuple[str, HeaderValue]] = [
            ("profile-name", "internal"), ("username", entry.user), ("from-user", entry.user),
            ("from-host", entry.domain), ("contact", f'"" <sip:{entry.contact}>'), ("call-id", entry.call_id),
            ("rpid", "unknown"), ("realm", entry.domain), ("network-ip", entry.contact_host),
            ("network-port", str(entry.contact_port)), ("user-agent", entry.user_agent), ("expires", "0"),
        ]  # fmt: skip
        headers += directory_vars(entry.user, entry.domain)
        self.core.fire("CUSTOM", headers, calling="SOFIA_UNREGISTER", subclass="sofia::unregister")

    def expire(self, user: str) -> None:
        """The registration outlived its expiry: the row goes and CUSTOM sofia::expire fires (not captured).

        sofia_reg_del_callback's headers, from the sip_registrations row: ``user`` and ``username`` are
        both sip_user, ``host`` the registrar host, ``expires`` the row's absolute expiry (epoch seconds,
        with sip-expires-late-margin), ``realm`` the auth realm; no ``from-*`` headers, no directory vars.
        """
        entry = self.users.pop(user, None)
        if entry is None:
            raise KeyError(user)
        expires = entry.registered_at + entry.expires + EXPIRES_LATE_MARGIN
        headers: list[tuple[str, HeaderValue]] = [
            ("profile-name", "internal"), ("call-id", entry.call_id), ("user", entry.user),
            ("username", entry.user), ("host", entry.domain), ("contact", f'"" <sip:{entry.contact}>'),
            ("expires", str(expires)), ("user-agent", entry.user_agent), ("realm", entry.domain),
            ("network-ip", entry.contact_host), ("network-port", str(entry.contact_port)),
        ]  # fmt: skip
        self.core.fire("CUSTOM", headers, calling="SOFIA_EXPIRE", subclass="sofia::expire")

    def _register_headers(self, entry: SipUser) -> list[tuple[str, HeaderValue]]:
        host = entry.contact_host
        headers: list[tuple[str, HeaderValue]] = [
            ("profile-name", "internal"), ("from-user", entry.user), ("from-host", entry.domain),
            ("presence-hosts", f"{entry.domain},{entry.domain}"), ("contact", f'"" <sip:{entry.contact}>'),
            ("call-id", entry.call_id), ("rpid", "unknown"), ("status", "Registered(UDP)"),
            ("expires", str(entry.expires)), ("to-user", entry.user), ("to-host", entry.domain),
            ("network-ip", host), ("network-port", str(entry.contact_port)), ("username", entry.user),
            ("realm", entry.domain), ("user-agent", entry.user_agent),
        ]  # fmt: skip
        return headers + directory_vars(entry.user, entry.domain)

    async def sofia(self, arg: str) -> str:
        """``sofia profile <name> flush_inbound_reg [<call_id> | [<user>]@<host>] [reboot]``, as mod_sofia.c
        cmd_profile (1.10.12) runs it: each matching row goes with CUSTOM sofia::expire
        (sofia_reg_expire_call_id -> sofia_reg_del_callback; ``reboot`` also sends the phone a NOTIFY that no
        ESL client sees). No target flushes every row. Other ``sofia`` commands are not emulated."""
        words = arg.split()
        if len(words) < 3 or words[0] != "profile" or words[2].lower() != "flush_inbound_reg":
            return f"-ERR emulator: sofia {arg} is not emulated\n"
        if words[1] != "internal":
            return f"Invalid Profile [{words[1]}]"
        rest = words[3:]
        reboot = bool(rest) and rest[0].lower() == "reboot"
        if reboot or not rest:
            for user in list(self.users):
                self.expire(user)
            return f"+OK {'rebooting' if reboot else 'flushing'} all registrations\n"
        reboot = len(rest) > 1 and rest[1].lower() == "reboot"
        target = rest[0]
        user, at, host = target.partition("@")
        if not at:
            user, host = "", target
        for entry in list(self.users.values()):
            by_host = entry.domain == host and (not user or entry.user == user)
            if entry.call_id == target or by_host:
                self.expire(entry.user)
        return f"+OK {'rebooting' if reboot else 'flushing'} all registrations matching specified call_id\n"

    def find(self, user: str) -> SipUser | None:
        """The registration of ``user`` (``sofia_contact``), or None."""
        return self.users.get(user)

    # -- show registrations ---------------------------------------------------------------------
    def rows(self) -> list[dict[str, str]]:
        """The registrations table (sofia_reg.c: url ``sofia/<profile>/sip:<contact>``, token = Call-ID)."""
        out = []
        for entry in self.users.values():
            values = {
                "reg_user": entry.user, "realm": entry.domain, "token": entry.call_id,
                "url": f"sofia/internal/sip:{entry.contact}",
                "expires": str(entry.registered_at + entry.expires + EXPIRES_LATE_MARGIN),
                "network_ip": entry.contact_host, "network_port": str(entry.contact_port),
                "network_proto": "udp", "hostname": self.core.identity.switchname, "metadata": "",
            }  # fmt: skip
            out.append(values)
        return out

    def show(self, words: list[str]) -> str:
        """``show registrations [count] [as json|delim <d>]`` as mod_commands.c show_function renders it."""
        count = len(words) > 1 and words[1].lower() == "count"
        rest = words[2:] if count else words[1:]
        fmt = rest[1].lower() if len(rest) > 1 and rest[0].lower() == "as" else "delim"
        rows = self.rows()
        if fmt == "json":
            return _json(rows, count)
        if fmt not in ("delim", "csv"):
            return f"-ERR Cannot find format {fmt}\n"
        delim = rest[2] if len(rest) > 2 else ","
        if count:
            return f"\n{len(rows)} total.\n"
        lines = [delim.join(REGISTRATION_COLUMNS)] if rows else []
        lines += [delim.join(row[c] for c in REGISTRATION_COLUMNS) for row in rows]
        text = "".join(f"{line}\n" for line in lines)
        return f"{text}\n{len(rows)} total.\n"


def _json(rows: list[dict[str, str]], count: bool) -> str:
    # mod_commands.c show_function: cJSON_PrintUnformatted of {"row_count":N,"rows":[...]} (every value a
    # string, NULL as ""), no trailing newline; no row at all -> the literal "{\"row_count\": 0}\n".
    # ``count`` runs "select count(*)": one callback that only counts, so "rows" is an empty array.
    if count:
        return json.dumps({"row_count": len(rows), "rows": []}, separators=(",", ":"))
    if not rows:
        return '{"row_count": 0}\n'
    return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"), ensure_ascii=False)
