"""Janus's WebSocket API over TLS (``janus.tls``): the real Janus (Debian's) runs the rendered WSS config with
a certificate ``deploy/tls-cert`` made, and clients on loopback observe it.

A client trusting that certificate opens ``wss://`` with the ``janus-protocol`` subprotocol and ``create``
gets ``success``; the plain WebSocket port is closed; TLS 1.0/1.1 are refused (the rendered cipher list),
TLS 1.2 is not. With the controller on HTTPS beside it, the page's path works end to end: the controller's
own session reaches Janus over WSS (``/readyz``), ``POST /v1/webrtc/session`` answers a ``wss://`` URL, and
that URL with the session's token creates a Janus session.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.controllerkit import running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.januskit import ADMIN_SECRET, JanusProcess, free_ports, requires_janus, running_janus
from tests.tlskit import TestCert, make_cert, old_tls_client

pytestmark = requires_janus


def _wss(cert: TestCert, **more: Any) -> dict[str, Any]:
    """``janus.tls`` with ``cert`` on a free loopback port (Janus takes no port 0)."""
    return {"cert_file": str(cert.cert), "key_file": str(cert.key), "port": free_ports(1)[0], **more}


async def _create(url: str, cert: TestCert, token: str | None = None) -> dict[str, Any]:
    """A Janus ``create`` over WSS (the page's janus.js does the same first)."""
    body: dict[str, Any] = {"janus": "create", "transaction": secrets.token_hex(6)}
    if token is not None:
        body["token"] = token
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.ws_connect(url, protocols=("janus-protocol",), ssl=cert.trusting()) as ws,
    ):
        assert ws.protocol == "janus-protocol"
        await ws.send_json(body)
        async with asyncio.timeout(5):
            reply: dict[str, Any] = await ws.receive_json()
    assert reply["transaction"] == body["transaction"], reply
    return reply


async def _handshake(port: int, context: ssl.SSLContext) -> str:
    async with asyncio.timeout(5):
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    version: str = writer.get_extra_info("ssl_object").version()
    writer.close()
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        await writer.wait_closed()
    return version


async def test_wss_create_succeeds_and_plain_ws_is_off(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    async with running_janus(tmp_path / "janus", token_auth=False, tls=_wss(cert)) as janus:
        assert janus.wss_url is not None
        reply = await _create(janus.wss_url, cert)
        assert reply["janus"] == "success", reply
        assert isinstance(reply["data"]["id"], int)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", janus.settings.janus.ws_port)
        # A client that trusts only the system's CAs does not get past the self-signed certificate.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with aiohttp.ClientSession() as http, http.ws_connect(janus.wss_url):
                pass
        port = int(janus.wss_url.rsplit(":", 1)[1])
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await _handshake(port, old_tls_client(ssl.TLSVersion.TLSv1_1))
        assert await _handshake(port, old_tls_client(ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"


def _controller_janus(janus: JanusProcess) -> dict[str, Any]:
    """The controller's ``janus`` section for this Janus, with the browser users' directory on."""
    section = {**janus.settings.janus.model_dump(mode="json"), "admin_secret": ADMIN_SECRET}
    section["directory"] = {"enabled": True, "password": "directory-password-1"}
    return section


async def test_the_page_gets_a_wss_url_that_works_from_an_https_controller(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    api_tls = {"cert_file": str(cert.cert), "key_file": str(cert.key), "port": 0}
    async with (
        running_janus(tmp_path / "janus", tls=_wss(cert)) as janus,  # token auth on, WSS only
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, api={"tls": api_tls}, janus=_controller_janus(janus)) as rc,
    ):
        trusted = cert.trusting()

        async def ready() -> dict[str, Any]:
            async with rc.http.get(rc.secure_base + "/readyz", ssl=trusted) as response:
                body: dict[str, Any] = await response.json()
                return body

        async with asyncio.timeout(15):
            while not (body := await ready())["ready"]:  # noqa: ASYNC110 - polls the controller over HTTPS
                await asyncio.sleep(0.1)
        assert body["janus"]["healthy"] is True  # the controller's own session, over WSS

        async with rc.http.post(rc.secure_base + "/v1/webrtc/session", json={}, ssl=trusted) as response:
            session = await response.json()
        assert response.status == 201, session
        assert session["janus_url"] == janus.wss_url
        created = await _create(session["janus_url"], cert, session["janus_token"])
        assert created["janus"] == "success", created
        refused = await _create(session["janus_url"], cert, "not-a-token")
        assert refused["error"]["code"] == 403  # token auth still holds over WSS
        async with rc.http.get(rc.secure_base + "/phone", ssl=trusted) as page:
            csp = page.headers["Content-Security-Policy"]
        assert janus.wss_url in csp.replace(";", " ").split()
