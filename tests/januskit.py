"""A real Janus (Debian's ``janus``) on free loopback ports, configured by ``render_janus``, for tests.

``async with running_janus(tmp_path) as j:`` renders janus/conf from ``j.settings``, starts ``janus
--configs-folder=…`` with a bare environment and waits until its HTTP API, Admin API and WebSocket
listeners answer (the secure one, WSS, when ``janus.tls`` leaves the plain one off). ``await j.kill()``
stops it (by PID; SIGKILL: a crash, nothing said to clients) and ``await j.start()`` runs it again on the
same ports. Tests needing it carry ``requires_janus``.

Media tests run Janus inside a test-made network namespace instead: ``await start_janus_in(ns, settings,
workdir)`` (the namespace stops it with everything it spawned).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from controller.render.janus import render_janus
from controller.settings import Settings
from tests.netnskit import Netns

__all__ = [
    "ADMIN_SECRET",
    "JanusProcess",
    "free_ports",
    "janus_event",
    "janus_section",
    "requires_janus",
    "running_janus",
    "start_janus_in",
]

requires_janus = pytest.mark.skipif(
    shutil.which("janus") is None, reason="janus not installed (apt-get install janus)"
)

ADMIN_SECRET = "januskit-admin-secret"
READY_DEADLINE = 15.0
STOP_DEADLINE = 10.0


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out for loopback TCP now (bound, then released, together)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def janus_section(ports: dict[str, int], **overrides: Any) -> dict[str, Any]:
    """The ``janus`` settings section of a loopback Janus on ``ports`` (keys http, ws, admin)."""
    section: dict[str, Any] = {
        "enabled": True,
        "server_name": "janus-under-test",
        "listen_ip": "127.0.0.1",
        "admin_ip": "127.0.0.1",
        "http_port": ports["http"],
        "ws_port": ports["ws"],
        "admin_port": ports["admin"],
        "admin_secret": ADMIN_SECRET,
        # Below the kernel's ephemeral range, where the listeners' ports come from.
        "rtp_start": 10000,
        "rtp_end": 10999,
    }
    section.update(overrides)
    return section


def janus_event(
    type_: int, body: object, subtype: int | None = None, *, session: int, handle: int, **top: object
) -> dict[str, object]:
    """One event handler object laid out as Janus's src/events.c builds it (``top`` adds or replaces
    top-level fields, e.g. another ``handle_id``)."""
    item: dict[str, object] = {"emitter": "janus-a", "type": type_}
    if subtype is not None:
        item["subtype"] = subtype
    item.update({"timestamp": 1795227192821640, "session_id": session, "handle_id": handle, **top})
    item["event"] = body
    return item


class JanusProcess:
    """One Janus configured from ``settings`` (a whole ``Settings`` with ``janus.enabled``)."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.conf = workdir / "conf"
        self.log = workdir / "janus.log"
        self.process: asyncio.subprocess.Process | None = None
        j = settings.janus
        self.http_url = f"http://127.0.0.1:{j.http_port}/janus"
        self.admin_url = f"http://127.0.0.1:{j.admin_port}/admin"
        self.ws_url = f"ws://127.0.0.1:{j.ws_port}"  # the plain WebSocket (off with janus.tls alone)
        self.wss_url = f"wss://127.0.0.1:{j.tls.port}" if j.tls is not None else None

    def write_conf(self) -> None:
        """Render janus/conf into ``self.conf``."""
        self.conf.mkdir(parents=True, exist_ok=True)
        for name, text in render_janus(self.settings).items():
            (self.conf / name).write_text(text)

    def tail(self) -> str:
        """The end of Janus's log (for assertion messages)."""
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    async def start(self) -> None:
        """Start Janus and wait until all three listeners answer (``READY_DEADLINE``)."""
        assert self.process is None or self.process.returncode is not None, "janus is running"
        # A bare environment: no http_proxy reaches libcurl, HOME is the test's (sofia-sip looks there).
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir)}
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                "janus", f"--configs-folder={self.conf}",
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        process = self.process
        assert process is not None
        j = self.settings.janus
        websocket = j.ws_port if j.tls is None or j.plain_ws else j.tls.port
        async with aiohttp.ClientSession() as http, asyncio.timeout(READY_DEADLINE):
            while True:
                if process.returncode is not None:
                    raise AssertionError(f"janus exited with {process.returncode}:\n{self.tail()}")
                ping = {"janus": "ping", "transaction": "ready"}  # the Admin API answers it without a secret
                if (
                    await _answers(http, self.http_url + "/info", None)
                    and await _answers(http, self.admin_url, ping)
                    and await _accepts("127.0.0.1", websocket)
                ):
                    return
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """Kill Janus (SIGKILL, as a crash) and reap it."""
        await self.stop(signal.SIGKILL)

    async def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop Janus by PID (``signum``, then SIGKILL after ``STOP_DEADLINE``)."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            os.kill(process.pid, signum)
        try:
            async with asyncio.timeout(STOP_DEADLINE):
                await process.wait()
        except TimeoutError:
            os.kill(process.pid, signal.SIGKILL)
            async with asyncio.timeout(STOP_DEADLINE):
                await process.wait()


async def _answers(http: aiohttp.ClientSession, url: str, body: dict[str, Any] | None) -> bool:
    try:
        if body is None:
            request = http.get(url, timeout=aiohttp.ClientTimeout(total=1))
        else:
            request = http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=1))
        async with request as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def _accepts(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(1):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def start_janus_in(
    ns: Netns, settings: Settings, workdir: Path, debug_level: int = 4
) -> asyncio.subprocess.Process:
    """Janus inside ``ns``, configured by ``render_janus(settings)`` (``workdir/janus-conf``, log
    ``workdir/janus.log`` at ``debug_level``, Janus's default 4); returns once its HTTP API answers on
    ``janus.listen_ip`` (``READY_DEADLINE``)."""
    conf = workdir / "janus-conf"
    conf.mkdir()
    for name, text in render_janus(settings).items():
        (conf / name).write_text(text)
    log = workdir / "janus.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir)}
    with log.open("wb") as out:
        process = await ns.spawn(
            "janus", f"--configs-folder={conf}", f"--debug-level={debug_level}",
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    j = settings.janus
    async with aiohttp.ClientSession() as http, asyncio.timeout(READY_DEADLINE):
        while not await _answers(http, f"http://{j.listen_ip}:{j.http_port}/janus/info", None):
            if process.returncode is not None:
                raise AssertionError(f"janus exited {process.returncode}:\n{log.read_text()[-3000:]}")
            await asyncio.sleep(0.1)
    return process


@asynccontextmanager
async def running_janus(workdir: Path, **overrides: Any) -> AsyncIterator[JanusProcess]:
    """A started Janus on free loopback ports; ``overrides`` go into its ``janus`` settings section."""
    ports = dict(zip(("http", "ws", "admin"), free_ports(3), strict=True))
    settings = Settings.model_validate({"janus": janus_section(ports, **overrides)})
    janus = JanusProcess(settings, workdir)
    janus.write_conf()
    await janus.start()
    try:
        yield janus
    finally:
        await janus.stop()
