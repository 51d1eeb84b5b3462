"""What the /phone browser tests share: Janus and a sipp registrar in a test namespace, the controller's
settings for them, and the page in Debian's Chromium (fake microphone) started inside the namespace.

ICE does not work over loopback, so Janus, Chromium and the SIP peers run in a network namespace
(``tests/netnskit.py``); the controller listens on the host end of the veth, where the page and Janus's
event handler reach it. The registrar is sipp with ``tests/sipp/uas_register_echo.xml`` (REGISTER → 200,
OPTIONS → 200, INVITE → 200 with RTP echo, INFO → 200), standing in for FreeSWITCH's SIP side.

``async with phone_page(ns, tmp_path, base) as phone:`` opens ``base``/phone; ``phone.wait(selector)`` waits
for an element and, on timeout, fails with the page's states, console and uncaught errors, Janus's log
(level 5), sipp's output and message trace. With ``ns=None`` Chromium runs on this host, for a page served
on loopback that talks to no real Janus (``tests/fakejanus.py``; ``browser_skip_reason``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.settings import Settings
from tests import netnskit
from tests.controllerkit import TOKEN
from tests.januskit import start_janus_in

try:
    from playwright.async_api import Page, async_playwright
except ImportError:  # pragma: no cover - the dev extra brings it
    async_playwright = None  # type: ignore[assignment]

__all__ = [
    "API_PORT", "REFUSED_TOKEN", "SIP_PORT", "PhonePage", "browser_skip_reason", "phone_page", "sections",
    "skip_reason", "start_peers",
]  # fmt: skip

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]
REGISTRAR = REPO / "tests" / "sipp" / "uas_register_echo.xml"
ADMIN_SECRET = secrets.token_hex(12)
EVENTS_PASSWORD = secrets.token_hex(12)
DIRECTORY_PASSWORD = secrets.token_hex(12)
API_PORT = 8080  # on the veth's host address, which belongs to the test alone
SIP_PORT, SIP_MEDIA_PORT = 5060, 6000
WAIT_MS = 20_000
# Longer than SIP's transaction timeout (Timer F, 64 * T1 = 32 s), after which the plugin reports 408: a
# REGISTER nobody answers then shows as the page's "registration failed", with its code, not as a timeout.
REGISTER_WAIT_MS = 40_000
USER = "1001"
"""The directory user the page signs in as (its password: ``TOKEN``)."""
REFUSED_TOKEN = "error: Failed to load resource: the server responded with a status of 401 (Unauthorized)"
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


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if (reason := netnskit.skip_reason()) is not None:
        return reason
    if (
        async_playwright is None
        or not all(map(shutil.which, ("janus", "sipp")))
        or not os.path.exists(CHROMIUM)
    ):
        return "needs playwright (dev extra), janus, sipp (sip-tester) and chromium"
    return None


def browser_skip_reason() -> str | None:
    """Why the page cannot run in Chromium on this host (``phone_page(None, ...)``), or None."""
    if async_playwright is None or not os.path.exists(CHROMIUM):
        return "needs playwright (dev extra) and chromium"
    return None


def sections(ns: netnskit.Netns, **calls: Any) -> dict[str, Any]:
    """The controller's settings sections: API on the veth, Janus in the namespace, ``calls``."""
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
    users = [{"extension": USER, "password": TOKEN}]
    return {"api": {"host": ns.host_ip, "port": API_PORT}, "janus": janus, "calls": calls, "users": users}


def logs(tmp_path: Path) -> str:
    """The tails of Janus's log (debug level 5: the SIP plugin's registration steps), sipp's output and
    sipp's message trace (what reached the SIP peer)."""
    tails = {"janus.log": 8000, "sipp.log": 2500, "sipp.msg": 4000}
    return "\n".join(
        f"--- {name}\n{(tmp_path / name).read_text(errors='replace')[-size:]}"
        for name, size in tails.items()
        if (tmp_path / name).exists()
    )


async def start_peers(ns: netnskit.Netns, tmp_path: Path, settings: Settings) -> asyncio.subprocess.Process:
    """Janus (rendered config, log level 5) and the sipp registrar, both in the namespace; returns sipp."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    with (tmp_path / "sipp.log").open("wb") as out:
        sipp = await ns.spawn(
            "sipp", "-sf", str(REGISTRAR), "-i", ns.ns_ip, "-p", str(SIP_PORT), "-mi", ns.ns_ip,
            "-mp", str(SIP_MEDIA_PORT), "-rtp_echo", "-nostdin", "-timeout", "120s",
            "-trace_msg", "-message_file", str(tmp_path / "sipp.msg"),
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
        )  # fmt: skip
    await start_janus_in(ns, settings, tmp_path, debug_level=5)
    return sipp


@dataclass
class PhonePage:
    """The page in the browser, and what it printed (console lines, ``pageerror: …`` for uncaught errors)."""

    page: Page
    tmp_path: Path
    console: list[str] = field(default_factory=list)

    async def wait(self, selector: str, timeout_ms: int = WAIT_MS) -> None:
        """Wait (bounded) for ``selector``; on timeout fail with what the page and the peers said."""
        try:
            await self.page.wait_for_selector(selector, timeout=timeout_ms)
        except Exception as exc:
            states = await self.page.evaluate(
                "['error','reg-state','call-state','ice-state','feed-state','sip-call-id']"
                ".map(id => id + '=' + document.getElementById(id).textContent).join('\\n')"
            )
            console = "\n".join(self.console[-60:])
            raise AssertionError(
                f"{selector} did not show up:\n{states}\n{logs(self.tmp_path)}\n--- console\n{console}"
            ) from exc

    async def sign_in(self, base: str) -> None:
        """Open the page, be refused a wrong password, then sign in with the right one and register."""
        await self.page.goto(f"{base}/phone", timeout=WAIT_MS)
        await self.page.fill("#extension", USER)
        await self.page.fill("#password", "not-the-password")
        await self.page.click("#connect")
        await self.wait("#error:has-text('refused the sign-in (401')")
        await self.page.fill("#password", TOKEN)
        await self.page.click("#connect")
        await self.wait("#reg-state[data-state=registered], #reg-state[data-state=failed]", REGISTER_WAIT_MS)
        state = await self.page.get_attribute("#reg-state", "data-state")
        assert state == "registered", await self.page.inner_text("#error")

    def errors(self) -> list[str]:
        """The console's error lines and the uncaught errors."""
        return [line for line in self.console if line.startswith(("error", "pageerror"))]

    def unexpected(self) -> list[str]:
        """The events the page's state machines had no row for (phone.js logs each as a warning)."""
        return [line for line in self.console if line.startswith("warning: phone: Unexpected")]


def _chromium_wrapper(ns: netnskit.Netns, tmp_path: Path) -> Path:
    """An executable running Debian's Chromium inside the namespace (exec keeps Playwright's PID, pipes)."""
    wrapper = tmp_path / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns.name} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@asynccontextmanager
async def phone_page(
    ns: netnskit.Netns | None,
    tmp_path: Path,
    base: str,
    microphone: Path | None = None,
    trusted_spki: tuple[str, ...] = (),
) -> AsyncIterator[PhonePage]:
    """A fresh Chromium in ``ns`` (None: on this host) with the microphone allowed, one page recording its
    console; closed on exit. A plain http ``base`` (on the veth) is treated as a secure origin, which
    getUserMedia needs; an https one is secure by itself, and Chromium accepts the certificates whose
    public keys' SHA-256 (base64) are in ``trusted_spki``, as a user who accepted their warnings would.
    The fake microphone plays ``microphone`` (a WAV file, once) when given, else Chromium's beeps."""
    assert async_playwright is not None
    args = list(CHROMIUM_ARGS)
    if base.startswith("http://"):
        args.append(f"--unsafely-treat-insecure-origin-as-secure={base}")
    if trusted_spki:
        args.append(f"--ignore-certificate-errors-spki-list={','.join(trusted_spki)}")
    if microphone is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone}%noloop")
    executable = CHROMIUM if ns is None else str(_chromium_wrapper(ns, tmp_path))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=executable,
            args=args,
            timeout=WAIT_MS,
        )
        try:
            page = await (await browser.new_context(permissions=["microphone"])).new_page()
            phone = PhonePage(page, tmp_path)
            page.on("pageerror", lambda exc: phone.console.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: phone.console.append(f"{msg.type}: {msg.text}"))
            yield phone
        finally:
            await browser.close()
