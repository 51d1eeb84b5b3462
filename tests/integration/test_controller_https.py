"""The controller over HTTPS (``api.tls``) on loopback, with a certificate ``deploy/tls-cert`` made.

What a client observes: the page, the API and the event feed answer over TLS with that certificate (a client
trusting it alone, host names checked); the HTTPS port answers no plain HTTP; a client offering only TLS 1.0
and 1.1 is refused while the same client allowed TLS 1.2 gets in; the plain listener beside it still serves
the controller's own peers. The compose healthcheck's command (docker-compose.yml) passes against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.controllerkit import RunningController, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.tlskit import TestCert, make_cert, old_tls_client

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[RunningController, TestCert]]:
    cert = make_cert(tmp_path)
    tls = {"cert_file": str(cert.cert), "key_file": str(cert.key), "port": 0}
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, api={"tls": tls}) as rc,
    ):
        yield rc, cert


async def _handshake(port: int, context: ssl.SSLContext) -> str:
    """The TLS version agreed with the HTTPS listener (raises ``ssl.SSLError`` when refused)."""
    async with asyncio.timeout(5):
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        version: str = writer.get_extra_info("ssl_object").version()
        return version
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):  # the server may close first
            await writer.wait_closed()


async def test_page_api_and_feed_answer_over_https(served: tuple[RunningController, TestCert]) -> None:
    rc, cert = served
    trusted = cert.trusting()
    async with rc.http.get(rc.secure_base + "/phone", ssl=trusted) as page:
        assert page.status == 200
        assert page.content_type == "text/html"
        assert "connect-src 'self'" in page.headers["Content-Security-Policy"]
        assert "<html" in (await page.text()).lower()
    async with rc.http.get(rc.secure_base + "/v1/calls", ssl=trusted) as calls:
        assert calls.status == 200, await calls.text()
        assert (await calls.json())["items"] == []
    async with rc.http.get(rc.secure_base + "/v1/calls", ssl=trusted, headers={"Authorization": ""}) as no:
        assert no.status == 401  # the same API, the same tokens
    # The page's feed.js opens wss:// on an https page.
    feed = rc.secure_base.replace("https://", "wss://") + "/v1/events"
    async with rc.http.ws_connect(feed, ssl=trusted, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
        assert not ws.closed
    # A client trusting only the system's CAs refuses the self-signed certificate: trust is what let it in.
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with rc.http.get(rc.secure_base + "/healthz", ssl=ssl.create_default_context()):
            pass


async def test_the_https_port_answers_no_plain_http(served: tuple[RunningController, TestCert]) -> None:
    rc, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", rc.controller.api_tls_port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await reader.read(65536)
    finally:
        writer.close()
    assert not answer.startswith(b"HTTP/"), answer
    # The plain listener beside it (the workers', Janus's and FreeSWITCH's) still speaks plain HTTP.
    async with rc.http.get(rc.base + "/healthz") as plain:
        assert plain.status == 200


async def test_tls_below_1_2_is_refused(served: tuple[RunningController, TestCert]) -> None:
    rc, _ = served
    port = rc.controller.api_tls_port
    # Refused: an alert (protocol version) or, when asyncio's server drops the socket first, a reset.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await _handshake(port, old_tls_client(ssl.TLSVersion.TLSv1_1))
    # The same client, allowed TLS 1.2, gets in: the refusal was the version's.
    assert await _handshake(port, old_tls_client(ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    assert await _handshake(port, served[1].trusting()) == "TLSv1.3"


async def test_the_compose_healthcheck_passes_over_https(served: tuple[RunningController, TestCert]) -> None:
    rc, _ = served
    command = yaml.safe_load(COMPOSE.read_text())["services"]["controller"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python3", "-c"]
    script = command[3]
    assert "https://127.0.0.1:8443/readyz" in script
    ours = script.replace(":8443/", f":{rc.controller.api_tls_port}/")

    def check() -> int:
        done = subprocess.run([sys.executable, "-c", ours], capture_output=True, timeout=10, check=False)
        return done.returncode

    assert await asyncio.to_thread(check) == 0
    # Against the plain listener it fails: it does speak TLS.
    plain = script.replace("127.0.0.1:8443/", f"127.0.0.1:{rc.controller.api_port}/")
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", plain], capture_output=True, timeout=10, check=False
    )
    assert done.returncode != 0
