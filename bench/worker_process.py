"""The worker process of :mod:`bench.worker_streams`, and how the bench reads it (/healthz, /metrics, /proc).

The worker is ``python -m media_worker`` with its settings from the environment only (``SWITCHYARD_…``; its
cwd is the bench's temp dir, where no switchyard.yaml is): loopback, a free port, room for the bench's
largest N, a 20 ms VAD tick, and ``agents:`` = the shipped default list (:func:`listening_agents`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import streamkey
from bench.result import ImpossibleResult
from bench.stream_load import http_get

__all__ = ["HOST", "CpuSample", "WorkerProcess", "health", "listening_agents", "scrape", "wait_streams"]

HOST = "127.0.0.1"
QUIET_S = 86_400.0  # the silence reprompt's timeout in the bench: never within a run


def listening_agents() -> list[dict[str, Any]]:
    """The worker's shipped default ``agents:`` (``default_agents()``: ``default``, Whisper tiny.en, the
    scripted agent, Piper), each with the two things it would say unprompted turned off: the greeting
    at the start of every stream and the reprompt after 8 s of silence. Both are a Piper synthesis per
    stream, the speaking path, which ``bench.voice_turn`` measures; what the agent hears is unchanged."""
    from media_worker.voice.settings import default_agents

    agents = []
    for agent in default_agents():
        silence = agent.silence.model_copy(update={"timeout_s": QUIET_S})
        quiet = agent.model_copy(update={"greeting": None, "silence": silence})
        agents.append(quiet.model_dump(mode="json", exclude_defaults=True))
    return agents


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """The bench's one worker, pinned to ``core`` from its start; stopped by its PID."""

    def __init__(self, workdir: Path, core: int) -> None:
        self.port = _free_port()
        self.log = workdir / "worker.log"
        self.core = core
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env |= {
            "SWITCHYARD_MEDIA_WORKER__HOST": HOST,
            "SWITCHYARD_MEDIA_WORKER__PORT": str(self.port),
            "SWITCHYARD_MEDIA_WORKER__CAPACITY": "4000",
            "SWITCHYARD_MEDIA_WORKER__VAD__TICK_MS": "20",
            "SWITCHYARD_MEDIA_WORKER__STREAM_SECRET": streamkey.SECRET,
            "SWITCHYARD_MEDIA_WORKER__WORKER_ID": streamkey.WORKER_ID,
            "SWITCHYARD_AGENTS": json.dumps(listening_agents()),
        }
        taskset = shutil.which("taskset") if (os.cpu_count() or 1) > core + 1 else None
        prefix = [taskset, "-c", str(core)] if taskset else []
        with self.log.open("wb") as log:  # cwd: the temp dir, where no switchyard.yaml is
            self.proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", "media_worker"], cwd=workdir, env=env, stdout=log, stderr=log
            )

    def cpu_s(self) -> float:
        """CPU seconds the worker used so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def rss_mb(self) -> float:
        """VmRSS of the worker in MB (MiB)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass(frozen=True)
class CpuSample:
    """Where the machine's CPU time went, from /proc (seconds since boot / process start)."""

    at: float
    busy: float  # the worker's core, in processes (user, nice, system; not irq/softirq: loopback TCP)
    steal: float  # all cores, taken by the hypervisor
    worker: float
    bench: float

    @classmethod
    def take(cls, worker: WorkerProcess) -> CpuSample:
        """Sample now."""
        lines = Path("/proc/stat").read_text().splitlines()
        total = [int(x) for x in lines[0].split()[1:]]
        core = next(
            [int(x) for x in line.split()[1:]] for line in lines if line.startswith(f"cpu{worker.core} ")
        )
        hz = os.sysconf("SC_CLK_TCK")
        busy = core[0] + core[1] + core[2]
        return cls(time.monotonic(), busy / hz, total[7] / hz, worker.cpu_s(), time.process_time())

    def shares(self, later: CpuSample) -> tuple[float, float, float, float]:
        """(worker, bench, other processes on the worker's core, steal) in cores, from here to ``later``."""
        wall = later.at - self.at
        worker, bench = later.worker - self.worker, later.bench - self.bench
        other = max(later.busy - self.busy - worker, 0.0)
        return worker / wall, bench / wall, other / wall, (later.steal - self.steal) / wall


async def health(worker: WorkerProcess) -> dict[str, float | None]:
    """The worker's /healthz.

    Raises:
        ImpossibleResult: the worker has exited (with the end of its log).
    """
    if worker.proc.poll() is not None:
        print(worker.log.read_text(errors="replace")[-2000:], file=sys.stderr)
        raise ImpossibleResult(
            f"the worker exited with {worker.proc.returncode} (the end of its log is above)"
        )
    answer: dict[str, float | None] = json.loads(await http_get(HOST, worker.port, "/healthz"))
    return answer


async def scrape(worker: WorkerProcess) -> dict[str, float]:
    """The worker's /metrics, one value per series (``name{labels}``)."""
    text = (await http_get(HOST, worker.port, "/metrics")).decode()
    samples = (line.rpartition(" ") for line in text.splitlines() if line and not line.startswith("#"))
    return {key: float(value) for key, _, value in samples}


async def wait_streams(worker: WorkerProcess, streams: int, timeout: float = 60.0) -> None:
    """Until /healthz reports ``streams`` open (the worker is up when it answers at all)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await health(worker)).get("streams") == streams:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not reach {streams} streams within {timeout:.0f} s")
        await asyncio.sleep(0.2)
