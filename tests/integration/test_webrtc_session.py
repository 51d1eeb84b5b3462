"""``POST /v1/webrtc/session`` against the controller, a real Janus (Debian's) and the FreeSWITCH emulator.

What each peer observes: Janus accepts (then, after expiry, refuses) the token on ``create``; the directory
endpoint answers a mod_xml_curl-shaped ``sip_auth`` lookup with the password (then "not found"); the event
feed opens with the feed token (then refuses it). The CDR test posts Janus events (SIP plugin ``calling`` with
the Call-ID, then media statistics) to ``/janus/events`` and closes a call whose leg has that Call-ID.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.controllerkit import RunningController, running_controller
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

        await asyncio.sleep(max(0.0, expires.timestamp() - datetime.now(expires.tzinfo).timestamp()) + 0.5)
        assert (await janus_create(janus, session["janus_token"]))["error"]["code"] == 403
        status, xml = await lookup(rc, sip["username"])
        assert status == 200
        assert _password(xml, sip["username"]) is None
        assert "not found" in xml
        assert await feed_status(rc, session["feed_token"]) == 401


async def test_no_session_route_without_the_janus_directory(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, janus=janus_settings(None, 60)) as rc,
        aiohttp.ClientSession() as anonymous,
        anonymous.post(rc.base + "/v1/webrtc/session", json={}) as response,
    ):
        # Without janus.enabled and janus.directory the route is not mounted at all.
        assert response.status == 404


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
