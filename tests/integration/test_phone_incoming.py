"""The /phone page answers a call, in a real headless Chromium through a real Janus (``tests/phonekit.py``).

The browser registers through Janus with the sipp registrar; a second sipp
(``tests/sipp/uac_call_browser.xml``) then stands in for FreeSWITCH ringing the browser's SIP user: an
INVITE to the Contact the browser registered (the Janus SIP plugin's address), offering PCMU, echoing the
audio it gets (``-rtp_echo``). The page shows who calls, the test answers, the call connects with ICE up
and audio both ways (Janus counts the browser's packets in and the caller's echo out), and the page's
hang-up reaches the caller as a BYE. A second call is declined: the caller gets 486 Busy Here.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from controller.settings import Settings
from tests import netnskit, phonekit
from tests.controllerkit import RunningController, controller_settings, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.netnskit import stop_process
from tests.phonekit import API_PORT, PhonePage, phone_page

CALLER = Path(__file__).resolve().parents[1] / "sipp" / "uac_call_browser.xml"
CALLER_PORT, CALLER_MEDIA_PORT = 5062, 6100
RELAY_ENDED = re.compile("Leaving SIP relay thread")
CONTACT = re.compile(r"^Contact: <sip:(webrtc-[0-9a-f]+)@([0-9.]+):([0-9]+)", re.MULTILINE)

pytestmark = pytest.mark.skipif(phonekit.skip_reason() is not None, reason=phonekit.skip_reason() or "")


async def _until_written(path: Path, pattern: re.Pattern[str]) -> re.Match[str]:
    """The first match of ``pattern`` in the file ``path``, read again until it is there (10 s)."""
    async with asyncio.timeout(10):
        while True:
            found = pattern.search(await asyncio.to_thread(path.read_text, errors="replace"))
            if found:
                return found
            await asyncio.sleep(0.1)


async def _call_the_browser(ns: netnskit.Netns, tmp_path: Path, name: str) -> asyncio.subprocess.Process:
    """sipp calling the browser's registered Contact once (``-m 1``), as "Front Desk" <sip:1000@…>; its
    output in ``<name>.log``, its message trace in ``<name>.msg``."""
    # The browser's Contact (user, host, port) from the REGISTER in the registrar's message trace.
    user, host, port = (await _until_written(tmp_path / "sipp.msg", CONTACT)).groups()
    with (tmp_path / f"{name}.log").open("wb") as out:
        return await ns.spawn(
            "sipp", f"{host}:{port}", "-sf", str(CALLER), "-s", user, "-m", "1",
            "-i", ns.ns_ip, "-p", str(CALLER_PORT), "-mi", ns.ns_ip, "-mp", str(CALLER_MEDIA_PORT),
            "-rtp_echo", "-nostdin", "-timeout", "60s",
            "-trace_msg", "-message_file", str(tmp_path / f"{name}.msg"),
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip


async def _janus_media(rc: RunningController) -> dict[str, Any]:
    """Janus's view of the browser's SIP handle in a call (Admin API ``handle_info``)."""
    assert rc.controller.janus is not None
    admin = rc.controller.janus.admin
    for session in await admin.list_sessions():
        for handle in await admin.list_handles(session):
            info = await admin.handle_info(session, handle)
            if info.get("plugin_specific", {}).get("call_status") == "incall":
                return info
    raise AssertionError("no SIP plugin handle in a call")


async def _decline(phone: PhonePage) -> None:
    await phone.wait("#incoming:has-text('Front Desk')")
    await phone.page.click("#decline")
    await phone.wait("#call-state[data-state=ended]:has-text('declined')")
    assert await phone.page.is_hidden("#incoming")
    assert await phone.page.is_enabled("#call")


async def _answer_and_hang_up(phone: PhonePage, rc: RunningController) -> dict[str, Any]:
    await phone.wait("#incoming:has-text('Front Desk')")
    assert await phone.page.is_disabled("#call")  # no second call while one rings
    await phone.page.click("#answer")
    await phone.wait("#call-state[data-state=connected]")
    await phone.wait("#ice-state[data-state=connected], #ice-state[data-state=completed]")
    assert await phone.page.is_hidden("#incoming")
    await asyncio.sleep(2)  # audio flows: the fake microphone's beeps, echoed by the caller
    info = await _janus_media(rc)
    await phone.page.click("#hangup")
    await phone.wait("#call-state[data-state=ended]")
    return info


async def test_browser_answers_a_call_hangs_up_then_declines_one(tmp_path: Path) -> None:
    async with netnskit.network_namespace() as ns:
        sections = phonekit.sections(ns)
        settings = Settings.model_validate(
            controller_settings(("127.0.0.1", 8021, "unused"), tmp_path, **sections)
        )
        registrar = await phonekit.start_peers(ns, tmp_path, settings)
        base = f"http://{ns.host_ip}:{API_PORT}"
        async with (
            FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
            running_controller(fs, tmp_path, **sections) as rc,
            phone_page(ns, tmp_path, base) as phone,
        ):
            await phone.sign_in(base)
            caller = await _call_the_browser(ns, tmp_path, "caller")
            info = await _answer_and_hang_up(phone, rc)
            assert await asyncio.wait_for(caller.wait(), 15) == 0, (tmp_path / "caller.log").read_text()
            # janus_sip.c answers an INVITE 486 itself until the last call's media relay has ended
            # (about 1 s after a hang-up); its log (level 5) says when.
            await _until_written(tmp_path / "janus.log", RELAY_ENDED)
            caller = await _call_the_browser(ns, tmp_path, "declined")
            await _decline(phone)
            assert await asyncio.wait_for(caller.wait(), 15) == 0, (tmp_path / "declined.log").read_text()
            assert await phone.page.is_hidden("#error"), await phone.page.inner_text("#error")
            assert phone.errors() == [phonekit.REFUSED_TOKEN], phone.console
            assert phone.unexpected() == [], phone.console  # every Janus event has a row in the page
        await stop_process(registrar)
    assert info["plugin_specific"]["callee"].startswith("sip:1000@")
    # Janus's WebRTC leg of the call, counted over the 2 s: the browser's audio in, the caller's echo out.
    audio = info["webrtc"]["media"]["0"]
    assert (audio["type"], audio["codecs"]["codec"]) == ("audio", "pcmu")
    assert audio["stats"]["in"]["packets"] >= 50, audio["stats"]  # 20 ms packets
    assert audio["stats"]["out"]["packets"] >= 50, audio["stats"]
    trace = (tmp_path / "caller.msg").read_text(errors="replace")
    assert re.search(r"^BYE sip:1000@", trace, re.MULTILINE), "the page's hang-up did not reach the caller"
    trace = (tmp_path / "declined.msg").read_text(errors="replace")
    assert re.search(r"^SIP/2.0 486 ", trace, re.MULTILINE), "the page's decline did not reach the caller"
