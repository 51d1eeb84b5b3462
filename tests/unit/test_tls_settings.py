"""TLS settings (``api.tls``, ``janus.tls``; ``switchyard.tls.TlsFiles``): the files are checked when the
settings load and a bad one is named by its field; without TLS everything stays plain; with it, Janus's
WebSocket transport is rendered as WSS with the certificate and the URLs the controller and the page get
say ``wss://``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api.phone import content_security_policy
from controller.render.janus import render_janus
from controller.settings import Settings, SettingsError, load_settings
from switchyard.tls import AEAD_CIPHERS
from tests.tlskit import TestCert, make_cert

JANUS = {"enabled": True, "admin_secret": "admin-secret-1", "listen_ip": "192.0.2.10"}


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> TestCert:
    return make_cert(tmp_path_factory.mktemp("cert"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> TestCert:
    return make_cert(tmp_path_factory.mktemp("other"))


def _files(cert: TestCert, **changes: Any) -> dict[str, Any]:
    return {"cert_file": str(cert.cert), "key_file": str(cert.key), **changes}


def _load(tmp_path: Path, data: dict[str, Any]) -> Settings:
    """The settings as a process loads them (the errors as it reports them)."""
    path = tmp_path / "switchyard.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_settings({}, path)


def _items(text: str) -> dict[str, str]:
    """``section.option → value`` of a rendered libconfig file (one option per line)."""
    items, section = {}, ""
    for line in text.splitlines():
        if opened := re.fullmatch(r"(\w+): \{", line):
            section = opened.group(1)
        elif option := re.fullmatch(r"\t(\w+) = (.+)", line):
            items[f"{section}.{option.group(1)}"] = option.group(2)
    return items


def _websockets(janus: dict[str, Any]) -> dict[str, str]:
    files = render_janus(Settings.model_validate({"janus": janus}))
    return _items(files["janus.transport.websockets.jcfg"])


def test_without_tls_everything_stays_plain() -> None:
    settings = Settings.model_validate({"janus": JANUS})
    assert settings.api.tls is None
    assert settings.janus.tls is None
    assert settings.janus.api_url == settings.janus.browser_url == "ws://192.0.2.10:8188"
    ws = _websockets(JANUS)
    assert (ws["general.ws"], ws["general.ws_ip"], ws["general.wss"]) == ("true", '"192.0.2.10"', "false")
    assert not any(key.startswith("certificates.") for key in ws)


def test_wss_is_rendered_with_the_certificate_and_plain_ws_off(cert: TestCert) -> None:
    ws = _websockets({**JANUS, "tls": _files(cert)})
    assert ws["general.ws"] == "false"
    assert "general.ws_port" not in ws
    assert ws["general.wss"] == "true"
    assert (ws["general.wss_ip"], ws["general.wss_port"]) == ('"192.0.2.10"', "8989")
    assert ws["certificates.cert_pem"] == f'"{cert.cert}"'
    assert ws["certificates.cert_key"] == f'"{cert.key}"'
    assert ws["certificates.ciphers"] == f'"{AEAD_CIPHERS}"'
    settings = Settings.model_validate({"janus": {**JANUS, "tls": _files(cert)}})
    # With only WSS, the controller uses it too (trusting the certificate file: controller.janus.wss).
    assert settings.janus.api_url == settings.janus.browser_url == "wss://192.0.2.10:8989"


def test_plain_ws_kept_on_a_private_address_for_the_controller(cert: TestCert) -> None:
    tls = _files(cert, ip="192.0.2.11", port=9443, plain_ws=True)
    janus = {**JANUS, "ws_ip": "172.30.57.1", "tls": tls}
    ws = _websockets(janus)
    assert (ws["general.ws"], ws["general.ws_ip"], ws["general.ws_port"]) == ("true", '"172.30.57.1"', "8188")
    assert (ws["general.wss_ip"], ws["general.wss_port"]) == ('"192.0.2.11"', "9443")
    settings = Settings.model_validate({"janus": janus}).janus
    assert settings.api_url == "ws://172.30.57.1:8188"
    assert settings.browser_url == "wss://192.0.2.11:9443"
    named = Settings.model_validate({"janus": {**janus, "tls": {**tls, "host": "pbx.example.com"}}})
    assert named.janus.browser_url == "wss://pbx.example.com:9443"


def test_the_page_may_connect_to_janus_over_wss_only(cert: TestCert) -> None:
    settings = Settings.model_validate({"janus": {**JANUS, "tls": _files(cert)}})
    csp = content_security_policy(settings.janus, "192.0.2.10:8443")
    connect = next(part for part in csp.split("; ") if part.startswith("connect-src "))
    assert "wss://192.0.2.10:8989" in connect.split()
    assert "ws://192.0.2.10:8188" not in connect.split()


def test_api_tls_loads_with_its_own_listener(tmp_path: Path, cert: TestCert) -> None:
    settings = _load(tmp_path, {"api": {"host": "172.30.57.10", "tls": _files(cert, host="0.0.0.0")}})
    tls = settings.api.tls
    assert tls is not None
    assert (tls.host, tls.port, tls.cert_file) == ("0.0.0.0", 8443, cert.cert)


@pytest.mark.parametrize("section", ["api", "janus"])
def test_a_missing_certificate_names_the_field(tmp_path: Path, cert: TestCert, section: str) -> None:
    missing = tmp_path / "nowhere" / "cert.pem"
    base: dict[str, Any] = JANUS if section == "janus" else {}
    data = {section: {**base, "tls": _files(cert, cert_file=str(missing))}}
    with pytest.raises(SettingsError, match=rf"{section}\.tls\.cert_file: .*{missing} is not readable"):
        _load(tmp_path, data)


@pytest.mark.parametrize("field", ["cert_file", "key_file"])
def test_both_files_are_required(tmp_path: Path, cert: TestCert, field: str) -> None:
    files = _files(cert)
    del files[field]
    with pytest.raises(SettingsError, match=rf"api\.tls\.{field}: Field required"):
        _load(tmp_path, {"api": {"tls": files}})


def test_files_that_are_not_pem_are_refused(tmp_path: Path, cert: TestCert) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a certificate\n")
    with pytest.raises(SettingsError, match=r"api\.tls\.cert_file: .*holds no PEM certificate"):
        _load(tmp_path, {"api": {"tls": _files(cert, cert_file=str(text))}})
    with pytest.raises(SettingsError, match=r"api\.tls\.key_file: .*holds no PEM private key"):
        _load(tmp_path, {"api": {"tls": _files(cert, key_file=str(text))}})
    # The certificate where the key should be: it holds no key either.
    with pytest.raises(SettingsError, match=r"api\.tls\.key_file: .*holds no PEM private key"):
        _load(tmp_path, {"api": {"tls": _files(cert, key_file=str(cert.cert))}})


def test_a_key_of_another_certificate_is_refused(tmp_path: Path, cert: TestCert, other: TestCert) -> None:
    with pytest.raises(SettingsError, match=r"api\.tls: .*is not the key of cert_file"):
        _load(tmp_path, {"api": {"tls": _files(cert, key_file=str(other.key))}})


def test_an_encrypted_key_is_refused_without_a_prompt(tmp_path: Path, cert: TestCert) -> None:
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n")
    with pytest.raises(SettingsError, match=r"api\.tls\.key_file: .*is an encrypted key"):
        _load(tmp_path, {"api": {"tls": _files(cert, key_file=str(encrypted))}})


def test_listener_ports_must_differ(tmp_path: Path, cert: TestCert) -> None:
    with pytest.raises(SettingsError, match=r"api: .*tls\.port: 8080 is the plain listener's port"):
        _load(tmp_path, {"api": {"port": 8080, "tls": _files(cert, port=8080)}})
    with pytest.raises(SettingsError, match=r"janus: .*http_port, admin_port, tls\.port must differ"):
        _load(tmp_path, {"janus": {**JANUS, "tls": _files(cert, port=8088)}})
    # The plain WebSocket is off: its port is free for WSS.
    assert _load(tmp_path, {"janus": {**JANUS, "tls": _files(cert, port=8188)}}).janus.tls is not None
    with pytest.raises(SettingsError, match=r"janus: .*ws_port, tls\.port must differ"):
        _load(tmp_path, {"janus": {**JANUS, "tls": _files(cert, port=8188, plain_ws=True)}})


def test_wss_port_inside_the_rtp_range_names_the_field(cert: TestCert) -> None:
    settings = Settings.model_validate({"janus": {**JANUS, "tls": _files(cert, port=25000)}})
    with pytest.raises(SettingsError, match=r"^janus\.tls\.port: 25000 lies inside the RTP range"):
        render_janus(settings)
