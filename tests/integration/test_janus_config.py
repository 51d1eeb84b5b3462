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
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from controller.render.janus import render_janus
from controller.settings import Settings

pytestmark = [
    pytest.mark.skipif(shutil.which("janus") is None, reason="janus not installed (apt-get install janus)"),
    pytest.mark.asyncio(loop_scope="module"),
]

# Backslash before a quote, before "n" and at the end: each decodes differently if an escape is missing.
ADMIN_SECRET = 'admin\\"secret\\nx"\\'
EVENTS_USER = "janus-events"
EVENTS_PASSWORD = 'events\\"pass\\tword\\'
SERVER_NAME = "janus-under-test"
READY_DEADLINE = 15.0
STOP_DEADLINE = 10.0
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
    """A Janus process and where it listens."""

    process: asyncio.subprocess.Process
    http: str
    admin: str
    ws: str
    ports: dict[str, int]
    sink: EventSink


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out for loopback TCP now (bound, then released, together)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _settings(ports: dict[str, int], events_url: str) -> Settings:
    return Settings.model_validate(
        {
            "janus": {
                "enabled": True,
                "server_name": SERVER_NAME,
                "listen_ip": "127.0.0.1",
                "admin_ip": "127.0.0.1",
                "http_port": ports["http"],
                "ws_port": ports["ws"],
                "admin_port": ports["admin"],
                "admin_secret": ADMIN_SECRET,
                # Below the kernel's ephemeral range, where the listeners' ports come from.
                "rtp_start": 10000,
                "rtp_end": 10999,
                "events": {
                    "enabled": True,
                    "url": events_url,
                    "user": EVENTS_USER,
                    "password": EVENTS_PASSWORD,
                },
            }
        }
    )


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


async def _wait_ready(process: asyncio.subprocess.Process, info_url: str, log: Path) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(READY_DEADLINE):
        while True:
            if process.returncode is not None:
                raise AssertionError(f"janus exited with {process.returncode}:\n{_tail(log)}")
            try:
                async with session.get(info_url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        os.kill(process.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_DEADLINE):
            await process.wait()
    except TimeoutError:
        os.kill(process.pid, signal.SIGKILL)
        async with asyncio.timeout(STOP_DEADLINE):
            await process.wait()


def _write_conf(conf: Path, ports: dict[str, int], events_port: int) -> None:
    conf.mkdir()
    for name, text in render_janus(_settings(ports, f"http://127.0.0.1:{events_port}/janus/events")).items():
        (conf / name).write_text(text)


async def _start(workdir: Path, conf: Path) -> asyncio.subprocess.Process:
    # A bare environment: no http_proxy reaches libcurl, HOME is the test's (sofia-sip looks there).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir)}
    with (workdir / "janus.log").open("wb") as out:
        return await asyncio.create_subprocess_exec(
            "janus", f"--configs-folder={conf}",
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def janus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningJanus]:
    workdir = tmp_path_factory.mktemp("janus")
    sink = EventSink()
    app = web.Application()
    app.router.add_post("/janus/events", sink.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports = dict(zip(("http", "ws", "admin"), _free_ports(3), strict=True))
        _write_conf(workdir / "conf", ports, runner.addresses[0][1])
        process = await _start(workdir, workdir / "conf")
        try:
            await _wait_ready(process, f"http://127.0.0.1:{ports['http']}/janus/info", workdir / "janus.log")
            yield RunningJanus(
                process=process,
                http=f"http://127.0.0.1:{ports['http']}/janus",
                admin=f"http://127.0.0.1:{ports['admin']}/admin",
                ws=f"ws://127.0.0.1:{ports['ws']}/",
                ports=ports,
                sink=sink,
            )
        finally:
            await _stop(process)
    finally:
        await runner.cleanup()


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
    mine = [line.split() for line in out.decode().splitlines() if f"pid={janus.process.pid}," in line]
    listening = sorted((columns[0], columns[4]) for columns in mine)
    # No RTP/ICE socket exists before a PeerConnection or a SIP call, and sofia-sip binds only per
    # registered account, so what remains is the three TCP listeners, each on loopback.
    assert listening == sorted(("tcp", f"127.0.0.1:{port}") for port in janus.ports.values())
    assert not any(re.match(r"(0\.0\.0\.0|\[::\]|\*):", columns[4]) for columns in mine)
