"""The /phone demo page in a real headless Chromium, calling through a real Janus to a SIP peer.

ICE does not work over loopback, so Janus, Chromium and the SIP peer run in a network namespace
(``tests/netnskit.py``). The SIP peer is sipp with ``tests/sipp/uas_register_echo.xml`` (REGISTER → 200,
INVITE → 200, RTP echo). This test's web server runs on the host end of the veth and serves the page
(``controller.api.phone``) plus **stand-ins** for ``POST /v1/webrtc/session`` (contract 3; it adds a real
Janus token with the Admin API ``add_token``) and ``GET /v1/events`` (it pushes a transcript turn shaped as
``controller.feed`` sends it). Chromium is Debian's (``/usr/bin/chromium``, never downloaded) with a fake
microphone, started through ``ip netns exec`` by a wrapper script.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from controller.api.phone import add_phone_routes, janus_ws_url
from controller.janus.settings import JanusSettings
from controller.render.janus import render_janus
from controller.settings import Settings
from tests import netnskit

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "tests" / "sipp" / "uas_register_echo.xml"
ADMIN_SECRET = secrets.token_hex(8)
TOKEN = secrets.token_urlsafe(12)
FEED_TOKEN = secrets.token_urlsafe(12)
SIP_PORT, SIP_MEDIA_PORT = 5060, 6000  # 5060: the dialled sip:<n>@<domain> has no port
WAIT_MS = 20_000
CONSOLE: list[str] = []  # the page's console, shown when a wait fails

try:
    from playwright.async_api import Page, async_playwright
except ImportError:  # pragma: no cover - the dev extra brings it
    async_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    netnskit.skip_reason() is not None
    or async_playwright is None
    or not all(map(shutil.which, ("janus", "sipp")))
    or not os.path.exists(CHROMIUM),
    reason=netnskit.skip_reason() or "needs playwright (dev extra), janus, sipp (sip-tester) and chromium",
)


@dataclass
class StandIns:
    """The controller's session and feed endpoints, as contract 3 and controller/feed.py describe them."""

    janus: JanusSettings
    sip_proxy: str
    feeds: list[web.WebSocketResponse] = field(default_factory=list)
    janus_tokens: list[str] = field(default_factory=list)

    async def session(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            body = {"error": {"status": 401, "field": "Authorization", "reason": "invalid bearer token"}}
            return web.json_response(body, status=401, headers={"WWW-Authenticate": "Bearer"})
        token = secrets.token_hex(16)
        admin = f"http://{self.janus.admin_ip}:{self.janus.admin_port}/admin"
        add = {"janus": "add_token", "token": token, "plugins": ["janus.plugin.sip"], "transaction": "t1"}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.post(admin, json={**add, "admin_secret": ADMIN_SECRET}) as resp,
        ):
            reply = await resp.json(content_type=None)
        assert reply["janus"] == "success", reply
        self.janus_tokens.append(token)
        domain = self.janus.listen_ip
        user = "webrtc-" + secrets.token_hex(6)
        sip = {"username": user, "password": secrets.token_hex(8), "proxy": f"sip:{self.sip_proxy}"}
        sip |= {"identity": f"sip:{user}@{domain}", "domain": domain}
        return web.json_response(
            {
                "janus_url": janus_ws_url(self.janus),
                "janus_token": token,
                "sip": sip,
                "feed_token": FEED_TOKEN,
                "extensions": [{"destination": "7001", "agent": "concierge"}],
                "expires_at": "2099-01-01T00:00:00Z",
            },
            status=201,
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("access_token") != FEED_TOKEN:
            return web.json_response({"error": {"status": 401, "field": "access_token"}}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.feeds.append(ws)
        async for _ in ws:
            pass
        return ws

    async def transcript(self, call_id: str, caller: str, agent: str) -> None:
        """One transcript turn on every open feed, as controller.feed encodes an AudioStreamMessage."""
        message = {"type": "transcript", "turn": 1, "caller": caller, "agent": agent}
        event = {"type": "audio_stream_message", "node": "fs1", "ts": 1.0, "call_id": call_id}
        event |= {"uuid": call_id, "kind": "json", "data": json.dumps(message), "message": message}
        for ws in self.feeds:
            await ws.send_str(json.dumps(event))


def _janus_settings(ns: netnskit.Netns) -> Settings:
    return Settings.model_validate(
        {
            "janus": {
                "enabled": True,
                "listen_ip": ns.ns_ip,
                "admin_ip": ns.ns_ip,
                "admin_secret": ADMIN_SECRET,
                "sip_proxy": f"{ns.ns_ip}:{SIP_PORT}",
                "sip_local_ip": ns.ns_ip,
                "rtp_start": 20000,
                "rtp_end": 20999,
                "nat": {"ice_enforce_list": [ns.ns_if]},
            }
        }
    )


def _tail(log: Path, size: int = 3000) -> str:
    return log.read_text(errors="replace")[-size:]


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{_tail(p, 2500)}" for p in sorted(tmp_path.glob("*.log")))


async def _wait_http(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(15):
        while True:
            assert process.returncode is None, f"exited {process.returncode}:\n{_tail(log)}"
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def _start_peers(ns: netnskit.Netns, tmp_path: Path, settings: Settings) -> None:
    """Janus (rendered config) and the sipp UAS, both inside the namespace."""
    conf = tmp_path / "janus-conf"
    conf.mkdir()
    for name, text in render_janus(settings).items():
        (conf / name).write_text(text)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    janus_log = tmp_path / "janus.log"
    with janus_log.open("wb") as out:
        janus = await ns.spawn(
            "janus", f"--configs-folder={conf}", stdout=out, stderr=subprocess.STDOUT, env=env
        )
    with (tmp_path / "sipp.log").open("wb") as out:
        await ns.spawn(
            "sipp", "-sf", str(SCENARIO), "-i", ns.ns_ip, "-p", str(SIP_PORT), "-mi", ns.ns_ip,
            "-mp", str(SIP_MEDIA_PORT), "-rtp_echo", "-nostdin", "-timeout", "120s",
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
        )  # fmt: skip
    j = settings.janus
    await _wait_http(f"http://{j.listen_ip}:{j.http_port}/janus/info", janus, janus_log)


@contextlib.asynccontextmanager
async def _serve(ns: netnskit.Netns, stand_ins: StandIns) -> AsyncIterator[str]:
    app = web.Application()
    add_phone_routes(app, stand_ins.janus)
    app.router.add_post("/v1/webrtc/session", stand_ins.session)
    app.router.add_get("/v1/events", stand_ins.events)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, ns.host_ip, 0).start()
        yield f"http://{ns.host_ip}:{runner.addresses[0][1]}"
    finally:
        for ws in stand_ins.feeds:
            await ws.close()
        await runner.cleanup()


def _chromium_wrapper(ns: netnskit.Netns, tmp_path: Path) -> Path:
    """An executable running Debian's Chromium inside the namespace (exec keeps Playwright's PID, pipes)."""
    wrapper = tmp_path / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns.name} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


async def _wait(page: Page, selector: str, tmp_path: Path) -> None:
    """Wait (bounded) for ``selector``; on timeout fail with what the page and the peers said."""
    try:
        await page.wait_for_selector(selector, timeout=WAIT_MS)
    except Exception as exc:
        states = await page.evaluate(
            "['error','reg-state','call-state','ice-state','feed-state']"
            ".map(id => id + '=' + document.getElementById(id).textContent).join('\\n')"
        )
        logs = _logs(tmp_path)
        console = "\n".join(CONSOLE[-60:])
        raise AssertionError(
            f"{selector} did not show up:\n{states}\n{logs}\n--- console\n{console}"
        ) from exc


async def _sign_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/phone", timeout=WAIT_MS)
    await page.fill("#token", "not-the-token")
    await page.click("#connect")
    await page.wait_for_selector("#error:has-text('refused the API token (401')", timeout=WAIT_MS)
    await page.fill("#token", TOKEN)
    await page.click("#connect")
    await page.wait_for_selector("#reg-state[data-state=registered]", timeout=WAIT_MS)


async def test_browser_registers_calls_an_agent_and_hangs_up(tmp_path: Path) -> None:
    async with netnskit.network_namespace() as ns:
        settings = _janus_settings(ns)
        await _start_peers(ns, tmp_path, settings)
        stand_ins = StandIns(settings.janus, settings.janus.sip_proxy)
        async with _serve(ns, stand_ins) as base:
            await _run_browser(ns, tmp_path, base, stand_ins)


async def _run_browser(ns: netnskit.Netns, tmp_path: Path, base: str, stand_ins: StandIns) -> None:
    assert async_playwright is not None
    async with async_playwright() as pw:
        # getUserMedia needs a secure context; the page is plain http on the veth address.
        secure = f"--unsafely-treat-insecure-origin-as-secure={base}"
        browser = await pw.chromium.launch(
            executable_path=str(_chromium_wrapper(ns, tmp_path)),
            args=[*CHROMIUM_ARGS, secure],
            timeout=WAIT_MS,
        )
        try:
            context = await browser.new_context(permissions=["microphone"])
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: CONSOLE.append(f"{msg.type}: {msg.text}"))
            await _sign_in(page, base)
            assert await page.evaluate("sessionStorage.getItem('switchyard.token')") == TOKEN
            await page.click("#extensions button[data-destination='7001']")
            await _wait(page, "#call-state[data-state=connected]", tmp_path)
            # Media really flows: ICE between Chromium and Janus inside the namespace.
            await page.wait_for_selector(
                "#ice-state[data-state=connected], #ice-state[data-state=completed]", timeout=WAIT_MS
            )
            await stand_ins.transcript("call-1", "I would like a table for two", "At what time?")
            await page.wait_for_selector("#transcript li.agent:has-text('At what time?')", timeout=WAIT_MS)
            assert await page.inner_text("#transcript li.caller") == "Caller: I would like a table for two"
            artifacts = REPO / "artifacts"
            artifacts.mkdir(exist_ok=True)
            await page.screenshot(path=str(artifacts / "phone-call.png"), full_page=True, timeout=WAIT_MS)
            await page.click("#hangup")
            await _wait(page, "#call-state[data-state=ended]", tmp_path)
            assert await page.is_hidden("#error"), await page.inner_text("#error")
            assert errors == []
        finally:
            await browser.close()
