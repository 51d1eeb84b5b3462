"""``deploy/tls-cert`` (``make up``'s first-run certificate), run for real (bash, openssl) on temp dirs.

It makes a self-signed certificate once, for PBX_IP and SIP_DOMAIN of the env file (and loopback), with a
0600 key; it never overwrites a pair that exists (an earlier run's or the operator's); it refuses half a
pair and values that would smuggle extra names into the certificate.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.tlskit import SCRIPT, make_cert, run_script

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("openssl") is None, reason="needs bash and openssl"
)


def _env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "env"
    path.write_text(text)
    return path


def _names(cert: Path) -> tuple[set[str], set[str]]:
    """The certificate's subjectAltName: (IP addresses, DNS names)."""
    san = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    ips = {str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)}
    return ips, set(san.value.get_values_for_type(x509.DNSName))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_makes_a_certificate_for_the_env_files_names(tmp_path: Path) -> None:
    env = _env(tmp_path, "# comment\nPBX_IP=192.0.2.10\nSIP_DOMAIN=pbx.example.com\nAPI_TOKEN=x\n")
    tls = tmp_path / "tls"
    # A permissive umask: the key is 0600 all the same.
    done = subprocess.run(
        ["bash", "-c", 'umask 000 && exec "$0" "$@"', str(SCRIPT), str(env), str(tls)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cert, key = tls / "cert.pem", tls / "key.pem"
    assert _mode(key) == 0o600
    assert _mode(cert) == 0o644
    assert _names(cert) == ({"192.0.2.10", "127.0.0.1"}, {"pbx.example.com", "localhost"})
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    assert loaded.issuer == loaded.subject  # self-signed
    assert isinstance(loaded.public_key(), ec.EllipticCurvePublicKey)
    usage = loaded.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    days = (loaded.not_valid_after_utc - loaded.not_valid_before_utc).days
    assert 365 <= days <= 825  # Apple's limit for TLS server certificates
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)  # they belong together
    assert sorted(p.name for p in tls.iterdir()) == ["cert.pem", "key.pem"]  # no temp files left


def test_an_ipv6_pbx_address_is_named(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, "2001:db8::10", "pbx.example.com")
    ips, _ = _names(cert.cert)
    assert ipaddress.ip_address("2001:db8::10") in {ipaddress.ip_address(ip) for ip in ips}


def test_an_existing_pair_is_kept(tmp_path: Path) -> None:
    env = _env(tmp_path, "PBX_IP=192.0.2.10\nSIP_DOMAIN=pbx.example.com\n")
    tls = tmp_path / "tls"
    assert run_script(env, tls).returncode == 0
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tls.iterdir()}
    env.write_text("PBX_IP=192.0.2.99\nSIP_DOMAIN=other.example.com\n")
    again = run_script(env, tls)
    assert again.returncode == 0, again.stderr
    assert "keeping" in again.stdout
    assert "does not name PBX_IP 192.0.2.99" in again.stderr  # said, but kept
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tls.iterdir()} == before


def test_the_operators_own_pair_is_never_replaced(tmp_path: Path) -> None:
    own = make_cert(tmp_path / "own", "198.51.100.7", "phones.example.org")
    tls = tmp_path / "tls"
    tls.mkdir()
    shutil.copy(own.cert, tls / "cert.pem")
    shutil.copy(own.key, tls / "key.pem")
    env = _env(tmp_path, "PBX_IP=198.51.100.7\nSIP_DOMAIN=pbx.example.com\n")
    done = run_script(env, tls)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # it names PBX_IP: nothing to say
    assert (tls / "cert.pem").read_bytes() == own.cert.read_bytes()
    assert (tls / "key.pem").read_bytes() == own.key.read_bytes()


@pytest.mark.parametrize("present", ["cert.pem", "key.pem"])
def test_half_a_pair_is_refused(tmp_path: Path, present: str) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / present).write_text("left over\n")
    done = run_script(_env(tmp_path, "PBX_IP=192.0.2.10\nSIP_DOMAIN=pbx.example.com\n"), tls)
    assert done.returncode == 1
    assert "holds only one of cert.pem and key.pem" in done.stderr
    assert [p.name for p in tls.iterdir()] == [present]
    assert (tls / present).read_text() == "left over\n"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("PBX_IP=change-me\nSIP_DOMAIN=pbx.example.com\n", "PBX_IP 'change-me' is not an IP address"),
        ("SIP_DOMAIN=pbx.example.com\n", "PBX_IP '' is not an IP address"),
        ("PBX_IP=192.0.2.10\nSIP_DOMAIN=a.example,DNS:bank.example\n", "is not a host name"),
        ("PBX_IP=192.0.2.10,DNS:bank.example\nSIP_DOMAIN=pbx.example.com\n", "is not an IP address"),
    ],
)
def test_values_that_are_not_an_address_and_a_name_are_refused(
    tmp_path: Path, env: str, message: str
) -> None:
    tls = tmp_path / "tls"
    done = run_script(_env(tmp_path, env), tls)
    assert done.returncode == 1
    assert message in done.stderr
    assert not tls.exists()


def test_the_directory_comes_from_tls_dir_else_deploy_tls(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen"
    env = _env(tmp_path, f"PBX_IP=192.0.2.10\nSIP_DOMAIN=pbx.example.com\nTLS_DIR={chosen}\n")
    assert run_script(env).returncode == 0
    assert (chosen / "cert.pem").is_file()
    env.write_text("PBX_IP=192.0.2.10\nSIP_DOMAIN=pbx.example.com\n")
    work = tmp_path / "checkout"
    work.mkdir()
    done = subprocess.run(
        [str(SCRIPT), str(env)], cwd=work, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(work / "deploy" / "tls")) == ["cert.pem", "key.pem"]
