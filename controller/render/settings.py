"""Settings of the stock FreeSWITCH that ``switchyard render`` configures: SIP, users, trunks, event socket.

These are parts of the one ``Settings`` (``sip``, ``users``, ``trunks``, ``event_socket``). Secrets (user and
trunk passwords) have no default: each is given inline (usually as ``${VAR}`` from the environment) or as a
``*_file`` path. Values end up inside FreeSWITCH XML, so every free-text field is held to a pattern that
cannot break out of an attribute (no quotes, ``<``, ``&``).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Final, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from switchyard.settings import SettingsModel

__all__ = [
    "CODECS",
    "EventSocketSettings",
    "LineTest",
    "OutboundRule",
    "SipProfileSettings",
    "SipSettings",
    "SipUser",
    "Trunk",
    "read_secret",
]

# Codec names as FreeSWITCH's codec-prefs spell them (mod_opus, mod_spandsp for G722, core PCMU/PCMA).
CODECS: Final = ("OPUS", "G722", "PCMU", "PCMA")
_HOST = r"^[A-Za-z0-9.-]+$"
_TEXT = r"^[^\"'<>&\\]{1,64}$"
_NUMBER = r"^\+?[0-9]{2,20}$"


def read_secret(value: SecretStr | None, path: Path | None, field: str) -> str:
    """The secret given inline or in a file.

    Raises:
        ValueError: the file cannot be read or is empty (the message starts with ``field``).
    """
    if value is not None:
        return value.get_secret_value()
    assert path is not None
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{field}: {exc}") from exc
    if not text:
        raise ValueError(f"{field}: {path} is empty")
    return text


def _one_secret(value: SecretStr | None, path: Path | None, what: str) -> None:
    if (value is None) == (path is None):
        raise ValueError(f"give exactly one of {what} or {what}_file (there is no default)")
    if value is not None and len(value.get_secret_value()) < 8:
        raise ValueError(f"{what}: at least 8 characters")


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an address or CIDR block") from exc


class SipProfileSettings(SettingsModel):
    """One sofia profile: where it listens and what it announces."""

    listen_ip: str = Field("127.0.0.1", description="address SIP and RTP bind to (sip-ip, rtp-ip)")
    port: int = Field(ge=1, le=65535)
    external_ip: str | None = Field(
        None, description="address announced in SIP/SDP behind NAT (ext-sip-ip, ext-rtp-ip); none = listen_ip"
    )

    @field_validator("listen_ip", "external_ip")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)
        return value


class SipSettings(SettingsModel):
    """FreeSWITCH's SIP side: the internal profile (phones, Janus) and the external one (trunks)."""

    domain: str = Field("switchyard.local", pattern=_HOST, description="directory domain of the SIP users")
    internal: SipProfileSettings = SipProfileSettings(port=5060)
    external: SipProfileSettings = SipProfileSettings(port=5080)
    rtp_start: int = Field(16384, ge=1024, le=65534)
    rtp_end: int = Field(32768, ge=1025, le=65535)
    max_sessions: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="switch.conf max-sessions: channels at once (a loopback call is two)",
    )
    sessions_per_second: int = Field(
        100,
        ge=1,
        le=10_000,
        description="switch.conf sessions-per-second: new channels per second (default 30)",
    )
    codecs: tuple[Literal["OPUS", "G722", "PCMU", "PCMA"], ...] = Field(
        CODECS, min_length=1, description="offered and accepted, in order of preference"
    )
    ptime_ms: Literal[20] = Field(20, description="packetisation of every codec")
    media_timeout_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="a call leg that receives no RTP for this long is hung up with MEDIA_TIMEOUT (a phone "
        "that vanished); 0: never. FreeSWITCH's media_timeout variable, in ms (rtp-timeout-sec: deprecated)",
    )
    media_hold_timeout_s: float = Field(
        600.0,
        ge=0,
        le=86_400,
        description="the same while the leg is on hold (media_hold_timeout); 0: ten times media_timeout_s "
        "(switch_core_media.c)",
    )
    user_agent: str = Field("Switchyard", pattern=r"^[A-Za-z0-9 ._/-]{1,40}$")

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        if self.rtp_end <= self.rtp_start:
            raise ValueError("rtp_end must be above rtp_start")
        if len(set(self.codecs)) != len(self.codecs):
            raise ValueError("codecs: a codec is listed twice")
        if self.internal.port == self.external.port and self.internal.listen_ip == self.external.listen_ip:
            raise ValueError("internal and external profiles cannot share an address and port")
        return self


class EventSocketSettings(SettingsModel):
    """mod_event_socket of the rendered FreeSWITCH; its password is the one of ``freeswitch.<node>``."""

    node: str = Field("main", description="the freeswitch node whose password this server uses")
    listen_ip: str = Field("127.0.0.1", description="address the event socket binds to")
    port: int = Field(8021, ge=1, le=65535)
    acl: tuple[str, ...] = Field(
        ("127.0.0.1/32",), min_length=1, description="networks allowed to connect (everyone else is denied)"
    )

    @field_validator("listen_ip")
    @classmethod
    def _address(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value

    @field_validator("acl")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_cidr(item) for item in value)


class SipUser(SettingsModel):
    """A SIP user of the directory (a phone, or a browser through Janus)."""

    extension: str = Field(pattern=r"^[0-9]{2,10}$")
    password: SecretStr | None = None
    password_file: Path | None = None
    display_name: str | None = Field(None, pattern=_TEXT)
    caller_id_number: str | None = Field(None, pattern=_NUMBER, description="default: the extension")
    outbound: bool = Field(
        True,
        description="may dial the PSTN through the trunks' outbound rules (dialplan context "
        "<calls.context>-pstn; off: <calls.context>)",
    )

    @model_validator(mode="after")
    def _secret(self) -> Self:
        _one_secret(self.password, self.password_file, "password")
        return self

    def secret(self) -> str:
        """The SIP password (raises ``ValueError`` if its file cannot be read)."""
        return read_secret(self.password, self.password_file, f"users.{self.extension}.password_file")


class LineTest(SettingsModel):
    """A number FreeSWITCH answers itself with a steady tone: a line check that needs no controller.

    The classic milliwatt test (1004 Hz): a caller or a monitoring probe hears the switch's audio path
    without the controller, a worker or a route being involved. It is matched before the routes.
    """

    number: str = Field(pattern=r"^[0-9]{2,20}$", description="the dialled number (digits)")
    tone_hz: int = Field(1004, ge=100, le=3400, description="frequency of the tone (telephone band)")
    max_s: int = Field(3600, ge=1, le=86_400, description="hung up after this long (ALLOTTED_TIMEOUT)")


class OutboundRule(SettingsModel):
    """Calls from users whose dialled number matches ``pattern`` go out through the trunk."""

    pattern: str = Field(description="regular expression on the dialled number (whole match)")
    dial: str = Field(
        "$1", pattern=r"^[+0-9$]{1,24}$", description="number sent to the trunk; $1.. are pattern groups"
    )
    caller_id_number: str | None = Field(None, pattern=_NUMBER, description="default: the trunk's")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        if re.search(r"[\"'<>&]", value):
            raise ValueError("quotes, < > and & are not allowed in a dialplan pattern")
        if compiled.groups < 1:
            raise ValueError("the pattern needs a group ($1) for the number to dial")
        return value

    @model_validator(mode="after")
    def _groups(self) -> Self:
        groups = re.compile(self.pattern).groups
        for ref in re.findall(r"\$([0-9])", self.dial):
            if not 1 <= int(ref) <= groups:
                raise ValueError(f"dial uses ${ref}; the pattern has {groups} group(s)")
        return self


class Trunk(SettingsModel):
    """A SIP trunk to the PSTN (Twilio, Telnyx, Vonage...): a gateway on the external profile.

    ``auth: registration`` registers with username/password (and answers the trunk's digest challenges);
    ``auth: ip`` sends no credentials: the provider admits our address, we admit ``inbound_cidrs``. Either
    way inbound INVITEs are only accepted from ``inbound_cidrs`` (the provider's signalling ranges).
    """

    name: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    proxy: str = Field(pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$", description="host[:port] of the provider")
    transport: Literal["udp", "tcp", "tls"] = "udp"
    auth: Literal["registration", "ip"]
    username: str | None = Field(None, pattern=r"^[A-Za-z0-9_.+-]{1,64}$")
    password: SecretStr | None = None
    password_file: Path | None = None
    realm: str | None = Field(None, pattern=_HOST)
    from_domain: str | None = Field(None, pattern=_HOST)
    inbound_cidrs: tuple[str, ...] = Field(min_length=1, description="provider addresses allowed to call in")
    dids: dict[str, str] = Field(
        default_factory=dict, description="inbound DID (E.164) → destination the controller's routes see"
    )
    caller_id_number: str = Field(
        pattern=_NUMBER, description="default outbound caller id (a number you own)"
    )
    caller_id_name: str | None = Field(None, pattern=_TEXT)
    outbound: tuple[OutboundRule, ...] = ()

    @field_validator("inbound_cidrs")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_cidr(item) for item in value)

    @field_validator("dids")
    @classmethod
    def _did_numbers(cls, value: dict[str, str]) -> dict[str, str]:
        for did, destination in value.items():
            if not re.fullmatch(_NUMBER, did):
                raise ValueError(f"DID {did!r} is not a number (digits, optional leading +)")
            if not re.fullmatch(r"[A-Za-z0-9_+*#-]{1,32}", destination):
                raise ValueError(f"DID {did}: destination {destination!r} is not a dialplan extension")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.auth == "registration":
            if self.username is None:
                raise ValueError("auth registration needs username")
            _one_secret(self.password, self.password_file, "password")
        elif self.username is not None or self.password is not None or self.password_file is not None:
            raise ValueError("auth ip takes no username or password")
        return self

    def secret(self) -> str:
        """The registration password (raises ``ValueError`` if its file cannot be read)."""
        return read_secret(self.password, self.password_file, f"trunks.{self.name}.password_file")
