"""``make bench-smoke``: every bench, run for a few seconds, must give plausible figures, and a broken bench
must fail.

Not a timing gate: no figure is compared with a target, so a slow machine passes. What fails is a bench
exiting non-zero, a last line that is not ``key=value`` figures, a figure missing, NaN or infinite, or one
that cannot be true (a rate of zero, fewer calls or registrations than offered, a p99 below its p50, a
worker that scored fewer streams than it held). Each bench runs as ``python -m bench.<name> <its smoke
options>`` in a process group of its own, with a deadline (then SIGTERM, SIGKILL, to that group only).

The negative control proves the smoke can see a broken bench: ``worker_streams --agent nosuch`` names an
agent the worker does not have, so the worker closes every stream; that run must exit non-zero and say
why on stderr. It also stands for the regression this guards against: a bench whose streams named the
removed ``echo`` agent printed ``streams_per_core=0`` and exited 0.

One verdict line per bench (``PASS``/``FAIL``, the bench, its seconds, its figures or the reason), then the
total; exit 1 when any failed. ``python -m bench.smoke [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.result import parse_figures

ROOT = Path(__file__).resolve().parents[1]
STOP_S = 10.0  # SIGTERM to the bench's group until SIGKILL
TAIL_LINES = 25  # of a failed bench's output, shown under its verdict


@dataclass(frozen=True)
class Rule:
    """What one figure must be, besides finite."""

    says: str
    holds: Callable[[float], bool]


POSITIVE = Rule("> 0", lambda v: v > 0)
NON_NEGATIVE = Rule(">= 0", lambda v: v >= 0)


def between(lo: float, hi: float) -> Rule:
    """A figure in [lo, hi]."""
    return Rule(f"in [{lo:g}, {hi:g}]", lambda v: lo <= v <= hi)


Relation = tuple[str, Callable[[dict[str, float]], bool]]  # what it says, whether it holds


@dataclass(frozen=True)
class Smoke:
    """One bench run and what its figures must be; ``must_fail_with``: a negative control's reason."""

    bench: str
    args: tuple[str, ...]
    figures: dict[str, Rule] = field(default_factory=dict)
    relations: tuple[Relation, ...] = ()
    timeout_s: float = 60.0  # ~5x what it takes on this 2-core VM
    must_fail_with: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The bench and its options, as the verdict names it."""
        return " ".join((self.bench, *self.args))


CPS = 20.0
UTTERANCES = 2
REGISTRATIONS = 2 * 4  # --starts 2 --registrations 4
SOAK_CALLS = 20

SMOKES = (
    Smoke(
        "esl_events",
        ("--events", "3000"),
        {"events_per_s_pipeline": POSITIVE, "events_per_s_greenswitch": POSITIVE},
    ),
    Smoke(
        "worker_streams",
        ("--smoke",),
        {
            "streams": POSITIVE,
            "streams_scored": POSITIVE,
            "decided": between(0.5, 1.1),  # decisions / windows sent: all scored, none twice
            "p99_lag_ms": POSITIVE,
            "rss_mb_per_stream": Rule("> -1 (RSS moves by the allocator's pages)", lambda v: v > -1),
            "vad_us_per_window_batched": POSITIVE,
            "vad_us_per_window_single": POSITIVE,
            "passed": between(0, 1),  # the timing criteria: reported, not gated
        },
        (("streams_scored == streams", lambda f: f["streams_scored"] == f["streams"]),),
        timeout_s=90.0,
    ),
    Smoke(
        "worker_streams",
        ("--smoke", "--agent", "nosuch"),
        must_fail_with=("worker_streams: impossible result", "no agent named 'nosuch'"),
    ),
    Smoke(
        "call_setup",
        ("--cps", f"{CPS:g}", "--seconds", "3", "--hold", "0.5", "--warmup", "5"),
        {
            "cps": Rule(f"in (0, {CPS * 1.1:g}]", lambda v: 0 < v <= CPS * 1.1),  # not more than offered
            "p50_ms": POSITIVE,
            "p99_ms": POSITIVE,
            "cpu_ms_per_call": POSITIVE,
        },
        (("p99_ms >= p50_ms", lambda f: f["p99_ms"] >= f["p50_ms"]),),
    ),
    Smoke(
        "soak",
        ("--seconds", "8", "--concurrent", str(SOAK_CALLS), "--hold-min", "1", "--hold-max", "3"),
        {
            "calls": POSITIVE,
            "concurrent": between(SOAK_CALLS, SOAK_CALLS),
            "rss_start_mb": POSITIVE,
            "rss_end_mb": POSITIVE,
            "tasks_start": POSITIVE,
            "tasks_end": POSITIVE,
            "lost_cdrs": between(0, 0),
        },
        (("calls > concurrent (calls were replaced)", lambda f: f["calls"] > f["concurrent"]),),
    ),
    Smoke(
        "voice_turn",
        ("--rounds", "1", "--utterances", str(UTTERANCES)),
        {
            "turns": between(UTTERANCES, UTTERANCES),  # every utterance answered
            "overhead_p95_ms": NON_NEGATIVE,
            "first_audio_p50_ms": POSITIVE,
            "asr_p50_ms": POSITIVE,
            "agent_p50_ms": NON_NEGATIVE,
            "tts_first_audio_p50_ms": POSITIVE,
        },
        (("first_audio_p50_ms >= asr_p50_ms", lambda f: f["first_audio_p50_ms"] >= f["asr_p50_ms"]),),
        timeout_s=90.0,
    ),
    Smoke(
        "janus_register",
        ("--starts", "2", "--registrations", str(REGISTRATIONS // 2), "--max-seconds", "60"),
        {
            "registrations": between(REGISTRATIONS, REGISTRATIONS),
            "p50_ms": POSITIVE,
            "p99_ms": POSITIVE,
            "max_ms": POSITIVE,
            "late_acks": between(0, REGISTRATIONS),
        },
        (("p50_ms <= p99_ms <= max_ms", lambda f: f["p50_ms"] <= f["p99_ms"] <= f["max_ms"]),),
    ),
)


def check_figures(smoke: Smoke, line: str) -> list[str]:
    """What is wrong with a bench's last line (nothing: the figures are plausible)."""
    try:
        figures = parse_figures(line)
    except ValueError as exc:
        return [f"the last line is not key=value figures ({exc}): {line!r}"]
    problems = [f"{key} missing" for key in smoke.figures if key not in figures]
    for key, rule in smoke.figures.items():
        value = figures.get(key)
        if value is not None and not math.isfinite(value):
            problems.append(f"{key}={value} is not finite")
        elif value is not None and not rule.holds(value):
            problems.append(f"{key}={value:g} is not {rule.says}")
    if not problems:
        problems += [f"not {says}" for says, holds in smoke.relations if not holds(figures)]
    return problems


def judge(smoke: Smoke, returncode: int, stdout: str, stderr: str) -> tuple[bool, str]:
    """(passed, what the verdict says) of one finished run."""
    out = [line for line in stdout.splitlines() if line.strip()]
    err = [line for line in stderr.splitlines() if line.strip()]
    reason = err[-1] if err else "(nothing on stderr)"
    if smoke.must_fail_with:
        if returncode == 0:
            return False, f"exited 0 (must fail); last line: {out[-1] if out else '(none)'}"
        missing = [m for m in smoke.must_fail_with if m not in reason]
        if missing:
            return False, f"exited {returncode} without saying {missing}: {reason}"
        return True, f"failed as it must, exit {returncode}: {reason}"
    if returncode != 0:
        return False, f"exited {returncode}: {reason}"
    if not out:
        return False, "printed nothing"
    problems = check_figures(smoke, out[-1])
    return (not problems), "; ".join(problems) if problems else out[-1]


def execute(smoke: Smoke) -> tuple[int, str, str]:
    """Run the bench in a process group of its own: (exit code, stdout, stderr); past its deadline the group
    is stopped and the code is -9."""
    argv = [sys.executable, "-m", f"bench.{smoke.bench}", *smoke.args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=smoke.timeout_s)
    except subprocess.TimeoutExpired:
        out, err = _stop_group(proc)
        return -9, out, f"{err}\nno result within {smoke.timeout_s:g} s: stopped"
    return proc.returncode, out, err


def _stop_group(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM to the group the bench leads (the bench and what it started), SIGKILL after STOP_S; returns
    what the bench printed."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.communicate(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            continue
    return "", ""


def smoke_one(smoke: Smoke) -> bool:
    """Run one bench, print its verdict line (and, when it failed, the end of its output)."""
    began = time.monotonic()
    returncode, out, err = execute(smoke)
    passed, says = judge(smoke, returncode, out, err)
    print(
        f"{'PASS' if passed else 'FAIL'} {smoke.label} ({time.monotonic() - began:.1f} s): {says}", flush=True
    )
    if not passed:
        for line in (out.splitlines() + err.splitlines())[-TAIL_LINES:]:
            print(f"    | {line}")
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the smokes in turn (they pin cores: never two at once); 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--only", action="append", choices=sorted({s.bench for s in SMOKES}), help="run these"
    )
    args = parser.parse_args(argv)
    chosen = [s for s in SMOKES if not args.only or s.bench in args.only]
    began = time.monotonic()
    passed = sum(smoke_one(smoke) for smoke in chosen)
    print(f"bench-smoke: {passed} of {len(chosen)} passed in {time.monotonic() - began:.0f} s")
    return 0 if passed == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
