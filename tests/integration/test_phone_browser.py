"""The /phone demo page in a real headless Chromium, through a real Janus, served by the real controller.

Janus, Chromium and the sipp registrar run in a test namespace (``tests/phonekit.py``). The controller's
FreeSWITCH is the emulator: once the browser's call is up, the emulator gets the same call (the browser's
SIP user, its SIP Call-ID, the Janus SIP plugin's User-Agent), routes it to an agent on a stand-in worker,
which says one transcript turn. So the page's credentials (``POST /v1/webrtc/session``: a Janus token added
through the Admin API, a SIP user), its transcript (``/v1/events`` with the feed token) and the call's CDR
(``webrtc`` type, linked through Janus's own events) all come from the controller. The page reaches the
controller through a TCP relay (``tests/tcpproxy.py``); cutting its connections mid-call checks that the
feed reconnects and the next transcript turn still arrives.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from controller.settings import Settings
from tests import netnskit, phonekit
from tests.controllerkit import (
    RunningController,
    StandInSession,
    StandInWorker,
    controller_settings,
    register_worker,
    running_controller,
)
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.netnskit import stop_process
from tests.phonekit import API_PORT, PhonePage, phone_page
from tests.tcpproxy import TcpRelay, tcp_relay

REPO = Path(__file__).resolve().parents[2]
AGENT_SAYS = "Hello from the concierge"

pytestmark = pytest.mark.skipif(phonekit.skip_reason() is not None, reason=phonekit.skip_reason() or "")


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


async def _until_transcript(ws: aiohttp.ClientWebSocketResponse, caller: str) -> None:
    async with asyncio.timeout(10):
        while True:
            event = json.loads(await ws.receive_str())
            if event.get("message", {}).get("caller") == f"I am {caller}":
                return


async def test_browser_registers_calls_an_agent_and_hangs_up(tmp_path: Path) -> None:
    async with netnskit.network_namespace() as ns:
        sections = phonekit.sections(ns, routes=[{"destination": "7001", "action": "agent concierge"}])
        settings = Settings.model_validate(
            controller_settings(("127.0.0.1", 8021, "unused"), tmp_path, **sections)
        )
        sipp = await phonekit.start_peers(ns, tmp_path, settings)
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


async def _feed_comes_back(phone: PhonePage, via: Relayed, own: str) -> None:
    """Cut the page's connections to the controller: the feed reconnects and the next turn shows."""
    assert via.relay.cut() >= 1
    await phone.wait("#feed-state:has-text('reconnecting')")
    await phone.wait("#feed-state:text-is('event feed: connected')")
    session = via.worker.sessions[own]
    assert session.ws is not None
    turn = {"type": "transcript", "turn": 2, "caller": "Are you still there?", "agent": "Still here."}
    await session.ws.send_str(json.dumps(turn))
    await phone.wait("#transcript li.agent:has-text('Still here.')")


async def _janus_refuses_a_revoked_token(phone: PhonePage, rc: RunningController, before: set[str]) -> None:
    """Revoke the page's Janus token (the one added since ``before``, as the identity's expiry does): the
    next call is refused by Janus itself, which the page shows, and the call ends."""
    assert rc.controller.janus is not None
    admin = rc.controller.janus.admin
    added = set(await admin.list_tokens()) - before
    assert len(added) == 1
    await admin.remove_token(added.pop())
    await phone.page.click("#extensions button[data-destination='7001']")
    await phone.wait('#error:has-text("Janus refused the SIP plugin\'s call: 403")')
    await phone.wait("#call-state[data-state=failed]")


async def _run_browser(
    ns: netnskit.Netns, tmp_path: Path, rc: RunningController, fs: FreeSwitchEmulator, via: Relayed
) -> str:
    """Sign in, call the agent, follow the transcript (across a cut feed), press 5, mute, hang up, call
    again with a revoked token; the emulated call's uuid."""
    assert rc.controller.janus is not None
    tokens = set(await rc.controller.janus.admin.list_tokens())
    async with (
        phone_page(ns, tmp_path, via.base(ns)) as phone,
        rc.http.ws_connect(rc.base + "/v1/events") as everything,
    ):
        page = phone.page
        await phone.sign_in(via.base(ns))
        await page.click("#extensions button[data-destination='7001']")
        await phone.wait("#call-state[data-state=connected]")
        await phone.wait("#ice-state[data-state=connected], #ice-state[data-state=completed]")
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
        await phone.wait(f"#transcript li.agent:has-text('{AGENT_SAYS}')")
        lines = await page.locator("#transcript li").all_inner_texts()
        assert lines == [f"Caller: I am {user}", f"Agent: {AGENT_SAYS}"]
        await _feed_comes_back(phone, via, own)
        await page.click("#keypad button[data-digit='5']")
        await page.click("#mute")
        assert await page.get_attribute("#mute", "aria-pressed") == "true"
        artifacts = REPO / "artifacts"
        artifacts.mkdir(exist_ok=True)
        await page.screenshot(path=str(artifacts / "phone-call.png"), full_page=True, timeout=20_000)
        await asyncio.sleep(0.5)  # the INFO for the 5 is on its way to sipp
        await page.click("#hangup")
        await phone.wait("#call-state[data-state=ended]")
        assert await page.is_hidden("#error"), await page.inner_text("#error")
        # The one error is the wrong token's 401: no missing file, no CSP violation, no uncaught error.
        assert phone.errors() == [phonekit.REFUSED_TOKEN], phone.console
        await _janus_refuses_a_revoked_token(phone, rc, tokens)
        # Real Janus's events, in the order it sent them, all have rows in the page's state machines.
        assert phone.unexpected() == [], phone.console
    await fs.caller_hangup(own)  # FreeSWITCH's leg of the same call ends with the browser's BYE
    return own
