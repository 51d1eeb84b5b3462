"""The phone page signs in as a directory user, or by a one-time invite, never with an API token.

Attacks, each refused after issue 17 item 3 and open on 5939257 (where ``/phone`` asked every softphone user
for the all-powerful API token, and no sign-in existed): a softphone's credential originates or lists calls,
mints invites; a password is guessed without limit; an invite link is used twice.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllerkit import RunningController, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.integration.test_webrtc_session import DOMAIN, janus_settings, lookup
from tests.januskit import requires_janus, running_janus

PASSWORD = secrets.token_urlsafe(16)
READER = "reader-token-0123456789abcdef"
USERS = [{"extension": "1001", "password": PASSWORD, "display_name": "Ann"}]


async def _post(
    rc: RunningController, path: str, body: Any, token: str | None = None
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(rc.base + path, json=body) as resp,
    ):
        return resp.status, await resp.json(content_type=None), resp.headers


async def _signin(rc: RunningController, **body: str) -> tuple[int, Any, Any]:
    return await _post(rc, "/v1/webrtc/signin", body)


def _caller_id(xml: str, user: str) -> str | None:
    var = ET.fromstring(xml).find(
        f".//domain[@name='{DOMAIN}']/users/user[@id='{user}']/variables/variable"
        "[@name='effective_caller_id_number']"
    )
    return None if var is None else var.get("value")


@requires_janus
async def test_a_signed_in_browser_holds_only_a_webrtc_credential_of_its_user(tmp_path: Path) -> None:
    async with (
        running_janus(tmp_path / "janus") as janus,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, janus=janus_settings(janus, 60), users=USERS) as rc,
    ):
        wrong = await _signin(rc, extension="1001", password=PASSWORD + "x")
        unknown = await _signin(rc, extension="1999", password=PASSWORD)
        status, credential, _ = await _signin(rc, extension="1001", password=PASSWORD)
        assert status == 201, credential
        token = credential["token"]
        made, session, _ = await _post(rc, "/v1/webrtc/session", {}, token)
        gateway = {"target": "gateway", "gateway": "carrier", "destination": "15551234"}
        originate = (await _post(rc, "/v1/calls", gateway, token))[0]
        invite = (await _post(rc, "/v1/webrtc/invites", {"extension": "1001"}, token))[0]
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
            http.get(rc.base + "/v1/calls") as listed,
        ):
            calls = listed.status
        _, xml = await lookup(rc, session["sip"]["username"])
    assert (wrong[0], unknown[0]) == (401, 401)
    assert credential["extension"] == "1001"
    assert made == 201, session
    assert _caller_id(xml, session["sip"]["username"]) == "1001"  # it calls as its user
    assert (originate, invite, calls) == (403, 403, 403)


@requires_janus
async def test_password_guessing_is_rate_limited_with_retry_after(tmp_path: Path) -> None:
    api = {"signin": {"attempts": 3, "window_s": 60}}
    async with (
        running_janus(tmp_path / "janus") as janus,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, janus=janus_settings(janus, 60), users=USERS, api=api) as rc,
    ):
        guesses = [(await _signin(rc, extension="1001", password=f"guess-{i}"))[0] for i in range(3)]
        status, body, headers = await _signin(rc, extension="1001", password=PASSWORD)
    assert guesses == [401, 401, 401]
    assert status == 429, body  # even the right password, until the window passes
    assert 0 < int(headers["Retry-After"]) <= 60
    assert body["error"]["field"] == "Retry-After"


@requires_janus
async def test_an_invite_link_signs_in_once_and_only_an_admin_mints_one(tmp_path: Path) -> None:
    api = {"tokens": [{"name": "ops", "token": "admin-token-0123456789abcdef", "scopes": ["admin"]},
                      {"name": "dash", "token": READER, "scopes": ["calls:read"]}]}  # fmt: skip
    async with (
        running_janus(tmp_path / "janus") as janus,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, janus=janus_settings(janus, 60), users=USERS, api=api) as rc,
    ):
        admin = "admin-token-0123456789abcdef"
        denied = (await _post(rc, "/v1/webrtc/invites", {"extension": "1001"}, READER))[0]
        nobody = (await _post(rc, "/v1/webrtc/invites", {"extension": "1999"}, admin))[0]
        status, invite, _ = await _post(rc, "/v1/webrtc/invites", {"extension": "1001"}, admin)
        assert status == 201, invite
        code = invite["url"].removeprefix("/phone?invite=")
        first = await _signin(rc, invite=code)
        second = await _signin(rc, invite=code)
        made = (await _post(rc, "/v1/webrtc/session", {}, first[1]["token"]))[0]
    assert (denied, nobody) == (403, 404)
    assert invite["url"].startswith("/phone?invite=")
    assert first[0] == 201, first
    assert first[1]["extension"] == "1001"
    assert second[0] == 401
    assert made == 201


async def test_the_phone_page_asks_for_no_api_token(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
        aiohttp.ClientSession() as anonymous,
        anonymous.get(rc.base + "/phone") as page,
        anonymous.get(rc.base + "/phone/phone.js") as script,
    ):
        html, js = await page.text(), await script.text()
    assert 'id="token"' not in html
    assert "API token" not in html
    assert 'id="extension"' in html
    assert 'id="password"' in html
    assert "v1/webrtc/signin" in js + html or "signIn" in js
    assert "sessionStorage" not in js  # no credential outlives the tab's memory
