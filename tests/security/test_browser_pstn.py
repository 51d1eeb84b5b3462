"""Issue 17, attack 3: browser identities dialled the PSTN.

A browser user (``POST /v1/webrtc/session``, registered through Janus) got ``user_context`` =
``calls.context`` from the controller's directory answer, the context that also held the trunks' outbound
rules. The controller (a real Janus for the session, the emulator for FreeSWITCH) is asked for a browser
user as mod_xml_curl asks; the configuration rendered from the same settings, with a trunk, must hold no
trunk rule in the context that answer names, while desk users with ``outbound`` keep theirs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from controller.render.freeswitch import render_freeswitch
from controller.settings import Settings
from tests.controllerkit import running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.integration.test_webrtc_session import DOMAIN, janus_settings, lookup
from tests.januskit import requires_janus, running_janus
from tests.unit.fsrenderkit import _context, _document

TRUNK: dict[str, Any] = {
    "name": "pstn", "proxy": "127.0.0.1:5999", "auth": "ip", "inbound_cidrs": ["127.0.0.1/32"],
    "caller_id_number": "+15550100", "outbound": [{"pattern": "(1[2-9][0-9]{9})"}],
}  # fmt: skip


def _bridges(root: ET.Element, context: str) -> list[str]:
    return [data for _, _, actions in _context(root, context) for app, data in actions if app == "bridge"]


def _user_context(xml: str, user: str) -> str:
    found = ET.fromstring(xml).find(
        f".//domain[@name='{DOMAIN}']/users/user[@id='{user}']/variables/variable[@name='user_context']"
    )
    assert found is not None, xml
    return found.get("value") or ""


@requires_janus
async def test_a_browser_user_dials_in_a_context_without_trunk_rules(tmp_path: Path) -> None:
    async with (
        running_janus(tmp_path / "janus") as janus,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, janus=janus_settings(janus, 60)) as rc,
    ):
        async with rc.http.post(rc.base + "/v1/webrtc/session", json={"display_name": "Mallory"}) as resp:
            session = await resp.json()
            assert resp.status == 201, session
        username = session["sip"]["username"]
        status, xml = await lookup(rc, username)
        data = dict(rc.settings)
    assert status == 200
    browser = _user_context(xml, username)
    data |= {
        "trunks": [TRUNK],
        "users": [{"extension": "1000", "password": "desk-password-1"}],
        "event_socket": {"node": "fs1"},
        "freeswitch": {"fs1": {**data["freeswitch"]["fs1"], "password": "render-password-1"}},
    }
    root, _, _ = _document(render_freeswitch(Settings.model_validate(data)))
    desk = root.find(".//user[@id='1000']/variables/variable[@name='user_context']")
    assert desk is not None
    assert _bridges(root, desk.get("value") or "") == ["sofia/gateway/pstn/$1"]  # desk users keep the PSTN
    assert _bridges(root, browser) == []
