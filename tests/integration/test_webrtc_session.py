"""``POST /v1/webrtc/session`` against the controller, a real Janus (Debian's) and the FreeSWITCH emulator.

What each peer observes: Janus accepts (then, after expiry, refuses) the token on ``create``; the directory
endpoint answers a mod_xml_curl-shaped ``sip_auth`` lookup with the password (then "not found"); the event
feed opens with the feed token (then refuses it). The CDR test posts Janus events (SIP plugin ``calling`` with
the Call-ID, then media statistics) to ``/janus/events`` and closes a call whose leg has that Call-ID.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.controllerkit import (
    RunningController,
    StandInSession,
    StandInWorker,
    register_worker,
    running_controller,
)
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.januskit import ADMIN_SECRET, JanusProcess, requires_janus, running_janus

DIRECTORY_PASSWORD = "directory-password-1"
EVENTS_PASSWORD = "events-password-1"
DOMAIN = "switchyard.local"  # sip.domain's default


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def janus_settings(janus: JanusProcess | None, ttl_s: int) -> dict[str, Any]:
    section: dict[str, Any] = {"enabled": False}
    if janus is not None:
        section = {**janus.settings.janus.model_dump(mode="json"), "admin_secret": ADMIN_SECRET}
        section["directory"] = {"enabled": True, "password": DIRECTORY_PASSWORD}
    section["session_ttl_s"] = ttl_s
    section["events"] = {"enabled": True, "user": "janus", "password": EVENTS_PASSWORD}
    return section


async def janus_create(janus: JanusProcess, token: str) -> dict[str, Any]:
    body = {"janus": "create", "transaction": secrets.token_hex(6), "token": token}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.post(janus.http_url, json=body) as response,
    ):
        reply: dict[str, Any] = await response.json(content_type=None)
    return reply


async def lookup(rc: RunningController, user: str, auth: bool = True) -> tuple[int, str]:
    """A ``sip_auth`` directory lookup shaped as mod_xml_curl posts it (mod_xml_curl.c, sofia_reg.c)."""
    form = {
        "hostname": "fs1", "section": "directory", "tag_name": "domain", "key_name": "name",
        "key_value": DOMAIN, "Event-Name": "REQUEST_PARAMS", "action": "sip_auth", "sip_profile": "internal",
        "sip_user_agent": "Switchyard-Janus-SIP", "sip_auth_username": user, "sip_auth_realm": DOMAIN,
        "sip_auth_method": "REGISTER", "user": user, "domain": DOMAIN, "ip": "127.0.0.1",
    }  # fmt: skip
    headers = _basic("freeswitch", DIRECTORY_PASSWORD) if auth else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(rc.base + "/freeswitch/directory", data=form, headers=headers) as response,
    ):
        return response.status, await response.text()


async def feed_status(rc: RunningController, token: str) -> int:
    """101 when the feed opens with ``?access_token=``, else the HTTP status of the refusal."""
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(rc.base + "/v1/events", params={"access_token": token}) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def _password(xml: str, user: str) -> str | None:
    root = ET.fromstring(xml)
    param = root.find(f".//domain[@name='{DOMAIN}']/users/user[@id='{user}']/params/param[@name='password']")
    return None if param is None else param.get("value")


@requires_janus
async def test_session_identity_works_then_expires(tmp_path: Path) -> None:
    routes = [
        {"destination": "7000", "action": "agent support"},
        {"destination": "(7\\d+)", "action": "echo"},
    ]
    async with (
        running_janus(tmp_path / "janus") as janus,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, janus=janus_settings(janus, 3), calls={"routes": routes}) as rc,
    ):
        async with rc.http.post(rc.base + "/v1/webrtc/session", json={"display_name": "Ann"}) as response:
            session = await response.json()
        assert response.status == 201, session
        sip = session["sip"]
        assert sip["username"].startswith("webrtc-")
        assert sip["identity"] == f"sip:{sip['username']}@{DOMAIN}"
        assert sip["proxy"] == f"sip:{janus.settings.janus.sip_proxy}"
        assert session["janus_url"] == janus.ws_url
        assert session["extensions"] == [{"destination": "7000", "agent": "support"}]
        async with (
            aiohttp.ClientSession() as anonymous,
            anonymous.post(rc.base + "/v1/webrtc/session") as denied,
        ):
            assert denied.status == 401
        expires = datetime.fromisoformat(session["expires_at"])

        created = await janus_create(janus, session["janus_token"])
        assert created["janus"] == "success", created
        assert (await janus_create(janus, "not-a-token"))["error"]["code"] == 403

        status, xml = await lookup(rc, sip["username"])
        assert (status, _password(xml, sip["username"])) == (200, sip["password"])
        status, xml = await lookup(rc, "webrtc-000000000000")
        assert status == 200
        assert "not found" in xml
        assert (await lookup(rc, sip["username"], auth=False))[0] == 401
        assert await feed_status(rc, session["feed_token"]) == 101
        assert await feed_status(rc, "wrong") == 401
        # The browser registered through Janus; a desk phone shares the domain.
        fs.register_user(sip["username"], domain=DOMAIN, user_agent="Switchyard-Janus-SIP")
        fs.register_user("1001", domain=DOMAIN)
        flushed = fs.record_events()

        await asyncio.sleep(max(0.0, expires.timestamp() - datetime.now(expires.tzinfo).timestamp()) + 0.5)
        assert (await janus_create(janus, session["janus_token"]))["error"]["code"] == 403
        status, xml = await lookup(rc, sip["username"])
        assert status == 200
        assert _password(xml, sip["username"]) is None
        assert "not found" in xml
        assert await feed_status(rc, session["feed_token"]) == 401
        # Its registration was flushed over ESL (sofia::expire); the desk phone's was not.
        await fs.wait_for(lambda: fs.registry.find(sip["username"]) is None, timeout=5)
        assert fs.registry.find("1001") is not None
        expired = [e for e in flushed if e.subclass == "sofia::expire"]
        assert [e.get("username") for e in expired] == [sip["username"]]


async def test_no_session_route_without_the_janus_directory(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, janus=janus_settings(None, 60)) as rc,
        aiohttp.ClientSession() as anonymous,
        anonymous.post(rc.base + "/v1/webrtc/session", json={}) as response,
    ):
        # Without janus.enabled and janus.directory the route is not mounted at all.
        assert response.status == 404


async def _transcript_of(session: StandInSession) -> None:
    """The stand-in worker's turn: a transcript naming the stream's caller."""
    assert session.ws is not None
    assert session.metadata is not None
    turn = {"type": "transcript", "turn": 1, "caller": f"I am {session.metadata['caller']}", "agent": "Hi"}
    await session.ws.send_str(json.dumps(turn))


async def _until_transcript(ws: aiohttp.ClientWebSocketResponse, caller: str) -> list[dict[str, Any]]:
    """Feed events up to and including the transcript of ``caller`` (bounded)."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while True:
            event = json.loads(await ws.receive_str())
            seen.append(event)
            if event.get("message", {}).get("caller") == f"I am {caller}":
                return seen


@requires_janus
async def test_feed_token_sees_only_the_calls_of_its_sip_user(tmp_path: Path) -> None:
    routes = [{"destination": "7000", "action": "agent support"}]
    async with (
        running_janus(tmp_path / "janus") as janus,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        StandInWorker(on_metadata=_transcript_of) as worker,
        running_controller(fs, tmp_path, janus=janus_settings(janus, 60), calls={"routes": routes}) as rc,
        aiohttp.ClientSession() as browser,
    ):
        await register_worker(rc, "w1", worker.url)
        identities = []
        for _ in range(2):  # two browsers
            async with rc.http.post(rc.base + "/v1/webrtc/session", json={}) as response:
                identities.append(await response.json())
        theirs, mine = (i["sip"]["username"] for i in identities)
        feed = rc.base + "/v1/events"
        async with (
            rc.http.ws_connect(feed) as everything,
            browser.ws_connect(feed, params={"access_token": identities[1]["feed_token"]}) as scoped,
        ):
            other = await fs.inject_inbound_call(caller=theirs, destination="7000", sip_domain=DOMAIN)
            await _until_transcript(everything, theirs)
            await rc.http.post(rc.base + "/v1/routes/reload")
            own = await fs.inject_inbound_call(caller=mine, destination="7000", sip_domain=DOMAIN)
            seen = await _until_transcript(scoped, mine)
            # An operator bridges the browser's call into a call of its own: the scope follows the merge.
            async with rc.http.post(
                rc.base + "/v1/calls", json={"target": "extension", "destination": "7104"}
            ) as response:
                merged = (await response.json())["call_id"]
            async with rc.http.post(f"{rc.base}/v1/calls/{merged}/bridge", json={"other": own}) as response:
                assert response.status == 200, await response.text()
            await fs.caller_hangup(own)
            async with asyncio.timeout(5):
                while seen[-1]["type"] != "call_ended":
                    seen.append(json.loads(await scoped.receive_str()))
            everyone = await _until_transcript(everything, mine)
        await fs.caller_hangup(other)
    # Events arrive in order: had the scoped feed got the other call or the reload, they would be in ``seen``.
    assert {e["call_id"] for e in seen} == {own, merged}
    assert {"call_id": merged, "merged_id": own} in [
        {"call_id": e["call_id"], "merged_id": e["merged_id"]} for e in seen if e["type"] == "call_merged"
    ]
    assert seen[-1]["call_id"] == merged
    kinds = {"call_started", "channel_added", "channel_answered", "audio_stream_message", "call_ended"}
    assert kinds <= {e["type"] for e in seen}
    assert "routes_reloaded" in {e["type"] for e in everyone}


async def post_events(rc: RunningController, events: list[dict[str, Any]]) -> None:
    async with rc.http.post(
        rc.base + "/janus/events", json=events, headers=_basic("janus", EVENTS_PASSWORD)
    ) as response:
        assert response.status == 204


@pytest.mark.parametrize("user_agent", ["SIPp", "Switchyard-Janus-SIP"])
async def test_cdr_of_a_janus_call_has_webrtc_type_and_media_stats(tmp_path: Path, user_agent: str) -> None:
    call_id, session, handle = f"{secrets.token_hex(8)}@127.0.0.1", 8978195001812378, 5625252063708973
    ids = {"emitter": "janus-under-test", "session_id": session, "handle_id": handle}
    audio = {
        "mid": "0", "mindex": 0, "media": "audio", "codec": "opus", "lost": 4, "lost-by-remote": 1,
        "jitter-local": 3, "jitter-remote": 8, "packets-received": 250, "packets-sent": 250,
    }  # fmt: skip
    calling = {"event": "calling", "call-id": call_id}
    events = [
        {**ids, "type": 64, "event": {"plugin": "janus.plugin.sip", "data": calling}},
        {**ids, "type": 32, "subtype": 3, "event": [{**audio, "rtt": 12}]},
        {**ids, "type": 32, "subtype": 3, "event": [{**audio, "rtt": 18, "lost": 6}]},
    ]  # fmt: skip
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, janus=janus_settings(None, 60)) as rc,
    ):
        await post_events(rc, events)
        uuid = await fs.inject_inbound_call(
            destination="7999", user_agent=user_agent, variables={"sip_call_id": call_id}
        )
        await rc.call_ended(uuid)
        record = await rc.controller.store.get(uuid)
        other = await fs.inject_inbound_call(destination="7999", user_agent="SIPp")
        await rc.call_ended(other)
        plain = await rc.controller.store.get(other)
    assert record is not None
    assert record.call_type == "webrtc"
    assert record.webrtc is not None
    assert record.webrtc.model_dump() == {
        "janus_session": session, "janus_handle": handle, "rtt_ms_avg": 15.0, "jitter_ms_max": 8.0,
        "packets_lost_in": 6, "packets_lost_out": 1, "reports": 2,
    }  # fmt: skip
    assert plain is not None
    assert (plain.call_type, plain.webrtc) == ("sip", None)
