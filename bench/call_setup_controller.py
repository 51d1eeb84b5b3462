"""The controller process of :mod:`bench.call_setup`, the bench's handle on it, and the worker it streams to.

Run as a module, it is the controller: pinned to one core, it runs what ``switchyard controller`` runs
(``controller.__main__.run``: the assembled ``Controller``, SIGHUP route reload) with the same log format,
until SIGTERM, so the process's CPU time is the controller's and nothing else's. The settings come from a
JSON file (no ``SWITCHYARD_`` environment, no ``switchyard.yaml``). The event loop is asyncio by default,
as ``switchyard controller`` uses; ``--loop uvloop`` shows what uvloop would change.

:class:`ControllerProcess` is the bench's side: it writes the settings (API on a free loopback port, a
random bearer token, CDRs in the bench's temp dir, the bench's route), spawns the process, waits for
``/readyz``, heartbeats the stand-in worker, scrapes ``/metrics`` and stops it by its PID.
:class:`StreamSink` is that worker; :class:`Sample` reads where the CPU time went.

Run by the bench: ``python -m bench.call_setup_controller --settings FILE [--core N] [--loop uvloop]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import uvloop
from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from controller.settings import Settings

HOST = "127.0.0.1"
READY_S = 20.0  # controller start until /readyz answers 200
STOP_S = 10.0  # SIGTERM until the controller has exited (then SIGKILL)
BEAT_S = 20.0  # heartbeat period (the beat says 60 s; the pool keeps a worker 3 beats)
CLK_TCK = os.sysconf("SC_CLK_TCK")
GC_MARK = "controller gc: "  # the log line with the GC passes of the whole run


# ---- /proc ---------------------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (utime + stime, every thread) ``pid`` used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_s() -> tuple[float, float]:
    """(CPU seconds every process used: user + nice + system, CPU seconds the hypervisor took) so far,
    all cores."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[1]) + int(fields[2]) + int(fields[3])) / CLK_TCK, int(fields[8]) / CLK_TCK


@dataclass(frozen=True)
class Sample:
    """CPU clocks at one instant: the controller's, this process's, the machine's, the hypervisor's."""

    at: float
    controller: float
    bench: float
    machine: float
    steal: float

    @classmethod
    def take(cls, pid: int) -> Sample:
        """Sample now (``pid``: the controller)."""
        return cls(time.perf_counter(), proc_cpu_s(pid), time.process_time(), *machine_s())

    def shares(self, later: Sample) -> tuple[float, float, float, float]:
        """(controller, bench, other processes, steal) in cores from here to ``later``."""
        wall = later.at - self.at
        controller, bench = later.controller - self.controller, later.bench - self.bench
        others = max(0.0, later.machine - self.machine - controller - bench)
        return controller / wall, bench / wall, others / wall, (later.steal - self.steal) / wall


def cores() -> tuple[int, int] | None:
    """(bench core, controller core) when this process may use two CPUs, else None (no pinning)."""
    allowed = sorted(os.sched_getaffinity(0))
    return (allowed[0], allowed[1]) if len(allowed) >= 2 else None


def free_port() -> int:
    """A free loopback TCP port for the controller's API."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# ---- the bench's side ----------------------------------------------------------------------------


class ControllerProcess:
    """The controller in its own process on the emulator.

    ``start`` spawns it, waits for ``/readyz`` and registers the worker at ``worker_url`` (beaten again
    every BEAT_S); ``stop`` stops the beats and the process (SIGTERM to its PID, SIGKILL after STOP_S).
    """

    def __init__(
        self, workdir: Path, esl: tuple[int, str], routes: list[dict[str, str]], worker_url: str
    ) -> None:
        """Write the settings; ``esl`` is the emulator's port and password."""
        self.port, self.token, self.worker_url = free_port(), secrets.token_urlsafe(16), worker_url
        self.base = f"http://{HOST}:{self.port}"
        settings = {
            "freeswitch": {"fs1": {"host": HOST, "port": esl[0], "password": esl[1]}},
            "api": {"host": HOST, "port": self.port, "tokens": [self.token]},
            "cdr": {"path": str(workdir / "cdrs.sqlite3")},
            "calls": {"routes": routes, "recordings_dir": str(workdir / "recordings")},
        }
        self.settings = workdir / "controller.json"
        self.settings.write_text(json.dumps(settings))
        self.log = workdir / "controller.log"
        self.workdir = workdir  # its cwd: no switchyard.yaml there
        self.proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._beats: asyncio.Task[None] | None = None

    def argv(self, core: int | None, loop: str) -> tuple[list[str], dict[str, str]]:
        """The command line and environment (no ``SWITCHYARD_`` variables) of the process."""
        argv = [sys.executable, "-m", "bench.call_setup_controller", "--settings", str(self.settings),
                "--core", str(-1 if core is None else core), "--loop", loop]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        return argv, env

    @property
    def pid(self) -> int:
        """The controller's PID."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def http(self) -> aiohttp.ClientSession:
        """A session that carries the bearer token."""
        assert self._http is not None
        return self._http

    async def start(self, core: int | None, loop: str) -> None:
        """Spawn it pinned to ``core``, wait for /readyz (its ESL connection is up), register the worker."""
        argv, env = self.argv(core, loop)
        with self.log.open("wb") as out:  # the child keeps its own descriptor
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdout=out, stderr=out, cwd=self.workdir, env=env
            )
        self._http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"})
        for _ in range(int(READY_S / 0.1)):
            if self.proc.returncode is not None:
                raise RuntimeError(f"the controller exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                async with self.http.get(f"{self.base}/readyz") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"the controller was not ready within {READY_S:.0f} s:\n{self.tail()}")
        await self.beat()
        self._beats = asyncio.create_task(self._keep_beating(), name="heartbeats")

    async def beat(self) -> None:
        """One worker heartbeat (capacity far above the load, so the pool never runs out)."""
        body = {
            "worker_id": "bench",
            "url": self.worker_url,
            "capacity": 100_000,
            "streams": 0,
            "heartbeat_s": 60,
        }
        async with self.http.post(f"{self.base}/v1/workers/heartbeat", json=body) as resp:
            if resp.status != 200:
                raise RuntimeError(f"heartbeat refused: {resp.status} {await resp.text()}")

    async def _keep_beating(self) -> None:
        for _ in range(int(86400 / BEAT_S)):  # bounded: a day of beats
            await asyncio.sleep(BEAT_S)
            await self.beat()

    async def scrape(self) -> dict[str, float]:
        """/metrics, one value per series (``name{labels}``)."""
        async with self.http.get(f"{self.base}/metrics") as resp:
            text = await resp.text()
        samples = (line.rpartition(" ") for line in text.splitlines() if line and not line.startswith("#"))
        return {key: float(value) for key, _, value in samples}

    async def stop(self) -> None:
        """Stop the beats, then the process: SIGTERM to its PID; SIGKILL after STOP_S."""
        if self._beats is not None:
            self._beats.cancel()
            await asyncio.gather(self._beats, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                async with asyncio.timeout(STOP_S):
                    await self.proc.wait()
            except TimeoutError:
                print(f"the controller ignored SIGTERM for {STOP_S:.0f} s: killed")
                self.proc.kill()
                await self.proc.wait()

    def tail(self, chars: int = 3000) -> str:
        """The end of its log."""
        return self.log.read_text(errors="replace")[-chars:]


class StreamSink:
    """The stand-in media worker: a real aiohttp WebSocket server on ``/stream/{call_id}`` keeping nothing.

    It notes the calls whose metadata (the first text frame) arrived and drops everything else.
    ``tests.controllerkit.StandInWorker`` keeps every session, its request and WebSocketResponse, for
    assertions: thousands of those made the garbage collector's full passes pause this process.
    """

    def __init__(self) -> None:
        self.with_metadata: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> StreamSink:
        app = web.Application()
        app.router.add_get("/stream/{call_id}", self._stream)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        """ws:// base URL (the pool appends ``/stream/<call id>``)."""
        return f"ws://{HOST}:{self.port}"

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        call_id = request.match_info["call_id"]
        async for msg in ws:  # until the emulator closes the stream (hangup)
            if msg.type == WSMsgType.TEXT:
                self.with_metadata.add(call_id)
        return ws


# ---- the controller's side -----------------------------------------------------------------------------


class GcPauses:
    """The controller's garbage-collector passes (a ``gc.callbacks`` hook; it never pauses anything)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.passes = [0, 0, 0]
        self.max_s = [0.0, 0.0, 0.0]
        self.total_s = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        """Time one pass."""
        if phase == "start":
            self.started = time.perf_counter()
            return
        took, generation = time.perf_counter() - self.started, info["generation"]
        self.passes[generation] += 1
        self.max_s[generation] = max(self.max_s[generation], took)
        self.total_s += took

    def line(self) -> str:
        """What the bench reads from the log."""
        return GC_MARK + json.dumps({"passes": self.passes, "max_s": self.max_s, "total_s": self.total_s})


def logged_gc_pauses(log: Path) -> dict[str, Any] | None:
    """The GC passes a controller logged at its end (:meth:`GcPauses.line`)."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if GC_MARK in line:
            found: dict[str, Any] = json.loads(line.split(GC_MARK, 1)[1])
            return found
    return None


async def serve(settings: Settings) -> None:
    """Run the controller until SIGTERM or SIGINT."""
    from controller.__main__ import run

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop)


def main() -> None:
    """Pin, read the settings, serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--settings", type=Path, required=True, help="JSON file of controller Settings")
    parser.add_argument("--core", type=int, default=-1, help="CPU to pin this process to (-1: no pinning)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from controller.settings import Settings

    settings = Settings.model_validate_json(args.settings.read_text())
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    try:
        (uvloop.run if args.loop == "uvloop" else asyncio.run)(serve(settings))
    finally:
        logging.getLogger("switchyard.bench").info("%s", pauses.line())


if __name__ == "__main__":
    main()
