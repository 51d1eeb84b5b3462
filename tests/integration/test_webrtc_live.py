"""Live twin of the browser path: a WebRTC caller on a deployed stack hears the agent's greeting.

    aiortc (this process, through janus-client and ``tests.janus_sip.SipPlugin``)
        ──WebSocket API, ICE + DTLS-SRTP──► Janus ──SIP plugin: REGISTER, INVITE──► FreeSWITCH
        ──park → controller routes it → uuid_audio_stream──► media worker (greeting) ──► back to the caller

Everything comes from the stack's controller, as the /phone page gets it: ``POST /v1/webrtc/session`` gives
the Janus token and a browser SIP user, which FreeSWITCH authenticates through the controller's directory
(mod_xml_curl). The caller sends silence, records what comes back and needs at least a second of sound
(the greeting); the browser's own feed (``?access_token=``) must show its call answered and streamed, which
also proves FreeSWITCH authenticated the call as that SIP user (the feed is scoped by ``sip_auth_username``);
the call's CDR must be ``webrtc``.

Run by ``make test-live``: on the live rig's stack (tests/live/stack.py: Janus in the rig's namespace, the
client here, over the veth), or on a deployment named by ``SWITCHYARD_LIVE_API`` (the controller's API URL,
e.g. ``http://127.0.0.1:8080``) and ``SWITCHYARD_LIVE_API_TOKEN``, whose Janus must be reachable from here on
a non-loopback address (ICE skips loopback). ``SWITCHYARD_LIVE_AGENT_EXT`` picks the agent extension
(default: the first the session lists).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any, Final

import aiohttp
import pytest
from aiortc import MediaStreamTrack
from janus_client import JanusSession

from tests.janus_sip import SipPlugin
from tests.live.stack import StackTarget
from tests.webrtckit import ToneTrack, record_for, sound_seconds

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]

LISTEN_S: Final = 8.0  # the greeting starts within a second or two of the answer and lasts a few seconds
MIN_SOUND_S: Final = 1.0


async def _call_and_listen(session: dict[str, Any], extension: str) -> tuple[float, str]:
    """Register, call ``extension``, record the answer; seconds of sound heard and the SIP Call-ID."""
    sip = session["sip"]
    janus = JanusSession(base_url=session["janus_url"], token=session["janus_token"])
    plugin = SipPlugin()
    remote: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    def on_track(track: MediaStreamTrack) -> None:
        if not remote.done():
            remote.set_result(track)

    try:
        await plugin.attach(janus)
        await plugin.register(
            sip["identity"], sip["password"], sip["proxy"], authuser=sip["username"],
            outbound_proxy=sip["proxy"], timeout_s=15,
        )  # fmt: skip
        plugin.pc.on("track", on_track)
        plugin.pc.addTrack(ToneTrack(440.0, amplitude=0.0, rate=48000))  # silence: no barge-in
        await plugin.call(f"sip:{extension}@{sip['domain']}", plugin.pc, timeout_s=20)
        async with asyncio.timeout(5):
            track = await remote
        heard, rate = await record_for(track, LISTEN_S)
        await plugin.hangup(timeout_s=10)
    finally:
        async with asyncio.timeout(15):
            with contextlib.suppress(Exception):  # best effort: the stack's reaper removes leftovers
                await plugin.detach()
            await janus.destroy()
    assert plugin.call_id is not None
    return sound_seconds(heard, rate), plugin.call_id


async def _drain(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[dict[str, Any]]:
    """What the feed delivered until it stayed quiet for ``seconds``."""
    events: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        while True:
            events.append(json.loads(await asyncio.wait_for(ws.receive_str(), seconds)))
    return events


async def _closed_cdr(http: aiohttp.ClientSession, api: str, number: str) -> dict[str, Any]:
    """The newest CDR of ``number`` once closed (bounded wait)."""
    async with asyncio.timeout(10):
        while True:
            async with http.get(f"{api}/v1/cdrs", params={"number": number, "limit": "1"}) as response:
                items: list[dict[str, Any]] = (await response.json())["items"]
            if items and items[0]["status"] == "closed":
                return items[0]
            await asyncio.sleep(0.2)


async def test_webrtc_caller_hears_the_agent_greeting(live_stack: StackTarget) -> None:
    api, token = live_stack.api, live_stack.token
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        async with http.post(f"{api}/v1/webrtc/session", json={"display_name": "Live test"}) as response:
            session = await response.json()
        assert response.status == 201, session
        agents = {x["destination"]: x["agent"] for x in session["extensions"]}
        extension = os.environ.get("SWITCHYARD_LIVE_AGENT_EXT") or next(iter(agents), None)
        assert extension is not None, "the stack lists no agent extension (calls.routes)"
        feed_url = f"{api}/v1/events?access_token={session['feed_token']}"
        async with aiohttp.ClientSession() as anonymous, anonymous.ws_connect(feed_url) as feed:
            heard_s, sip_call_id = await _call_and_listen(session, extension)
            events = await _drain(feed, 3.0)
        cdr = await _closed_cdr(http, api, session["sip"]["username"])
    print(f"heard {heard_s:.2f} s of sound in {LISTEN_S:.0f} s")  # the live run's figure (pytest -s)
    assert heard_s >= MIN_SOUND_S, f"only {heard_s:.2f} s of sound came back: no greeting"
    kinds = {e["type"] for e in events}
    assert {"call_started", "channel_answered", "audio_stream_changed"} <= kinds, kinds
    assert cdr["call_type"] == "webrtc", cdr
    assert cdr["disposition"] == "answered", cdr
    if extension in agents:
        assert cdr["route"] == f"agent {agents[extension]}", cdr
    # The SIP Call-ID links the FreeSWITCH call to the Janus handle (Janus's event handler → /janus/events).
    assert cdr["webrtc"] is not None, f"no Janus media stats linked by Call-ID {sip_call_id}: {cdr}"
