"""Live twin of the voice agent end to end (``test_voice_agent_e2e.py``): a SIP desk phone on a real stack.

    sipp (tests/sipp/uac_register_call.xml): REGISTER and INVITE with digest auth, PCMU RTP of espeak speech
        ──► FreeSWITCH (rendered internal profile and directory) ──park → controller routes it──►
        uuid_audio_stream ──► media worker: greeting, VAD, ASR, agent, TTS ──► played back to the phone

The phone waits through the greeting, says "I would like to pay my bill, please", listens and hangs up. The
call's CDR must show it answered on the agent route, streamed without failure, at least two playbacks
(greeting and answer) and the caller's turn about the bill with the agent's billing answer (the default
scripted agent).

Run by ``make test-live``: on the live rig's stack (tests/live/stack.py), or on a deployment named by
``SWITCHYARD_LIVE_API`` + ``SWITCHYARD_LIVE_API_TOKEN`` (the controller) and ``SWITCHYARD_LIVE_SIP``
(FreeSWITCH's internal profile, ``host:port``), ``SWITCHYARD_LIVE_SIP_DOMAIN``, ``SWITCHYARD_LIVE_SIP_USER``
and ``SWITCHYARD_LIVE_SIP_PASSWORD`` (a user of the rendered directory); ``SWITCHYARD_LIVE_AGENT_EXT`` is the
extension (default 7000).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.live.stack import StackTarget
from tests.sipkit import caller_audio, cdr_of, run_sipp, scenario

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]


async def test_desk_phone_talks_to_the_agent(live_stack: StackTarget, tmp_path: Path) -> None:
    stack = live_stack
    if not (stack.sip and stack.sip_domain and stack.sip_user and stack.sip_password):
        pytest.skip("no SIP phone account (SWITCHYARD_LIVE_SIP, _SIP_DOMAIN, _SIP_USER, _SIP_PASSWORD)")
    api_url, token, target = stack.api, stack.token, stack.sip
    domain, user, password = stack.sip_domain, stack.sip_user, stack.sip_password
    extension = os.environ.get("SWITCHYARD_LIVE_AGENT_EXT", "7000")
    caller_audio(tmp_path)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(api_url.rstrip("/"), headers=headers) as api:
        since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        await run_sipp(tmp_path, target, extension, scenario(tmp_path, user, password, domain))
        record = await cdr_of(api, user, since)
    assert record["disposition"] == "answered"
    assert record["route"].startswith("agent ")
    assert record["stream"]["failures"] == 0
    assert record["stream"]["playbacks"] >= 2, record["stream"]  # the greeting, then the answer
    turns = [t for t in record["transcript"] if t.get("caller")]
    assert turns, record["transcript"]
    assert "bill" in turns[0]["caller"].lower(), turns[0]  # heard through PCMU at 8 kHz
    assert "bill" in turns[0]["agent"].lower(), turns[0]  # the billing answer, not the fallback
