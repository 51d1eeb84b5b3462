"""Janus settings (``Settings.janus``): what ``switchyard render`` writes into janus/conf and how the
controller reaches Janus.

Secrets (the Admin API secret, the event handler's password) have no default. STUN and TURN are off unless
configured: nothing contacts a public server by default.

WebSockets: without ``tls`` the Janus API is a plain WebSocket on ``ws_ip`` (default ``listen_ip``). With
``tls`` it is a secure one (WSS) for browsers, and the plain one is off unless ``tls.plain_ws`` keeps it
(say on a private address, for the controller). The controller uses the plain one when it is on, else WSS
trusting ``tls.cert_file`` (``controller.janus.wss``).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator

from controller.render.settings import read_secret
from switchyard.retry import BackoffSettings
from switchyard.settings import SettingsModel
from switchyard.tls import TlsFiles

__all__ = [
    "JanusDirectorySettings",
    "JanusEventsSettings",
    "JanusNatSettings",
    "JanusSettings",
    "JanusTlsSettings",
]

_HOST = r"^[A-Za-z0-9.-]+$"


def _address(value: str | None) -> str | None:
    if value is not None:
        ipaddress.ip_address(value)
    return value


def _url_host(host: str) -> str:
    """``host`` as it goes into a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


class JanusNatSettings(SettingsModel):
    """ICE and NAT: which interfaces gather candidates and what address is announced."""

    public_ip: str | None = Field(None, description="nat_1_1_mapping: the public address in front of Janus")
    ice_enforce_list: tuple[str, ...] = Field(
        (), description="only these interfaces/addresses gather ICE candidates (empty: all but ignored)"
    )
    ice_ignore_list: tuple[str, ...] = Field(("vmnet",), description="interfaces never used for ICE")
    stun_server: str | None = Field(None, pattern=_HOST, description="off unless set")
    stun_port: int = Field(3478, ge=1, le=65535)
    turn_server: str | None = Field(None, pattern=_HOST, description="off unless set")
    turn_port: int = Field(3478, ge=1, le=65535)
    turn_type: str = Field("udp", pattern=r"^(udp|tcp|tls)$")
    turn_user: str | None = Field(None, pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    turn_password: SecretStr | None = None

    @field_validator("public_ip")
    @classmethod
    def _public_ip(cls, value: str | None) -> str | None:
        return _address(value)

    @field_validator("ice_enforce_list", "ice_ignore_list")
    @classmethod
    def _interfaces(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,40}", item):
                raise ValueError(f"{item!r} is not an interface name or address")
        return value

    @model_validator(mode="after")
    def _turn_credentials(self) -> Self:
        if self.turn_server is not None and (self.turn_user is None or self.turn_password is None):
            raise ValueError("turn_server needs turn_user and turn_password")
        return self


class _BasicAuthPeer(SettingsModel):
    """A service that calls the controller with HTTP basic auth: a password is required once enabled."""

    enabled: bool = False
    password: SecretStr | None = Field(None, description="HTTP basic auth password (required when enabled)")
    password_file: Path | None = None

    @model_validator(mode="after")
    def _secret(self) -> Self:
        if self.enabled and (self.password is None) == (self.password_file is None):
            raise ValueError("give exactly one of password or password_file (there is no default)")
        return self


class JanusEventsSettings(_BasicAuthPeer):
    """Janus's HTTP event handler posting to the controller's ``/janus/events``."""

    enabled: bool = True
    url: str = Field(
        "http://127.0.0.1:8080/janus/events",
        pattern=r"^https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._/-]*)?$",
        description="where Janus posts its events (the controller)",
    )
    user: str = Field("janus", pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="HTTP basic auth user")

    def secret(self) -> str:
        """The event handler's password (raises ``ValueError`` if its file cannot be read)."""
        return read_secret(self.password, self.password_file, "janus.events.password_file")


class JanusDirectorySettings(_BasicAuthPeer):
    """The browser users' SIP directory: FreeSWITCH's mod_xml_curl asks the controller's
    ``/freeswitch/directory`` for them (HTTP basic auth), every other user stays in the rendered XML."""

    enabled: bool = Field(False, description="render the mod_xml_curl binding and serve browser users")
    url: str = Field(
        "http://127.0.0.1:8080/freeswitch/directory",
        pattern=r"^https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._/-]*)?$",
        description="where FreeSWITCH posts its directory lookups (the controller)",
    )
    user: str = Field("freeswitch", pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="HTTP basic auth user")
    timeout_s: int = Field(5, ge=1, le=60, description="mod_xml_curl's whole-request timeout (seconds)")

    def secret(self) -> str:
        """The directory's basic auth password (raises ``ValueError`` if its file cannot be read)."""
        return read_secret(self.password, self.password_file, "janus.directory.password_file")


class JanusTlsSettings(TlsFiles):
    """Janus's secure WebSocket API (WSS): a page served over HTTPS may open only ``wss://`` URLs."""

    port: int = Field(8989, ge=1, le=65535, description="wss_port")
    ip: str | None = Field(None, description="address WSS binds to (default: janus.listen_ip)")
    host: str | None = Field(
        None,
        pattern=_HOST,
        description="host in the browsers' wss:// URL: a name or address the certificate holds (default: ip)",
    )
    plain_ws: bool = Field(
        False, description="keep the plain WebSocket too (janus.ws_ip:ws_port), e.g. for the controller"
    )

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return _address(value)


class JanusSettings(SettingsModel):
    """One Janus instance: its transports, Admin API, SIP plugin and event handler."""

    enabled: bool = Field(False, description="render janus/conf and let the controller use Janus")
    server_name: str = Field(
        "switchyard-janus",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="this instance's name (Janus info, and the 'emitter' of every event it posts)",
    )
    listen_ip: str = Field("127.0.0.1", description="address the HTTP and WebSocket API bind to")
    http_port: int = Field(8088, ge=1, le=65535)
    ws_port: int = Field(8188, ge=1, le=65535)
    ws_ip: str | None = Field(None, description="address the plain WebSocket binds to (default: listen_ip)")
    tls: JanusTlsSettings | None = Field(None, description="the WebSocket API over TLS (WSS) for browsers")
    admin_ip: str = Field("127.0.0.1", description="address the Admin API binds to (keep it private)")
    admin_port: int = Field(7088, ge=1, le=65535)
    admin_secret: SecretStr | None = None
    admin_secret_file: Path | None = None
    token_auth: bool = Field(True, description="clients need a token the controller adds (Admin API)")
    rtp_start: int = Field(20000, ge=1024, le=65534)
    rtp_end: int = Field(40000, ge=1025, le=65535)
    sip_proxy: str = Field(
        "127.0.0.1:5060",
        pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        description="FreeSWITCH's internal profile, host[:port], as the SIP plugin reaches it",
    )
    sip_local_ip: str | None = Field(None, description="address the SIP plugin binds to (default: automatic)")
    # The demo page's libraries come from Debian packages (libjs-janus-gateway, libjs-webrtc-adapter).
    janus_js: Path = Field(
        Path("/usr/share/javascript/janus-gateway/janus.js"), description="janus.js served at /phone/janus.js"
    )
    adapter_js: Path = Field(
        Path("/usr/share/javascript/webrtc-adapter/adapter.js"),
        description="webrtc-adapter (janus.js needs its 'adapter' global), served at /phone/adapter.js",
    )
    nat: JanusNatSettings = JanusNatSettings()
    events: JanusEventsSettings = JanusEventsSettings(enabled=False)
    directory: JanusDirectorySettings = JanusDirectorySettings(enabled=False)
    session_ttl_s: int = Field(
        3600, ge=1, le=86400, description="lifetime of a browser identity (POST /v1/webrtc/session)"
    )

    # How the controller reaches and watches this Janus (controller/janus/adapter.py, admin.py, reaper.py).
    api_host: str | None = Field(
        None, pattern=_HOST, description="host of the Janus API for the controller (default: listen_ip)"
    )
    admin_host: str | None = Field(
        None, pattern=_HOST, description="host of the Admin API for the controller (default: admin_ip)"
    )
    keepalive_s: float = Field(
        25.0, gt=0, description="keepalive period of the controller's session (Janus drops it after 60 s)"
    )
    request_timeout_s: float = Field(5.0, gt=0, description="deadline of one Janus or Admin API request")
    connect_timeout_s: float = Field(5.0, gt=0, description="deadline of connecting and creating a session")
    reap_interval_s: float = Field(60.0, ge=0, description="period of the stale-session reaper (0: off)")
    reap_after_s: float = Field(600.0, gt=0, description="a session with no live call this long is destroyed")
    backoff: BackoffSettings = BackoffSettings(maximum=10.0)

    @field_validator("listen_ip", "ws_ip", "admin_ip", "sip_local_ip")
    @classmethod
    def _addresses(cls, value: str | None) -> str | None:
        return _address(value)

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if self.rtp_end <= self.rtp_start:
            raise ValueError("rtp_end must be above rtp_start")
        if self.enabled and (self.admin_secret is None) == (self.admin_secret_file is None):
            raise ValueError("give exactly one of admin_secret or admin_secret_file (there is no default)")
        ports = self.listener_ports()
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"{', '.join(ports)} must differ")
        return self

    def listener_ports(self) -> dict[str, int]:
        """The TCP port of each listener Janus opens, by field (the plain WebSocket only when it is on)."""
        ports = {"http_port": self.http_port, "admin_port": self.admin_port}
        if self.plain_ws:
            ports["ws_port"] = self.ws_port
        if self.tls is not None:
            ports["tls.port"] = self.tls.port
        return ports

    @property
    def plain_ws(self) -> bool:
        """Whether the plain WebSocket API is on (always without TLS; with it, if ``tls.plain_ws``)."""
        return self.tls is None or self.tls.plain_ws

    @property
    def ws_bind_ip(self) -> str:
        """Where the plain WebSocket listens."""
        return self.ws_ip or self.listen_ip

    @property
    def wss_bind_ip(self) -> str:
        """Where the secure WebSocket listens (when ``tls`` is set)."""
        return (self.tls.ip if self.tls is not None else None) or self.listen_ip

    @property
    def api_url(self) -> str:
        """The Janus API over WebSocket, as the controller reaches it: plain when that is on, else WSS."""
        if self.plain_ws:
            return f"ws://{_url_host(self.api_host or self.ws_bind_ip)}:{self.ws_port}"
        return self._wss_url(self.api_host)

    @property
    def browser_url(self) -> str:
        """The Janus API over WebSocket, as browsers reach it: WSS when ``tls`` is set."""
        if self.tls is not None:
            return self._wss_url(None)
        return f"ws://{_url_host(self.ws_bind_ip)}:{self.ws_port}"

    def _wss_url(self, host: str | None) -> str:
        assert self.tls is not None
        return f"wss://{_url_host(host or self.tls.host or self.wss_bind_ip)}:{self.tls.port}"

    @property
    def admin_url(self) -> str:
        """The Admin API over HTTP (``admin_base_path`` of janus.transport.http.jcfg is ``/admin``)."""
        return f"http://{_url_host(self.admin_host or self.admin_ip)}:{self.admin_port}/admin"

    def admin_key(self) -> str:
        """The Admin API secret (raises ``ValueError`` if its file cannot be read)."""
        return read_secret(self.admin_secret, self.admin_secret_file, "janus.admin_secret_file")
