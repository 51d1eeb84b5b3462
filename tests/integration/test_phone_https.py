"""The /phone page over HTTPS in a real Chromium, registering through the real Janus over WSS.

The browser, Janus and the sipp registrar run in a test namespace (``tests/phonekit.py``); the controller
serves the page over HTTPS on the veth's host address (``api.tls``) and its plain listener beside it; Janus
serves only WSS (``janus.tls``), so the controller's own session uses WSS too. Each server has a certificate
``deploy/tls-cert`` made for its address, which Chromium accepts by public key (a user who accepted the
warnings). Not loopback and not flagged as secure, the https page is a secure context only because of TLS:
it gets the microphone, while the same page from the plain listener gets no ``navigator.mediaDevices``.
When Janus's certificate is not accepted, the page says where to accept it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from controller.settings import Settings
from tests import netnskit, phonekit
from tests.controllerkit import TOKEN, controller_settings, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.phonekit import API_PORT, PhonePage, phone_page
from tests.tlskit import TestCert, make_cert

pytestmark = pytest.mark.skipif(phonekit.skip_reason() is not None, reason=phonekit.skip_reason() or "")

HTTPS_PORT = 8443  # on the veth's host address, which belongs to the test alone
WSS_PORT = 8989
MICROPHONE = """navigator.mediaDevices.getUserMedia({audio: true}).then(stream => {
  const tracks = stream.getAudioTracks().length;
  stream.getTracks().forEach(track => track.stop());
  return tracks;
})"""


def _files(cert: TestCert, port: int) -> dict[str, Any]:
    return {"cert_file": str(cert.cert), "key_file": str(cert.key), "port": port}


@asynccontextmanager
async def _served(tmp_path: Path, trust_janus: bool) -> AsyncIterator[tuple[PhonePage, netnskit.Netns]]:
    """Janus, sipp, the controller and Chromium (trusting the page's certificate, and Janus's if told)."""
    async with netnskit.network_namespace() as ns:
        page_cert = make_cert(tmp_path / "page", ns.host_ip, "phone.test")
        janus_cert = make_cert(tmp_path / "janus-cert", ns.ns_ip, "janus.test")
        sections = phonekit.sections(ns)
        sections["api"]["tls"] = _files(page_cert, HTTPS_PORT)
        sections["janus"]["tls"] = _files(janus_cert, WSS_PORT)  # on listen_ip; plain WS off
        settings = Settings.model_validate(
            controller_settings(("127.0.0.1", 8021, "unused"), tmp_path, **sections)
        )
        assert settings.janus.browser_url == settings.janus.api_url == f"wss://{ns.ns_ip}:{WSS_PORT}"
        await phonekit.start_peers(ns, tmp_path, settings)
        trusted = (page_cert.spki(), janus_cert.spki()) if trust_janus else (page_cert.spki(),)
        async with (
            FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
            running_controller(fs, tmp_path, **sections),
            phone_page(ns, tmp_path, _base(ns), trusted_spki=trusted) as phone,
        ):
            yield phone, ns


def _base(ns: netnskit.Netns) -> str:
    return f"https://{ns.host_ip}:{HTTPS_PORT}"


async def test_the_https_page_gets_the_microphone_and_registers_over_wss(tmp_path: Path) -> None:
    async with _served(tmp_path, trust_janus=True) as (phone, ns):
        await phone.sign_in(_base(ns))  # refused once (401), then registered through Janus's WSS
        page = phone.page
        assert await page.evaluate("[location.protocol, window.isSecureContext]") == ["https:", True]
        assert await page.evaluate(MICROPHONE) == 1
        assert phone.errors() == [phonekit.REFUSED_TOKEN], phone.console
        plain = await page.context.new_page()
        await plain.goto(f"http://{ns.host_ip}:{API_PORT}/phone", timeout=phonekit.WAIT_MS)
        secure, devices = await plain.evaluate("[window.isSecureContext, typeof navigator.mediaDevices]")
        assert (secure, devices) == (False, "undefined")


async def test_an_untrusted_janus_certificate_is_explained_on_the_page(tmp_path: Path) -> None:
    """A WebSocket shows no certificate warning: the page says where to accept the certificate."""
    async with _served(tmp_path, trust_janus=False) as (phone, ns):
        await phone.page.goto(f"{_base(ns)}/phone", timeout=phonekit.WAIT_MS)
        await phone.page.fill("#extension", phonekit.USER)
        await phone.page.fill("#password", TOKEN)
        await phone.page.click("#connect")
        await phone.wait("#reg-state[data-state=failed]")
        error = await phone.page.inner_text("#error")
        assert f"open https://{ns.ns_ip}:{WSS_PORT}/ once and accept it" in error, error
