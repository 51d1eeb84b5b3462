"""``calls.context`` names the dialplan context everywhere it appears: the rendered profile, directory,
dialplan and DID transfers, the browser users' directory answer, and the API's originate/transfer default."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from pydantic import ValidationError

from controller.api.directory import directory_answer
from controller.janus.browsers import BrowserUsers
from controller.settings import CallSettings
from tests.unit.fsrenderkit import _context, _document, _render, _set
from tests.unit.test_webrtc_link import TokenLedger, form


def test_the_rendered_tree_uses_the_configured_context() -> None:
    root, _, _ = _document(_render(_set("calls.context", "pbx")))
    internal = root.find(".//profile[@name='internal']/settings/param[@name='context']")
    assert internal is not None
    assert internal.get("value") == "pbx"
    user_context = {v.get("value") for v in root.iterfind(".//user/variables/variable[@name='user_context']")}
    assert user_context == {"pbx-pstn"}  # the fixture's desk users may dial out (controller.calls.contexts)
    assert [name for name, _, _ in _context(root, "pbx")][-1] == "unrouted"
    transfers = [
        data for _, _, actions in _context(root, "public") for app, data in actions if app == "transfer"
    ]
    assert transfers
    assert all(data.endswith(" XML pbx-inbound") for data in transfers)
    assert root.find("section[@name='dialplan']/context[@name='switchyard']") is None


async def test_browser_users_dial_in_the_configured_context() -> None:
    users = BrowserUsers(TokenLedger(), "pbx.test", 60)
    user = await users.create("Ann")
    answer = ET.fromstring(directory_answer(form(user.username), users, "pbx"))
    values = [v.get("value") for v in answer.iterfind(".//variable[@name='user_context']")]
    assert values == ["pbx"]


def test_public_is_not_a_context_for_routes() -> None:
    with pytest.raises(ValidationError, match="'public' is the trunks' context"):
        CallSettings(context="public")
