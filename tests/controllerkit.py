"""The whole controller (``controller.app.Controller``) against the FreeSWITCH emulator, for tests.

``async with running_controller(fs, tmp_path, routes=[...]) as rc:`` gives the controller (its API on a
loopback port, CDRs in ``tmp_path``) and an aiohttp session that already carries the bearer token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from pydantic import ValidationError

from controller.app import Controller
from controller.calls.routes import RouteTable
from controller.settings import Settings, SettingsError
from tests.fsemu import FreeSwitchEmulator
from tests.fsemu.ws_peer import tone_pcm
from tests.workerkit import STREAM_SECRET

TOKEN = secrets.token_urlsafe(16)


@dataclass
class RunningController:
    """A running controller and an authenticated HTTP session to its API."""

    controller: Controller
    http: aiohttp.ClientSession
    settings: dict[str, Any]

    @property
    def base(self) -> str:
        """http:// URL of the API."""
        return f"http://{self.settings['api']['host']}:{self.controller.api_port}"

    @property
    def secure_base(self) -> str:
        """https:// URL of the API's HTTPS listener (with ``api.tls``)."""
        host = self.settings["api"].get("tls", {}).get("host") or self.settings["api"]["host"]
        return f"https://{host}:{self.controller.api_tls_port}"

    async def call_ended(self, call_id: str, timeout: float = 5.0) -> None:
        """Wait until the controller wrote the call's closed CDR."""
        store = self.controller.store
        async with asyncio.timeout(timeout):
            while True:
                record = await store.get(call_id)
                if record is not None and record.status == "closed":
                    return
                await asyncio.sleep(0.02)


EslAddress = tuple[str, int, str] | tuple[str, int, str, str]
"""``(host, port, password[, temp_dir])`` of a FreeSWITCH (temp_dir: its -temp, where mod_audio_stream
writes; /tmp when not given)."""


def _node(fs: FreeSwitchEmulator | EslAddress) -> dict[str, Any]:
    if not isinstance(fs, tuple):
        temp_dir = str(fs.config.temp_dir or "/tmp")
        return {"host": "127.0.0.1", "port": fs.port, "password": fs.config.password, "temp_dir": temp_dir}
    node: dict[str, Any] = {"host": fs[0], "port": fs[1], "password": fs[2]}
    if len(fs) == 4:
        node["temp_dir"] = fs[3]
    return node


def controller_settings(
    fs: FreeSwitchEmulator | EslAddress, tmp_path: Path, **sections: Any
) -> dict[str, Any]:
    """Settings for a controller on the emulator (or on the address of a real FreeSWITCH); ``sections``
    are merged over the defaults."""
    node = {**_node(fs), "keepalive": 0}
    data: dict[str, Any] = {
        "freeswitch": {"fs1": node},
        "api": {"host": "127.0.0.1", "port": 0, "tokens": [TOKEN]},
        "cdr": {"path": str(tmp_path / "cdrs.sqlite3")},
        "worker_pool": {"connect_timeout": 1.0, "suspect_s": 30, "wait_s": 0.5},
        "media_worker": {"stream_secret": STREAM_SECRET},
        "calls": {"recordings_dir": str(tmp_path / "recordings")},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    # The settings refuse a route to an agent not in agents: unless given, the agents the routes name exist.
    named = {
        text.split()[1]
        for route in data["calls"].get("routes", ())
        for text in (route.get("action"), route.get("fallback"))
        if text and text.startswith("agent ") and "$" not in text
    }
    data.setdefault("agents", [{"name": name} for name in ["default", *sorted(named - {"default"})]])
    return data


@asynccontextmanager
async def running_controller(
    fs: FreeSwitchEmulator | EslAddress, tmp_path: Path, **sections: Any
) -> AsyncIterator[RunningController]:
    """Run the controller until the block ends; routes reload from ``rc.settings`` (edit it, then reload)."""
    data = controller_settings(fs, tmp_path, **sections)
    settings = Settings.model_validate(data)

    def load_routes() -> RouteTable:
        try:
            calls = Settings.model_validate(data).calls
        except ValidationError as exc:
            raise SettingsError(str(exc)) from exc
        return RouteTable(calls.routes, calls.unknown_cause)

    async with Controller(settings, load_routes=load_routes) as controller:
        stop = asyncio.Event()
        task = asyncio.create_task(controller.serve(stop))
        await controller.nodes["fs1"].wait_connected(5)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            try:
                yield RunningController(controller, http, data)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)


@dataclass
class StandInSession:
    """One stream the stand-in worker received."""

    call_id: str
    metadata: dict[str, Any] | None = None
    texts: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0
    ws: web.WebSocketResponse | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class StandInWorker:
    """A real WebSocket server playing the media worker: it records what arrives and can speak back.

    ``on_metadata(session)`` runs after the first text frame (e.g. to send chunks).
    """

    def __init__(
        self, on_metadata: Callable[[StandInSession], Any] | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.sessions: dict[str, StandInSession] = {}
        self.on_metadata = on_metadata
        self.host = host
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> StandInWorker:
        app = web.Application()
        app.router.add_get("/stream/{call_id}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for session in self.sessions.values():  # a stream still open would hold the runner's shutdown
            if session.ws is not None:
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        """ws:// base URL (the pool appends ``/stream/<call id>``)."""
        return f"ws://{self.host}:{self.port}"

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = StandInSession(request.match_info["call_id"], ws=ws)
        self.sessions[session.call_id] = session
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                if session.metadata is None:
                    session.metadata = data
                    if self.on_metadata is not None:
                        await self.on_metadata(session)
                else:
                    session.texts.append(data)
            elif msg.type == WSMsgType.BINARY:
                session.audio_bytes += len(msg.data)
            session.changed.set()
        return ws


async def speak(session: StandInSession, seconds: float, rate: int = 16000) -> None:
    """Send one streamAudio chunk of a tone."""
    assert session.ws is not None
    data = base64.b64encode(tone_pcm(seconds, rate)).decode()
    body = {"type": "streamAudio", "data": {"audioDataType": "raw", "sampleRate": rate, "audioData": data}}
    await session.ws.send_str(json.dumps(body))


async def register_worker(rc: RunningController, worker_id: str, url: str) -> None:
    """Heartbeat a worker into the controller's pool through the API."""
    beat = {"worker_id": worker_id, "url": url, "capacity": 10, "streams": 0, "heartbeat_s": 30}
    async with rc.http.post(f"{rc.base}/v1/workers/heartbeat", json=beat) as resp:
        assert resp.status == 200, await resp.text()


async def until(check: Callable[[], bool], what: str, deadline_s: float = 10.0) -> None:
    """Poll ``check`` (controller or stand-in state, changed by traffic on the wire) until it holds."""
    try:
        async with asyncio.timeout(deadline_s):
            while not check():  # noqa: ASYNC110 - polls controller and stand-in state over the wire
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {deadline_s} s: {what}") from None
