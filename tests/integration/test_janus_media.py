"""A real WebRTC call through the real Janus SIP plugin to a SIP peer that echoes the audio back.

    aiortc (this process, host namespace)
        ──WebSocket API / ICE+DTLS-SRTP over the veth──►
    Janus 1.1.2 (test namespace; ``render_janus`` config, ICE only on the veth, STUN off, token auth)
        ──SIP plugin: REGISTER, INVITE / plain RTP──►
    sipp UAS (test namespace; ``tests/sipp/uas_register_echo.xml``, ``-rtp_echo``)

ICE does not work over loopback (libnice skips 127/8, aiortc does not gather it), so Janus and sipp run in a
network namespace made by the test (``tests.netnskit``) and the client reaches them over its veth pair.
aiortc sends a 1 kHz tone; what comes back must be that tone: it went out through Janus, reached sipp (which
only echoes what it received) and came back through Janus. The Admin API's ``handle_info`` confirms the
counts from Janus's side, and sipp's message trace shows the SIP plugin's REGISTER and INVITE.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection
from janus_client import JanusSession

from controller.janus.admin import JanusAdmin, JanusError
from controller.render.janus import SIP_USER_AGENT
from controller.settings import Settings
from tests.janus_sip import SipPlugin
from tests.januskit import start_janus_in
from tests.netnskit import Netns, network_namespace, skip_reason, stop_process
from tests.webrtckit import Pcm, ToneTrack, dominant_frequency, record

_SKIP = skip_reason()
pytestmark = [
    pytest.mark.skipif(_SKIP is not None, reason=_SKIP or ""),
    pytest.mark.skipif(shutil.which("janus") is None, reason="janus not installed (apt-get install janus)"),
    pytest.mark.skipif(
        shutil.which("sipp") is None, reason="sipp not installed (apt-get install sip-tester)"
    ),
    pytest.mark.timeout(60),
]

SCENARIO: Final = Path(__file__).parents[1] / "sipp" / "uas_register_echo.xml"
ADMIN_SECRET: Final = secrets.token_hex(16)
PORTS: Final = {"http": 8088, "ws": 8188, "admin": 7088}  # a fresh namespace: nothing else listens there
SIP_PORT: Final = 5070
SIPP_MEDIA_PORT: Final = 16000
TONE_HZ: Final = 1000.0
RATE: Final = 8000


def _settings(netns: Netns) -> Settings:
    return Settings.model_validate(
        {
            "janus": {
                "enabled": True,
                "listen_ip": netns.ns_ip,
                "admin_ip": netns.ns_ip,
                "http_port": PORTS["http"],
                "ws_port": PORTS["ws"],
                "admin_port": PORTS["admin"],
                "admin_secret": ADMIN_SECRET,
                "rtp_start": 10000,
                "rtp_end": 10999,
                "sip_proxy": f"{netns.ns_ip}:{SIP_PORT}",
                "sip_local_ip": netns.ns_ip,
                "nat": {"ice_enforce_list": [netns.ns_if]},
            }
        }
    )


async def _start_sipp(netns: Netns, workdir: Path) -> asyncio.subprocess.Process:
    with (workdir / "sipp.out").open("wb") as out:
        return await netns.spawn(
            "sipp", "-sf", str(SCENARIO), "-i", netns.ns_ip, "-p", str(SIP_PORT),
            "-mi", netns.ns_ip, "-mp", str(SIPP_MEDIA_PORT), "-rtp_echo", "-nostdin", "-timeout", "50",
            "-trace_msg", "-message_file", str(workdir / "sipp.msg"),
            "-trace_err", "-error_file", str(workdir / "sipp.err"),
            stdout=out, stderr=out,
        )  # fmt: skip


@pytest.fixture
async def netns() -> AsyncIterator[Netns]:
    async with network_namespace() as made:
        yield made


async def test_tone_goes_through_janus_to_sip_and_back(netns: Netns, tmp_path: Path) -> None:
    sipp = await _start_sipp(netns, tmp_path)
    await start_janus_in(netns, _settings(netns), tmp_path)
    token = secrets.token_hex(16)
    async with aiohttp.ClientSession() as http:
        admin = JanusAdmin(f"http://{netns.ns_ip}:{PORTS['admin']}/admin", ADMIN_SECRET, http)
        await admin.add_token(token)
        session = JanusSession(base_url=f"ws://{netns.ns_ip}:{PORTS['ws']}", token=token)
        plugin = SipPlugin()
        try:
            await plugin.attach(session)
            proxy = f"sip:{netns.ns_ip}:{SIP_PORT}"
            await plugin.register(
                "sip:webrtc@pbx.invalid", "not-checked", proxy, outbound_proxy=proxy, timeout_s=10
            )
            with pytest.raises(JanusError) as refused:  # no call yet: the plugin's "Wrong state" error
                await plugin.dtmf("5")
            echoed, info = await _call_and_listen(
                plugin,
                plugin.pc,
                "sip:echo@pbx.invalid",
                admin,  # no DNS: the outbound proxy routes it
            )
            await plugin.dtmf("58")
            hangup = await plugin.hangup(timeout_s=10)
        finally:
            async with asyncio.timeout(15):
                await plugin.detach()
                await session.destroy()
    peak, share = dominant_frequency(echoed, RATE)
    assert abs(peak - TONE_HZ) < 20, (peak, share)
    assert share > 0.8, (peak, share)
    assert plugin.call_id is not None
    assert hangup["event"] == "hangup"
    # Janus's view (handle_info, Janus 1.1.2): the SIP leg is up and PCMU flowed both ways on the WebRTC side.
    assert info["plugin_specific"]["registration_status"] == "registered"
    assert info["plugin_specific"]["call_status"] == "incall"
    (audio,) = info["webrtc"]["media"].values()
    assert audio["codecs"]["codec"] == "pcmu"
    assert audio["stats"]["in"]["packets"] > 50, audio  # ≥ 1 s of 20 ms packets from aiortc
    assert audio["stats"]["out"]["packets"] > 50, audio  # ...and as many back from sipp's echo
    await stop_process(sipp)  # flushes its message trace
    trace = (tmp_path / "sipp.msg").read_text(errors="replace")
    assert f"User-Agent: {SIP_USER_AGENT}" in trace
    assert "REGISTER sip:" in trace
    assert f"Call-ID: {plugin.call_id}" in trace
    assert "Signal=5" in trace
    assert "Signal=8" in trace
    # janus_sip.c (v1.1.2), dtmf_info outside a call: "Wrong state (not in a call?)", error_code left 0.
    assert "Wrong state" in refused.value.reason, refused.value


async def _call_and_listen(
    plugin: SipPlugin, pc: RTCPeerConnection, uri: str, admin: JanusAdmin
) -> tuple[Pcm, dict[str, Any]]:
    """Call ``uri`` sending the tone; the echoed audio and Janus's handle_info while media flows."""
    remote: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    def on_track(track: MediaStreamTrack) -> None:
        if not remote.done():
            remote.set_result(track)

    pc.on("track", on_track)
    pc.addTrack(ToneTrack(TONE_HZ))
    answer = await plugin.call(uri, pc, timeout_s=15)
    assert "PCMU" in answer["sdp"]
    async with asyncio.timeout(5):
        track = await remote
    echoed, rate = await record(track, skip_s=1.0, keep_s=1.0)
    assert rate == RATE, rate  # PCMU both ways
    (session_id,) = await admin.list_sessions()
    info = await admin.handle_info(session_id, plugin.id)
    return echoed, info
