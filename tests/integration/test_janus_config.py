"""The rendered Janus configuration run by the real Janus (Debian's ``janus``), observed from loopback.

One Janus per module, started with ``--configs-folder`` holding ``render_janus``'s files, on free loopback
ports; its sample event handler posts to an aiohttp server of the test. The secrets carry ``"`` and ``\\`` so
the libconfig quoting is checked by libconfig itself: a wrong escape would make the Admin API refuse the
secret or the event handler send another password.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from tests.appkit import served
from tests.januskit import JanusProcess, requires_janus, running_janus

pytestmark = [requires_janus, pytest.mark.asyncio(loop_scope="module")]

# Backslash before a quote, before "n" and at the end: each decodes differently if an escape is missing.
ADMIN_SECRET = 'admin\\"secret\\nx"\\'
EVENTS_USER = "janus-events"
EVENTS_PASSWORD = 'events\\"pass\\tword\\'
SERVER_NAME = "janus-under-test"
_transactions = itertools.count()


@dataclass
class EventSink:
    """The controller's stand-in: records every POST of Janus's sample event handler."""

    authorizations: list[str | None] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        body = await request.json()
        self.events.extend(body if isinstance(body, list) else [body])
        self.arrived.set()
        return web.Response(text="ok")

    async def wait_for(self, wanted: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """The first event whose top-level items include ``wanted`` (waits at most ``timeout``)."""
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if wanted.items() <= event.items():
                        return event
                self.arrived.clear()
                await self.arrived.wait()


@dataclass
class RunningJanus:
    """The Janus under test (``tests.januskit``) and the event sink it posts to."""

    janus: JanusProcess
    sink: EventSink

    @property
    def http(self) -> str:
        return self.janus.http_url

    @property
    def admin(self) -> str:
        return self.janus.admin_url

    @property
    def ws(self) -> str:
        return self.janus.ws_url + "/"

    @property
    def ports(self) -> dict[str, int]:
        j = self.janus.settings.janus
        return {"http": j.http_port, "ws": j.ws_port, "admin": j.admin_port}

    @property
    def pid(self) -> int:
        assert self.janus.process is not None
        return self.janus.process.pid


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def janus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningJanus]:
    sink = EventSink()
    app = web.Application()
    app.router.add_post("/janus/events", sink.handle)
    async with served(app) as port:
        events = {
            "enabled": True,
            "url": f"http://127.0.0.1:{port}/janus/events",
            "user": EVENTS_USER,
            "password": EVENTS_PASSWORD,
        }
        workdir = tmp_path_factory.mktemp("janus")
        async with running_janus(
            workdir, server_name=SERVER_NAME, admin_secret=ADMIN_SECRET, events=events
        ) as process:
            yield RunningJanus(process, sink)


async def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    body = {"transaction": f"t{next(_transactions)}", **body}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.post(url, json=body) as response,
    ):
        assert response.status == 200
        reply: dict[str, Any] = await response.json(content_type=None)
    return reply


async def _add_token(janus: RunningJanus, secret: str = ADMIN_SECRET) -> tuple[str, dict[str, Any]]:
    token = secrets.token_hex(16)
    reply = await _post(janus.admin, {"janus": "add_token", "token": token, "admin_secret": secret})
    return token, reply


async def test_info_shows_the_rendered_core(janus: RunningJanus) -> None:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.get(f"{janus.http}/info") as response,
    ):
        info = await response.json(content_type=None)
    assert info["janus"] == "server_info"
    assert info["server-name"] == SERVER_NAME
    assert list(info["plugins"]) == ["janus.plugin.sip"]
    assert sorted(info["transports"]) == ["janus.transport.http", "janus.transport.websockets"]
    assert list(info["events"]) == ["janus.eventhandler.sampleevh"]
    assert info["loggers"] == {}
    assert info["auth_token"] is True
    assert info["api_secret"] is False
    assert info["event_handlers"] is True
    assert info["full-trickle"] is False
    assert "stun-server" not in info
    assert "turn-server" not in info


async def test_create_without_token_is_refused(janus: RunningJanus) -> None:
    reply = await _post(janus.http, {"janus": "create"})
    assert reply["janus"] == "error"
    assert reply["error"]["code"] == 403


async def test_admin_token_lets_a_client_create_a_session(janus: RunningJanus) -> None:
    token, added = await _add_token(janus)
    created = await _post(janus.http, {"janus": "create", "token": token})
    assert added["janus"] == "success", added
    assert created["janus"] == "success", created
    session_id = created["data"]["id"]
    # The sample event handler posts with basic auth; type 1 = session event (src/events/eventhandler.h).
    event = await janus.sink.wait_for({"type": 1, "session_id": session_id})
    assert event["event"]["name"] == "created"
    assert event["emitter"] == SERVER_NAME
    expected = base64.b64encode(f"{EVENTS_USER}:{EVENTS_PASSWORD}".encode()).decode()
    assert set(janus.sink.authorizations) == {f"Basic {expected}"}


async def test_core_start_event_reaches_the_controller(janus: RunningJanus) -> None:
    # Type 256 = core event, subtype 1 = server status (src/events/eventhandler.h); "started" has the info.
    event = await janus.sink.wait_for({"type": 256, "subtype": 1})
    assert event["event"]["status"] == "started"
    assert event["emitter"] == SERVER_NAME
    assert list(event["event"]["info"]["plugins"]) == ["janus.plugin.sip"]


async def test_admin_request_with_a_wrong_secret_is_refused(janus: RunningJanus) -> None:
    token, reply = await _add_token(janus, secret="not-the-secret")
    created = await _post(janus.http, {"janus": "create", "token": token})
    assert reply["janus"] == "error"
    assert reply["error"]["code"] == 403
    assert created["janus"] == "error"
    assert created["error"]["code"] == 403


async def test_websocket_transport_creates_a_session_with_a_token(janus: RunningJanus) -> None:
    token, _ = await _add_token(janus)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.ws_connect(janus.ws, protocols=("janus-protocol",)) as ws,
    ):
        assert ws.protocol == "janus-protocol"
        await ws.send_json({"janus": "create", "transaction": "no-token"})
        refused = await ws.receive_json(timeout=5)
        await ws.send_json({"janus": "create", "transaction": "with-token", "token": token})
        created = await ws.receive_json(timeout=5)
    assert refused["janus"] == "error"
    assert refused["error"]["code"] == 403
    assert created["janus"] == "success"
    assert created["transaction"] == "with-token"
    assert isinstance(created["data"]["id"], int)


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) not installed")
async def test_janus_listens_only_where_configured(janus: RunningJanus) -> None:
    process = await asyncio.create_subprocess_exec(
        "ss", "-H", "-lntup", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    async with asyncio.timeout(10):
        out, _ = await process.communicate()
    mine = [line.split() for line in out.decode().splitlines() if f"pid={janus.pid}," in line]
    listening = sorted((columns[0], columns[4]) for columns in mine)
    # No RTP/ICE socket exists before a PeerConnection or a SIP call, and sofia-sip binds only per
    # registered account, so what remains is the three TCP listeners, each on loopback.
    assert listening == sorted(("tcp", f"127.0.0.1:{port}") for port in janus.ports.values())
    assert not any(re.match(r"(0\.0\.0\.0|\[::\]|\*):", columns[4]) for columns in mine)
