"""The /phone page's state machines (``controller/web/phone.js``) through the races janus_sip.c produces.

The page runs in a real headless Chromium on this host (``tests/phonekit.py``) with Debian's janus.js,
served by the controller's own page routes (``controller/api/phone.py``) on loopback. Its Janus is
``tests/fakejanus.py``: the test reads each plugin request the page sends and pushes the SIP plugin's
events in the order it chooses. Measured on the real Janus 1.1.2, the plugin's handler thread can push its
acknowledgement of a request ('registering', 'calling', 'hangingup', 'declining') after the events its
SIP thread pushed when the far end answered at once (bench/janus_register.py counts the late
'registering'); the page must end in the same state either way, and show an event it has no row for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from controller.api.phone import add_phone_routes
from controller.api.webrtc import AgentExtension, SipIdentity, WebrtcSession
from controller.janus.settings import JanusSettings
from tests import phonekit
from tests.appkit import served
from tests.controllerkit import TOKEN
from tests.fakejanus import FakeJanus, answer_sdp
from tests.phonekit import PhonePage, phone_page

JANUS = JanusSettings.model_validate({"enabled": True, "admin_secret": "s", "listen_ip": "127.0.0.1"})
IDENTITY = "sip:webrtc-0123456789ab@switchyard.test"
CALL_ID = "c4ll-1d@janus"
LOGGED_MS = 10_000


def _skip_reason() -> str | None:
    if (reason := phonekit.browser_skip_reason()) is not None:
        return reason
    if not (JANUS.janus_js.exists() and JANUS.adapter_js.exists()):
        return "needs libjs-janus-gateway and libjs-webrtc-adapter"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def _session(janus_url: str) -> WebrtcSession:
    """What ``POST /v1/webrtc/session`` answers, with the fake Janus's URL."""
    sip = SipIdentity(
        username="webrtc-0123456789ab",
        password="secret",
        proxy="sip:127.0.0.1:5060",
        identity=IDENTITY,
        domain="switchyard.test",
    )
    return WebrtcSession(
        janus_url=janus_url,
        janus_token="janus-token",
        sip=sip,
        feed_token="feed-token",
        extensions=[AgentExtension(destination="7001", agent="concierge")],
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )


def _app(janus: FakeJanus) -> web.Application:
    """The page's routes, a browser session pointing at ``janus`` (same origin), and a quiet event feed."""

    async def signin(request: web.Request) -> web.Response:
        assert await request.json() == {"extension": "1001", "password": TOKEN}
        return web.json_response({"token": "credential", "extension": "1001"}, status=201)

    async def create_session(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer credential"
        body = _session(f"ws://{request.host}/janus").model_dump(mode="json")
        return web.json_response(body, status=201)

    async def events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    add_phone_routes(app, JANUS)
    app.router.add_post("/v1/webrtc/signin", signin)
    app.router.add_post("/v1/webrtc/session", create_session)
    app.router.add_get("/v1/events", events)
    app.router.add_get("/janus", janus.handle)
    return app


@asynccontextmanager
async def _page(tmp_path: Path) -> AsyncIterator[tuple[PhonePage, FakeJanus]]:
    """The page signed in, its register request read (not yet answered); on exit, no console errors."""
    janus = FakeJanus()
    async with served(_app(janus)) as port:
        base = f"http://127.0.0.1:{port}"
        async with phone_page(None, tmp_path, base) as phone:
            await phone.page.goto(f"{base}/phone", timeout=phonekit.WAIT_MS)
            await phone.page.fill("#extension", "1001")
            await phone.page.fill("#password", TOKEN)
            await phone.page.click("#connect")
            register = await janus.request("register")
            assert register.body["username"] == IDENTITY
            assert register.body["outbound_proxy"] == "sip:127.0.0.1:5060"
            yield phone, janus
            assert phone.errors() == [], phone.console


def _logged(phone: PhonePage, text: str) -> AbstractAsyncContextManager[Any]:
    """A block after which the page has logged a line containing ``text`` (waited for, bounded)."""
    return phone.page.expect_console_message(lambda m: text in m.text, timeout=LOGGED_MS)


async def _registered(phone: PhonePage, janus: FakeJanus) -> None:
    await janus.push("registering")
    await janus.push("registered", username=IDENTITY)
    await phone.wait("#phone[data-registration=registered]")


async def _calls(phone: PhonePage, janus: FakeJanus) -> str:
    """Click the agent's button; the SDP of the call request's offer."""
    await phone.page.click("#extensions button[data-destination='7001']")
    call = await janus.request("call")
    assert call.body["uri"] == "sip:7001@switchyard.test"
    assert call.jsep is not None
    assert call.jsep["type"] == "offer"
    await phone.wait("#call-state:text-is('calling…')")
    return str(call.jsep["sdp"])


async def _quiet(phone: PhonePage) -> None:
    """No error shown, no event without a row."""
    assert await phone.page.is_hidden("#error"), await phone.page.inner_text("#error")
    assert phone.unexpected() == [], phone.console


async def test_registering_ack_after_registered_is_a_no_op(tmp_path: Path) -> None:
    async with _page(tmp_path) as (phone, janus):
        await janus.push("registered", username=IDENTITY)
        async with _logged(phone, "registering in registered: no-op"):
            await janus.push("registering")
        async with _logged(phone, "registered in registered: no-op"):
            await janus.push("registered", username=IDENTITY)  # a refresh's 200
        assert await phone.page.inner_text("#reg-state") == f"registered as {IDENTITY}"
        assert await phone.page.get_attribute("#phone", "data-registration") == "registered"
        assert await phone.page.is_enabled("#call")
        await _quiet(phone)


async def test_registering_ack_after_an_immediate_failure_is_a_no_op(tmp_path: Path) -> None:
    async with _page(tmp_path) as (phone, janus):
        async with _logged(phone, "registering in failed: no-op"):
            await janus.push("registration_failed", code=403, reason="Forbidden")
            await janus.push("registering")
        await phone.wait("#reg-state[data-state=failed]")
        assert await phone.page.inner_text("#error") == "SIP registration failed: 403 Forbidden"
        assert await phone.page.is_disabled("#call")
        assert phone.unexpected() == [], phone.console


async def test_calling_ack_after_an_immediate_answer_then_hangup_before_its_ack(tmp_path: Path) -> None:
    async with _page(tmp_path) as (phone, janus):
        await _registered(phone, janus)
        offer = await _calls(phone, janus)
        async with _logged(phone, "calling in in-call: no-op"):
            await janus.push("accepted", jsep=answer_sdp(offer), call_id=CALL_ID, username="sip:7001@x")
            await janus.push("calling", call_id=CALL_ID)
        await phone.wait("#call-state[data-state=connected]")
        assert await phone.page.get_attribute("#phone", "data-call") == "in-call"
        assert await phone.page.inner_text("#sip-call-id") == CALL_ID
        assert await phone.page.is_enabled("#keypad button[data-digit='5']")
        await phone.page.click("#hangup")
        await janus.request("hangup")
        async with _logged(phone, "hangingup in idle: no-op"):
            await janus.push("hangup", call_id=CALL_ID, code=200, reason="OK")
            await janus.push("hangingup", call_id=CALL_ID)
        await phone.wait("#call-state[data-state=ended]:text-is('ended (200 OK)')")
        assert await phone.page.is_enabled("#call")
        assert await phone.page.is_disabled("#hangup")
        await _quiet(phone)


async def test_calling_ack_after_early_media(tmp_path: Path) -> None:
    async with _page(tmp_path) as (phone, janus):
        await _registered(phone, janus)
        offer = await _calls(phone, janus)
        async with _logged(phone, "calling in progress: no-op"):
            await janus.push("progress", jsep=answer_sdp(offer), call_id=CALL_ID)
            await janus.push("calling", call_id=CALL_ID)
        await janus.push("accepted", call_id=CALL_ID)  # no SDP: the 183's stands (janus_sip.c earlymedia)
        await phone.wait("#call-state[data-state=connected]")
        await _quiet(phone)


async def test_calling_ack_after_the_call_failed_at_once(tmp_path: Path) -> None:
    async with _page(tmp_path) as (phone, janus):
        await _registered(phone, janus)
        await _calls(phone, janus)
        async with _logged(phone, "calling in idle: no-op"):
            await janus.push("hangup", call_id=CALL_ID, code=404, reason="Not Found")
            await janus.push("calling", call_id=CALL_ID)
        await phone.wait("#call-state:text-is('ended (404 Not Found)')")
        assert await phone.page.is_enabled("#call")
        await _quiet(phone)


async def test_declined_call_acks_and_hangup_are_no_ops(tmp_path: Path) -> None:
    async with _page(tmp_path) as (phone, janus):
        await _registered(phone, janus)
        offer = {"type": "offer", "sdp": "v=0\r\n"}  # declined unread
        caller = {"username": "sip:1000@x", "displayname": "Desk"}
        await janus.push("incomingcall", jsep=offer, call_id=CALL_ID, **caller)
        await phone.wait("#incoming:has-text('Desk <sip:1000@x>')")
        assert await phone.page.is_disabled("#call")
        await phone.page.click("#decline")
        await janus.request("decline")
        async with _logged(phone, "hangup in idle: no-op"):
            await janus.push("declining", call_id=CALL_ID, code=486)
            await janus.push("hangup", call_id=CALL_ID, code=486, reason="Busy Here")
        assert await phone.page.inner_text("#call-state") == "ended (declined)"
        assert await phone.page.is_hidden("#incoming")
        await _quiet(phone)


async def test_an_event_without_a_row_is_logged_and_shown(tmp_path: Path) -> None:
    async with _page(tmp_path) as (phone, janus):
        await _registered(phone, janus)
        await janus.push("ringing", call_id=CALL_ID)  # no call was placed
        await phone.wait("#error:text-is(\"Unexpected call event 'ringing' while idle (ignored).\")")
        assert len(phone.unexpected()) == 1, phone.console
        assert await phone.page.get_attribute("#phone", "data-call") == "idle"
        assert await phone.page.inner_text("#call-state") == "no call"
        assert await phone.page.is_enabled("#call")
        await janus.push_error(447, "Wrong state (not in a call?)")
        await phone.wait("#error:text-is('SIP plugin error 447: Wrong state (not in a call?)')")
