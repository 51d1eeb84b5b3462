"""What the chaos twin (tests/integration/test_chaos_live.py) needs besides the live stack: faults by PID,
the truth from the phones' side, and the per-step report.

The truth is what sipp saw, independent of the controller under test: each call's answer is the time sipp
received the ``200 OK`` to its authenticated INVITE (``CSeq: 4 INVITE``), read from sipp's message trace
(``-trace_msg``: ``----- <date> <time>`` then the message). Calls are told apart by their Call-ID; the
CDRs (one caller for all of them) are paired with them by answer order, the calls being placed 0.4 s apart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

__all__ = [
    "FS_DEADLINE_S", "StepReport", "answer_times", "kill_child", "kill_pid", "restart_freeswitch",
    "turns_answered",
]  # fmt: skip

FS_DEADLINE_S: Final = 60.0
_STAMP: Final = "----------------------------------------------- "


def answer_times(workdir: Path) -> dict[str, datetime]:
    """Call-ID → when sipp received the 200 OK to its authenticated INVITE (UTC), from its message trace."""
    answers: dict[str, datetime] = {}
    for log in workdir.glob("*_messages.log"):
        for block in log.read_text(errors="replace").split(_STAMP)[1:]:
            stamp, _, message = block.partition("\n")
            if "message received" not in message or "SIP/2.0 200 OK" not in message:
                continue
            if "CSeq: 4 INVITE" not in message:
                continue
            call_id = _header(message, "Call-ID")
            at = datetime.strptime(stamp.strip(), "%Y-%m-%d %H:%M:%S.%f").astimezone(UTC)
            answers.setdefault(call_id, at)
    return answers


def _header(message: str, name: str) -> str:
    for line in message.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""


async def kill_child(process: asyncio.subprocess.Process, deadline_s: float = 10.0) -> None:
    """SIGKILL a child process this test started, by its PID, and reap it."""
    if process.returncode is None:
        os.kill(process.pid, signal.SIGKILL)
    async with asyncio.timeout(deadline_s):
        await process.wait()


async def kill_pid(pid: int, deadline_s: float = 10.0) -> None:
    """SIGKILL ``pid`` (a process the rig started, not our child) and wait until it is gone."""
    os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + deadline_s
    while _alive(pid):
        assert time.monotonic() < end, f"pid {pid} still there {deadline_s} s after SIGKILL"
        await asyncio.sleep(0.05)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def restart_freeswitch(environ: Mapping[str, str]) -> float:
    """``kill -9`` the rig's FreeSWITCH (pid file in ``LIVE_FS_STATE``) and start it again with fsrun on
    the same configuration; the wall-clock time of the kill."""
    state = Path(environ["LIVE_FS_STATE"])
    pid = int((state / "freeswitch.pid").read_text().strip())
    killed_at = time.time()
    await kill_pid(pid)
    env = dict(environ) | {"FS_STATE": str(state)}
    argv = [environ["LIVE_FSRUN"], "start", environ["LIVE_FS_CONF"]]
    done = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=FS_DEADLINE_S, check=False
    )
    assert done.returncode == 0, f"fsrun start exited {done.returncode}: {done.stdout}{done.stderr}"
    return killed_at


def turns_answered(record: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(turn number, agent's answer) of a CDR's turns where the caller said something and the agent
    answered, in the order the CDR has them; numbers are the worker's (a new worker counts from 1)."""
    return [(t["turn"], t["agent"]) for t in record["transcript"] if t.get("caller") and t.get("agent")]


@dataclass
class StepReport:
    """One fault's outcome over the calls: how many still talked after it (their next turn answered)."""

    step: str
    calls: int
    talking: int
    detail: Sequence[str] = ()

    def line(self) -> str:
        extra = f" ({'; '.join(self.detail)})" if self.detail else ""
        return f"chaos: {self.step}: {self.talking}/{self.calls} calls answered their next turn{extra}"
