"""Live twin of the /phone page: Chromium talks to the agent through a real Janus and a real FreeSWITCH.

    Chromium (rig namespace; its fake microphone plays espeak speech) ──ICE + DTLS-SRTP──► Janus (rig
    namespace) ──SIP plugin──► FreeSWITCH (host end of the veth) ──park → controller routes it──►
    uuid_audio_stream ──► media worker: greeting, VAD, ASR, agent, TTS ──► back to the page

The page signs in with the API token, registers the browser identity the controller made (FreeSWITCH
authenticates it through the controller's directory, mod_xml_curl), and calls the agent extension. The
microphone stays silent through the greeting, then says "I would like to pay my bill, please": the page's
transcript (its feed token's events) must show that turn and the agent's billing answer, which proves audio
went both ways through every real server. After the hang-up the call's CDR must be ``webrtc``.

Needs the live rig (``make test-live``): the page and Janus run in its namespace.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from tests import phonekit
from tests.live.stack import StackTarget
from tests.phonekit import phone_page
from tests.sipkit import UTTERANCE
from tests.speech import build_call

pytestmark = [
    pytest.mark.live,
    pytest.mark.timeout(120),
    pytest.mark.skipif(phonekit.skip_reason() is not None, reason=phonekit.skip_reason() or ""),
]

EXTENSION: Final = "7000"
GREETING_S: Final = 9.0  # the microphone's silence before the request: the greeting ends well before
TURN_WAIT_MS: Final = 30_000
CDR_DEADLINE_S: Final = 20.0


def _microphone(workdir: Path) -> Path:
    """48 kHz mono WAV for Chromium's fake capture: silence, the request, silence to hear the answer."""
    call = build_call(workdir, 16000, [(GREETING_S, UTTERANCE)], tail=20.0, name="microphone")
    out = workdir / "microphone-48k.wav"
    subprocess.run(["sox", str(call.path), "-r", "48000", str(out)], check=True, timeout=30)
    return out


async def _closed_cdr(api: str, token: str, number: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http, asyncio.timeout(CDR_DEADLINE_S):
        while True:
            async with http.get(f"{api}/v1/cdrs", params={"number": number, "limit": "1"}) as response:
                assert response.status == 200, await response.text()
                items: list[dict[str, Any]] = (await response.json())["items"]
            if items and items[0]["status"] == "closed":
                return items[0]
            await asyncio.sleep(0.2)


async def test_browser_talks_to_the_agent(live_stack: StackTarget, tmp_path: Path) -> None:
    if live_stack.netns is None:
        pytest.skip("needs the live rig's namespace (make test-live), not a deployment of your own")
    microphone = _microphone(tmp_path)
    async with phone_page(live_stack.netns, tmp_path, live_stack.api, microphone) as phone:
        page = phone.page
        await page.goto(f"{live_stack.api}/phone", timeout=phonekit.WAIT_MS)
        await page.fill("#extension", live_stack.sip_user)  # signs in as the directory user
        await page.fill("#password", live_stack.sip_password)
        await page.click("#connect")
        await phone.wait("#reg-state[data-state=registered]", phonekit.REGISTER_WAIT_MS)
        user = (await page.inner_text("#identity")).removeprefix("sip:").partition("@")[0]
        await page.click(f"#extensions button[data-destination='{EXTENSION}']")
        await phone.wait("#call-state[data-state=connected]")
        await phone.wait("#ice-state[data-state=connected], #ice-state[data-state=completed]")
        await phone.wait("#transcript li.agent", TURN_WAIT_MS)
        lines = await page.locator("#transcript li").all_inner_texts()
        await page.click("#hangup")
        await phone.wait("#call-state[data-state=ended]")
        errors = phone.errors() + phone.unexpected()
    assert len(lines) >= 2, lines
    assert "bill" in lines[0].lower(), lines  # "Caller: …": heard through Opus, Janus and FreeSWITCH
    assert "bill" in lines[1].lower(), lines  # "Agent: …": the scripted agent's billing answer
    assert errors == [], errors
    cdr = await _closed_cdr(live_stack.api, live_stack.token, user)
    assert cdr["call_type"] == "webrtc", cdr
    assert cdr["disposition"] == "answered", cdr
    assert cdr["route"] == "agent default", cdr
    assert cdr["webrtc"] is not None, cdr
