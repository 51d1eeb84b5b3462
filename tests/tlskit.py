"""Test certificates made by the deployment's own script (``deploy/tls-cert``), and TLS client contexts.

``make_cert(tmp_path)`` runs the script on an env file of the test's (``PBX_IP`` 127.0.0.1, ``SIP_DOMAIN``
``localhost`` unless given) into a directory of its own, so every TLS test also checks that the script's
certificate works with the servers it is made for (Python's ``ssl`` in the controller, libwebsockets in
Janus). ``old_tls_client()`` is a client that offers only TLS 1.0 and 1.1: OpenSSL 3 refuses those at its
default security level, so it is lowered to 0 on the client alone, leaving the refusal to the server.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["SCRIPT", "TestCert", "make_cert", "old_tls_client", "run_script"]

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "tls-cert"


@dataclass(frozen=True)
class TestCert:
    """A certificate and key the script made."""

    __test__ = False  # not a pytest class
    cert: Path
    key: Path

    def trusting(self) -> ssl.SSLContext:
        """A client context that trusts this certificate alone (host names checked)."""
        return ssl.create_default_context(cafile=str(self.cert))

    def spki(self) -> str:
        """Base64 of the SHA-256 of its public key (Chromium's ``--ignore-certificate-errors-spki-list``)."""
        der = ssl.PEM_cert_to_DER_cert(self.cert.read_text())
        key = x509.load_der_x509_certificate(der).public_key()
        info = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(info).digest()).decode()


def run_script(env_file: Path, directory: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``deploy/tls-cert ENV_FILE [DIR]`` (never raises on its exit status)."""
    args = [str(SCRIPT), str(env_file)] + ([str(directory)] if directory is not None else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def make_cert(workdir: Path, ip: str = "127.0.0.1", domain: str = "localhost") -> TestCert:
    """A fresh self-signed certificate for ``ip`` and ``domain`` in ``workdir/tls``."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = workdir / "tls.env"
    env.write_text(f"PBX_IP={ip}\nSIP_DOMAIN={domain}\n")
    done = run_script(env, workdir / "tls")
    assert done.returncode == 0, done.stderr
    return TestCert(workdir / "tls" / "cert.pem", workdir / "tls" / "key.pem")


def old_tls_client(maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_1) -> ssl.SSLContext:
    """A client offering TLS 1.0 up to ``maximum``, verifying nothing (it is refused before that matters)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():  # the old versions are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    return context
