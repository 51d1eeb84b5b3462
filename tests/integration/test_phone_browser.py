"""The /phone demo page in a real headless Chromium, through a real Janus, served by the real controller.

ICE does not work over loopback, so Janus, Chromium and the SIP peer run in a network namespace
(``tests/netnskit.py``); the controller listens on the host end of the veth, where the page and Janus's
event handler reach it. The SIP peer standing in for FreeSWITCH's SIP side is sipp with
``tests/sipp/uas_register_echo.xml`` (REGISTER → 200, INVITE → 200 with RTP echo, INFO → 200). The
controller's FreeSWITCH is the emulator: once the browser's call is up, the emulator gets the same call
(the browser's SIP user, its SIP Call-ID, the Janus SIP plugin's User-Agent), routes it to an agent on a
stand-in worker, which says one transcript turn. So the page's credentials (``POST /v1/webrtc/session``:
a Janus token added through the Admin API, a SIP user), its transcript (``/v1/events`` with the feed token)
and the call's CDR (``webrtc`` type, linked through Janus's own events) all come from the controller.
The page reaches the controller through a TCP relay (``tests/tcpproxy.py``); cutting its connections
mid-call checks that the feed reconnects and the next transcript turn still arrives.

Chromium is Debian's (``/usr/bin/chromium``, never downloaded) with a fake microphone, started through
``ip netns exec`` by a wrapper script.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from controller.settings import Settings
from tests import netnskit
from tests.controllerkit import (
    TOKEN,
    RunningController,
    StandInSession,
    StandInWorker,
    controller_settings,
    register_worker,
    running_controller,
)
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.januskit import start_janus_in
from tests.netnskit import stop_process
from tests.tcpproxy import TcpRelay, tcp_relay

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "tests" / "sipp" / "uas_register_echo.xml"
ADMIN_SECRET = secrets.token_hex(12)
EVENTS_PASSWORD = secrets.token_hex(12)
DIRECTORY_PASSWORD = secrets.token_hex(12)
API_PORT = 8080  # on the veth's host address, which belongs to this test alone
SIP_PORT, SIP_MEDIA_PORT = 5060, 6000
AGENT_SAYS = "Hello from the concierge"
WAIT_MS = 20_000
# Longer than SIP's transaction timeout (Timer F, 64 * T1 = 32 s), after which the plugin reports 408: a
# REGISTER nobody answers then shows as the page's "registration failed", with its code, not as a timeout.
REGISTER_WAIT_MS = 40_000
CONSOLE: list[str] = []  # the page's console and uncaught errors, shown when a wait fails
REFUSED_TOKEN = "error: Failed to load resource: the server responded with a status of 401 (Unauthorized)"

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


def _sections(ns: netnskit.Netns) -> dict[str, Any]:
    """The controller's settings sections: API on the veth, Janus in the namespace, one agent route."""
    janus = {
        "enabled": True,
        "listen_ip": ns.ns_ip,
        "admin_ip": ns.ns_ip,
        "admin_secret": ADMIN_SECRET,
        "sip_proxy": f"{ns.ns_ip}:{SIP_PORT}",
        "sip_local_ip": ns.ns_ip,
        "rtp_start": 20000,
        "rtp_end": 20999,
        "nat": {"ice_enforce_list": [ns.ns_if]},
        "events": {
            "enabled": True,
            "url": f"http://{ns.host_ip}:{API_PORT}/janus/events",
            "password": EVENTS_PASSWORD,
        },
        "directory": {"enabled": True, "password": DIRECTORY_PASSWORD},
        "reap_interval_s": 0,
    }
    return {
        "api": {"host": ns.host_ip, "port": API_PORT},
        "janus": janus,
        "calls": {"routes": [{"destination": "7001", "action": "agent concierge"}]},
    }


def _logs(tmp_path: Path) -> str:
    """The tails of Janus's log (debug level 5: the SIP plugin's registration steps), sipp's output and
    sipp's message trace (what reached the SIP peer)."""
    tails = {"janus.log": 8000, "sipp.log": 2500, "sipp.msg": 4000}
    return "\n".join(
        f"--- {name}\n{(tmp_path / name).read_text(errors='replace')[-size:]}"
        for name, size in tails.items()
        if (tmp_path / name).exists()
    )


async def _start_peers(ns: netnskit.Netns, tmp_path: Path, settings: Settings) -> asyncio.subprocess.Process:
    """Janus (rendered config) and the sipp UAS, both inside the namespace; returns sipp."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    with (tmp_path / "sipp.log").open("wb") as out:
        sipp = await ns.spawn(
            "sipp", "-sf", str(SCENARIO), "-i", ns.ns_ip, "-p", str(SIP_PORT), "-mi", ns.ns_ip,
            "-mp", str(SIP_MEDIA_PORT), "-rtp_echo", "-nostdin", "-timeout", "120s",
            "-trace_msg", "-message_file", str(tmp_path / "sipp.msg"),
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
        )  # fmt: skip
    await start_janus_in(ns, settings, tmp_path, debug_level=5)
    return sipp


async def _says_a_turn(session: StandInSession) -> None:
    """The stand-in worker's agent: one transcript turn naming the stream's caller."""
    assert session.ws is not None
    assert session.metadata is not None
    turn = {
        "type": "transcript",
        "turn": 1,
        "caller": f"I am {session.metadata['caller']}",
        "agent": AGENT_SAYS,
    }
    await session.ws.send_str(json.dumps(turn))


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


async def _wait(page: Page, selector: str, tmp_path: Path, timeout_ms: int = WAIT_MS) -> None:
    """Wait (bounded) for ``selector``; on timeout fail with what the page and the peers said."""
    try:
        await page.wait_for_selector(selector, timeout=timeout_ms)
    except Exception as exc:
        states = await page.evaluate(
            "['error','reg-state','call-state','ice-state','feed-state','sip-call-id']"
            ".map(id => id + '=' + document.getElementById(id).textContent).join('\\n')"
        )
        console = "\n".join(CONSOLE[-60:])
        raise AssertionError(
            f"{selector} did not show up:\n{states}\n{_logs(tmp_path)}\n--- console\n{console}"
        ) from exc


async def _sign_in(page: Page, base: str, tmp_path: Path) -> None:
    await page.goto(f"{base}/phone", timeout=WAIT_MS)
    await page.fill("#token", "not-the-token")
    await page.click("#connect")
    await _wait(page, "#error:has-text('refused the API token (401')", tmp_path)
    await page.fill("#token", TOKEN)
    await page.click("#connect")
    await _wait(
        page, "#reg-state[data-state=registered], #reg-state[data-state=failed]", tmp_path, REGISTER_WAIT_MS
    )
    state = await page.get_attribute("#reg-state", "data-state")
    assert state == "registered", await page.inner_text("#error")


async def _until_transcript(ws: aiohttp.ClientWebSocketResponse, caller: str) -> None:
    async with asyncio.timeout(10):
        while True:
            event = json.loads(await ws.receive_str())
            if event.get("message", {}).get("caller") == f"I am {caller}":
                return


async def test_browser_registers_calls_an_agent_and_hangs_up(tmp_path: Path) -> None:
    async with netnskit.network_namespace() as ns:
        sections = _sections(ns)
        settings = Settings.model_validate(
            controller_settings(("127.0.0.1", 8021, "unused"), tmp_path, **sections)
        )
        sipp = await _start_peers(ns, tmp_path, settings)
        async with (
            FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
            StandInWorker(on_metadata=_says_a_turn) as worker,
            running_controller(fs, tmp_path, **sections) as rc,
        ):
            await register_worker(rc, "w1", worker.url)
            async with tcp_relay(ns.host_ip, (ns.host_ip, API_PORT)) as relay:
                own = await _run_browser(ns, tmp_path, rc, fs, Relayed(relay, worker))
            await rc.call_ended(own, timeout=10)
            record = await rc.controller.store.get(own)
        await stop_process(sipp)  # flushes its message trace
    trace = (tmp_path / "sipp.msg").read_text(errors="replace")
    assert "Signal=5" in trace, "the keypad's 5 did not reach the SIP peer"
    assert record is not None
    assert record.call_type == "webrtc"
    assert record.webrtc is not None  # linked through Janus's "calling" event, posted to /janus/events
    assert record.route == "agent concierge"


@dataclass
class Relayed:
    """The page reaches the controller through ``relay`` (to cut its feed); ``worker`` speaks the turns."""

    relay: TcpRelay
    worker: StandInWorker

    def base(self, ns: netnskit.Netns) -> str:
        return f"http://{ns.host_ip}:{self.relay.port}"


async def _feed_comes_back(page: Page, tmp_path: Path, via: Relayed, own: str) -> None:
    """Cut the page's connections to the controller: the feed reconnects and the next turn shows."""
    assert via.relay.cut() >= 1
    await _wait(page, "#feed-state:has-text('reconnecting')", tmp_path)
    await _wait(page, "#feed-state:text-is('event feed: connected')", tmp_path)
    session = via.worker.sessions[own]
    assert session.ws is not None
    turn = {"type": "transcript", "turn": 2, "caller": "Are you still there?", "agent": "Still here."}
    await session.ws.send_str(json.dumps(turn))
    await _wait(page, "#transcript li.agent:has-text('Still here.')", tmp_path)


async def _janus_refuses_a_revoked_token(
    page: Page, tmp_path: Path, rc: RunningController, before: set[str]
) -> None:
    """Revoke the page's Janus token (the one added since ``before``, as the identity's expiry does): the
    next call is refused by Janus itself, which the page shows, and the call ends."""
    assert rc.controller.janus is not None
    admin = rc.controller.janus.admin
    added = set(await admin.list_tokens()) - before
    assert len(added) == 1
    await admin.remove_token(added.pop())
    await page.click("#extensions button[data-destination='7001']")
    await _wait(page, '#error:has-text("Janus refused the SIP plugin\'s call: 403")', tmp_path)
    await _wait(page, "#call-state[data-state=failed]", tmp_path)


async def _run_browser(
    ns: netnskit.Netns, tmp_path: Path, rc: RunningController, fs: FreeSwitchEmulator, via: Relayed
) -> str:
    """Sign in, call the agent, follow the transcript (across a cut feed), press 5, mute, hang up, call
    again with a revoked token; the emulated call's uuid."""
    assert async_playwright is not None
    base = via.base(ns)
    async with async_playwright() as pw, rc.http.ws_connect(rc.base + "/v1/events") as everything:
        # getUserMedia needs a secure context; the page is plain http on the veth address.
        browser = await pw.chromium.launch(
            executable_path=str(_chromium_wrapper(ns, tmp_path)),
            args=[*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={base}"],
            timeout=WAIT_MS,
        )
        try:
            page = await (await browser.new_context(permissions=["microphone"])).new_page()
            page.on("pageerror", lambda exc: CONSOLE.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: CONSOLE.append(f"{msg.type}: {msg.text}"))
            assert rc.controller.janus is not None
            tokens = set(await rc.controller.janus.admin.list_tokens())
            await _sign_in(page, base, tmp_path)
            await page.click("#extensions button[data-destination='7001']")
            await _wait(page, "#call-state[data-state=connected]", tmp_path)
            await _wait(page, "#ice-state[data-state=connected], #ice-state[data-state=completed]", tmp_path)
            user = (await page.inner_text("#identity")).removeprefix("sip:").partition("@")[0]
            call_id = await page.inner_text("#sip-call-id")
            assert user.startswith("webrtc-")
            # A desk phone's call to the same agent: its transcript must not reach this page.
            await fs.inject_inbound_call(caller="1000", destination="7001")
            await _until_transcript(everything, "1000")
            own = await fs.inject_inbound_call(
                caller=user, destination="7001", sip_domain=rc.controller.settings.sip.domain,
                user_agent="Switchyard-Janus-SIP", variables={"sip_call_id": call_id},
            )  # fmt: skip
            await _wait(page, f"#transcript li.agent:has-text('{AGENT_SAYS}')", tmp_path)
            lines = await page.locator("#transcript li").all_inner_texts()
            assert lines == [f"Caller: I am {user}", f"Agent: {AGENT_SAYS}"]
            await _feed_comes_back(page, tmp_path, via, own)
            await page.click("#keypad button[data-digit='5']")
            await page.click("#mute")
            assert await page.get_attribute("#mute", "aria-pressed") == "true"
            artifacts = REPO / "artifacts"
            artifacts.mkdir(exist_ok=True)
            await page.screenshot(path=str(artifacts / "phone-call.png"), full_page=True, timeout=WAIT_MS)
            await asyncio.sleep(0.5)  # the INFO for the 5 is on its way to sipp
            await page.click("#hangup")
            await _wait(page, "#call-state[data-state=ended]", tmp_path)
            assert await page.is_hidden("#error"), await page.inner_text("#error")
            assert not [line for line in CONSOLE if line.startswith("pageerror")], CONSOLE
            # The one console error is the wrong token's 401 (no missing file, no CSP violation).
            assert [line for line in CONSOLE if line.startswith("error")] == [REFUSED_TOKEN], CONSOLE
            await _janus_refuses_a_revoked_token(page, tmp_path, rc, tokens)
        finally:
            await browser.close()
    await fs.caller_hangup(own)  # FreeSWITCH's leg of the same call ends with the browser's BYE
    return own
