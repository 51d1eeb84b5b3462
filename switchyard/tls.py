"""TLS for the servers a browser reaches: a certificate and key from files, and the contexts built from them.

A page that asks for the microphone must be a secure context (https, or localhost), and a secure page may
open only ``wss://`` WebSockets: so the controller's page and API (``api.tls``) and Janus's WebSocket API
(``janus.tls``) take a certificate. ``TlsFiles`` is that pair of PEM files, checked when the settings load:
both named, readable, a certificate and an unencrypted private key that belong together. Only TLS 1.2 and
1.3 are spoken (RFC 8996 deprecates 1.0 and 1.1).

``server_context`` is the controller's HTTPS context; ``trusting_context`` is a client's that trusts the
certificate file itself (a self-signed certificate, or a CA-signed chain whose first certificate is then the
trust anchor), with host name checking on.

Exceptions: settings errors are the validators' ``ValueError`` (pydantic names the field); the context
builders raise ``ssl.SSLError`` and ``OSError`` as ``ssl`` does.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Final, Self

from pydantic import Field, field_validator, model_validator

from switchyard.settings import SettingsModel

__all__ = ["AEAD_CIPHERS", "TlsFiles", "server_context", "trusting_context"]

AEAD_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""OpenSSL cipher list of TLS 1.2: forward secrecy and AEAD only. TLS 1.0 and 1.1 have no such suite, so a
server limited to it (Janus's WSS, whose libwebsockets takes a cipher list but no minimum version) speaks
TLS 1.2 or 1.3 only; TLS 1.3's own suites are all AEAD and are not touched by this list."""

_CERTIFICATE: Final = "-----BEGIN CERTIFICATE-----"
_KEYS: Final = tuple(f"-----BEGIN {kind}PRIVATE KEY-----" for kind in ("", "EC ", "RSA "))
_ENCRYPTED: Final = ("-----BEGIN ENCRYPTED PRIVATE KEY-----", "Proc-Type: 4,ENCRYPTED")


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        raise ValueError(f"{path} is not readable ({exc.strerror or exc})") from exc


def _no_passphrase() -> bytes:
    """The passphrase callback: an encrypted key is refused before, so OpenSSL never prompts a terminal."""
    return b""


class TlsFiles(SettingsModel):
    """A server's certificate chain and private key, both PEM files (checked when the settings load)."""

    cert_file: Path = Field(description="PEM certificate, the server's first, then any intermediates")
    key_file: Path = Field(description="PEM private key of that certificate, unencrypted")

    @field_validator("cert_file")
    @classmethod
    def _certificate(cls, path: Path) -> Path:
        if _CERTIFICATE not in _text(path):
            raise ValueError(f"{path} holds no PEM certificate ({_CERTIFICATE})")
        return path

    @field_validator("key_file")
    @classmethod
    def _key(cls, path: Path) -> Path:
        text = _text(path)
        if any(marker in text for marker in _ENCRYPTED):
            raise ValueError(f"{path} is an encrypted key: give it unencrypted (mode 0600)")
        if not any(marker in text for marker in _KEYS):
            raise ValueError(f"{path} holds no PEM private key")
        return path

    @model_validator(mode="after")
    def _pair(self) -> Self:
        try:
            server_context(self)
        except ssl.SSLError as exc:
            raise ValueError(
                f"key_file {self.key_file} is not the key of cert_file {self.cert_file}, or one of them is "
                f"not valid PEM ({exc.reason or exc})"
            ) from exc
        return self


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server's context: TLS 1.2 or 1.3, Python's default (forward-secret, AEAD-first) ciphers."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_file, files.key_file, password=_no_passphrase)
    return context


def trusting_context(cert_file: Path) -> ssl.SSLContext:
    """A client's context trusting ``cert_file`` (its first certificate is a trust anchor), TLS 1.2+."""
    context = ssl.create_default_context(cafile=str(cert_file))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
