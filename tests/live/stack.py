"""A Switchyard stack for one live test, on the rig's real FreeSWITCH (tests/live/rig.py).

Janus (inside the rig's namespace), the controller (``python -m controller run``) and a media worker
(``python -m media_worker``) are started from the rig's one settings file, as a deployment runs them, and
stopped by PID when the test ends. The stack is ready when the controller's ``/readyz`` says its ESL node
and Janus are connected and the worker's heartbeat has reached it; each process logs to its own file,
whose end :meth:`LiveStack.logs` gives for assertion messages.

Where a user runs the stack twins against a deployment of their own, :func:`deployed_target` reads it
from ``SWITCHYARD_LIVE_API`` and friends instead (see README "Live tests").
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, Self

import aiohttp

from controller.settings import Settings, load_settings
from tests.januskit import start_janus_in
from tests.netnskit import Netns, stop_process

__all__ = ["LiveStack", "StackTarget", "deployed_target"]

REPO: Final = Path(__file__).resolve().parents[2]
READY_DEADLINE: Final = 90.0  # the worker loads Whisper, Piper and Silero first
LOG_TAIL: Final = 3000


@dataclass(frozen=True, slots=True)
class StackTarget:
    """What a stack twin talks to: the controller's API and FreeSWITCH's internal SIP profile."""

    api: str
    token: str
    sip: str = ""  # host:port
    sip_domain: str = ""
    sip_user: str = ""
    sip_password: str = ""
    netns: Netns | None = None  # the rig's test namespace, where a browser reaches Janus


def deployed_target(environ: Mapping[str, str]) -> StackTarget | None:
    """A stack of the user's own, named by ``SWITCHYARD_LIVE_API`` (+ ``_TOKEN``, ``_SIP*``), if any."""
    api, token = environ.get("SWITCHYARD_LIVE_API"), environ.get("SWITCHYARD_LIVE_API_TOKEN")
    if not api or not token:
        return None
    return StackTarget(
        api.rstrip("/"),
        token,
        environ.get("SWITCHYARD_LIVE_SIP", ""),
        environ.get("SWITCHYARD_LIVE_SIP_DOMAIN", ""),
        environ.get("SWITCHYARD_LIVE_SIP_USER", ""),
        environ.get("SWITCHYARD_LIVE_SIP_PASSWORD", ""),
    )


@dataclass
class LiveStack:
    """Janus, the controller and a worker from the rig's settings; ``async with`` starts and stops them."""

    environ: Mapping[str, str]
    workdir: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)  # on top of child_env for every process
    settings: Settings = field(init=False)
    netns: Netns = field(init=False)
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    _logs: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        env = self.environ
        self.settings = load_settings(self.child_env(), Path(env["SWITCHYARD_LIVE_RIG"]))
        self.netns = Netns(
            env["LIVE_NETNS"], env["LIVE_HOST_IF"], env["LIVE_NS_IF"], env["LIVE_HOST_IP"], env["LIVE_NS_IP"]
        )

    @classmethod
    def configured(cls, environ: Mapping[str, str]) -> bool:
        """Whether the rig named this process's stack (``SWITCHYARD_LIVE_RIG``)."""
        return bool(environ.get("SWITCHYARD_LIVE_RIG"))

    @property
    def target(self) -> StackTarget:
        api = self.settings.api
        internal = self.settings.sip.internal
        user = self.settings.users[0]
        return StackTarget(
            f"http://{api.host}:{api.port}",
            api.tokens[0].token.get_secret_value(),
            f"{internal.listen_ip}:{internal.port}",
            self.settings.sip.domain,
            user.extension,
            user.secret(),
            self.netns,
        )

    def child_env(self) -> dict[str, str]:
        """The environment of the stack's processes: no ``SWITCHYARD_*`` but the settings file's path."""
        env = {key: value for key, value in self.environ.items() if not key.startswith("SWITCHYARD_")}
        return env | {"SWITCHYARD_CONFIG": self.environ["SWITCHYARD_LIVE_RIG"]} | dict(self.extra_env)

    async def __aenter__(self) -> Self:
        try:
            janus_dir = self.workdir / "janus"
            janus_dir.mkdir()
            self.processes["janus"] = await start_janus_in(self.netns, self.settings, janus_dir)
            self._logs["janus"] = janus_dir / "janus.log"
            await self.start("controller", "-m", "controller", "run")
            await self.start("worker", "-m", "media_worker")
            await self.ready()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(
        self, name: str, *args: str, env: Mapping[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        """Start (or restart) the stack process ``name``: ``python args`` with its log in the workdir, and
        ``env`` on top of the stack's environment (e.g. a second worker's ``SWITCHYARD_MEDIA_WORKER__*``)."""
        log = self.workdir / f"{name}.log"
        self._logs[name] = log
        with log.open("ab") as out:
            process = await _spawn(out, self.child_env() | dict(env or {}), sys.executable, *args)
        self.processes[name] = process
        return process

    async def aclose(self) -> None:
        """Stop every process by PID (workers, controller, then Janus), each with a bounded wait."""
        names = [n for n in self.processes if n.startswith("worker")] + ["controller", "janus"]
        for name in names:
            process = self.processes.pop(name, None)
            if process is not None:
                await stop_process(process)

    def logs(self) -> str:
        """The end of each process's log."""
        parts = []
        for name, path in self._logs.items():
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            parts.append(f"--- {name} ({path}):\n{text[-LOG_TAIL:]}")
        return "\n".join(parts)

    async def ready(self, workers: int = 1) -> None:
        """Wait until ``/readyz`` passes and ``workers`` workers are healthy (deadline READY_DEADLINE)."""
        target = self.target
        headers = {"Authorization": f"Bearer {target.token}"}
        timeout = aiohttp.ClientTimeout(total=5)
        try:
            async with (
                aiohttp.ClientSession(headers=headers, timeout=timeout) as http,
                asyncio.timeout(READY_DEADLINE),
            ):
                while not await self._up(http, target.api, workers):  # noqa: ASYNC110 - polls over HTTP
                    await asyncio.sleep(0.25)
        except TimeoutError:
            raise AssertionError(f"the stack was not ready in {READY_DEADLINE} s:\n{self.logs()}") from None

    async def _up(self, http: aiohttp.ClientSession, api: str, workers: int) -> bool:
        for name, process in self.processes.items():
            if process.returncode is not None:
                raise AssertionError(f"{name} exited {process.returncode}:\n{self.logs()}")
        try:
            async with http.get(f"{api}/readyz") as ready:
                if ready.status != 200:
                    return False
            async with http.get(f"{api}/v1/workers") as response:
                listed = (await response.json())["workers"]
        except (aiohttp.ClientError, TimeoutError):
            return False
        return sum(1 for w in listed if w["healthy"]) >= workers


async def _spawn(out: IO[bytes], env: Mapping[str, str], *argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
