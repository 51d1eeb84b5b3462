"""Soak: ``--concurrent`` emulated calls kept up by churn for minutes; the controller's memory and tasks
must come back to where they were, and every call must leave a closed CDR.

The set-up is :mod:`bench.call_setup`'s: the FreeSWITCH emulator and the stand-in worker in this process,
the real controller (``switchyard controller``'s code, CDRs in SQLite in a temp dir) in its own, each
pinned to a core when there are two. Each call holds a random time in [``--hold-min``, ``--hold-max``] s
(seeded RNG); when a caller hangs up a new call is placed, at most ``--max-cps`` per second, until the run
time is over or ``--max-calls`` were placed. Calls still up at the end are hung up then.

The warm-up brings ``--concurrent`` calls up at once and tears them down, so the allocator has seen the
peak before the first sample. The controller's VmRSS and ``switchyard_asyncio_tasks`` (its /metrics) are
sampled after the warm-up and again after the last call is torn down and the controller idle: both should
be flat; they are printed, not asserted. Then ``GET /v1/cdrs`` is paged through: a call placed (warm-up
included) with no CDR, an open one, or one closed as ``lost`` is a lost CDR.

The last line: ``calls=<n> concurrent=<n> rss_start_mb=<x> rss_end_mb=<y> tasks_start=<a> tasks_end=<b>
lost_cdrs=<k>``. Impossible results end the run with exit 1 and one line on stderr (:mod:`bench.result`):
no call placed or set up, no CDR, calls not torn down, the controller exiting, any lost CDR.

Run: ``python -m bench.soak [--minutes 10 | --seconds N] [--concurrent 200] [--hold-min 5 --hold-max 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import heapq
import os
import random
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from bench.call_setup import DESTINATION, ROUTES, TEARDOWN_S, Hangups, offer, torn_down
from bench.call_setup_controller import ControllerProcess, StreamSink, cores, proc_rss_mb
from bench.call_setup_emulator import REFERENCE_JSON, EmulatorTap, check_json, fast_serialize_json
from bench.result import ImpossibleResult, figures_line, require_finite
from bench.result import run as run_bench
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator, wire

TASKS = "switchyard_asyncio_tasks"
PROGRESS_S = 30.0  # a progress line this often
WATCH_S = 1.0  # the controller's process is checked this often
CDR_WAIT_S = 15.0  # after the teardown, until every placed call's CDR is closed
PAGE = 1000  # CDRs per GET /v1/cdrs page (its maximum)


@dataclass
class Churn:
    """What the churn phase placed and saw."""

    uuids: list[str] = field(default_factory=list)
    gone: int = 0  # calls already ended when their caller was to hang up
    peak: int = 0  # most calls up at once
    rss_max_mb: float = 0.0  # the controller's, at the progress samples
    seconds: float = 0.0


@dataclass
class Run:
    """Everything the report needs."""

    warm: list[str]
    churn: Churn
    rss_mb: tuple[float, float]  # after the warm-up, after the teardown
    tasks: tuple[float, float]
    torn_down: bool
    cdrs: dict[str, tuple[str, str | None]]  # call id -> (status, disposition)
    started: int  # churn calls with a stream start


async def place(fs: FreeSwitchEmulator, i: int) -> str:
    """One inbound SIP call to the agent route."""
    return await fs.inject_inbound_call(caller=f"{1000 + i % 9000}", destination=DESTINATION)


def alive(ctl: ControllerProcess) -> None:
    """Raise :class:`ImpossibleResult` when the controller's process has exited."""
    if ctl.proc is not None and ctl.proc.returncode is not None:
        raise ImpossibleResult(f"the controller exited with {ctl.proc.returncode} during the run")


async def churn(args: argparse.Namespace, fs: FreeSwitchEmulator, ctl: ControllerProcess) -> Churn:
    """Keep ``--concurrent`` calls up for the run time (at most ``--max-calls``), then hang up the rest."""
    rng, out = random.Random(args.seed), Churn()
    up: list[tuple[float, str]] = []  # (when its caller hangs up, uuid), a heap
    interval = 1.0 / args.max_cps
    began = time.perf_counter()
    deadline, next_place, next_watch, next_progress = began + args.seconds, began, began, began + PROGRESS_S
    # Bounded: each pass places or hangs up a call, or sleeps until one is due (≤ 0.25 s).
    for _ in range(4 * args.max_calls + int(args.seconds / 0.001) + 1000):
        now = time.perf_counter()
        if now >= deadline:
            break
        while up and up[0][0] <= now:
            try:
                await fs.caller_hangup(heapq.heappop(up)[1])
            except KeyError:  # the call ended already
                out.gone += 1
        if len(up) < args.concurrent and len(out.uuids) < args.max_calls and now >= next_place:
            out.uuids.append(await place(fs, len(out.uuids)))
            heapq.heappush(
                up, (time.perf_counter() + rng.uniform(args.hold_min, args.hold_max), out.uuids[-1])
            )
            next_place = max(next_place, now) + interval
            out.peak = max(out.peak, len(up))
            continue
        if now >= next_watch:
            alive(ctl)
            next_watch = now + WATCH_S
        if now >= next_progress:
            rss, tasks = await sample(ctl)
            out.rss_max_mb = max(out.rss_max_mb, rss)
            print(f"  {now - began:6.0f} s: {len(out.uuids)} calls placed, {len(up)} up; controller RSS "
                  f"{rss:.1f} MB, {tasks:.0f} asyncio tasks", flush=True)  # fmt: skip
            next_progress = now + PROGRESS_S
        wake = min(deadline, now + 0.25, up[0][0] if up else deadline)
        if len(up) < args.concurrent and len(out.uuids) < args.max_calls:
            wake = min(wake, next_place)
        await asyncio.sleep(max(0.001, wake - time.perf_counter()))
    out.seconds = time.perf_counter() - began
    for _, uuid in sorted(up):
        try:
            await fs.caller_hangup(uuid)
        except KeyError:
            out.gone += 1
    return out


async def warm_up(args: argparse.Namespace, fs: FreeSwitchEmulator, tap: EmulatorTap) -> list[str]:
    """``--concurrent`` calls up at once (placed at ``--max-cps``), then all hung up; checks the fast JSON."""
    hangups = Hangups(fs)
    ramp_s = args.concurrent / args.max_cps
    warm = await offer(fs, hangups, args.max_cps, args.concurrent, ramp_s + 1.0)
    await hangups.drain(ramp_s + 5.0)
    check_json(tap.kept)
    tap.reset_counts()
    return warm.uuids


async def sample(ctl: ControllerProcess) -> tuple[float, float]:
    """(the controller's VmRSS in MiB, its asyncio tasks) now."""
    tasks = (await ctl.scrape()).get(TASKS, float("nan"))
    return proc_rss_mb(ctl.pid), tasks


async def closed_cdrs(ctl: ControllerProcess, uuids: list[str]) -> dict[str, tuple[str, str | None]]:
    """Every CDR (call id -> status, disposition), paged through ``GET /v1/cdrs``; polled until each of
    ``uuids`` has a closed one or CDR_WAIT_S passed (the controller writes them in its writer thread)."""
    cdrs: dict[str, tuple[str, str | None]] = {}
    for _ in range(int(CDR_WAIT_S / 0.5) + 1):
        cdrs = {}
        cursor: str | None = None
        for _ in range(len(uuids) // PAGE + 10):  # bounded: a few pages more than the calls placed
            params = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
            async with ctl.http.get(f"{ctl.base}/v1/cdrs", params=params) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"GET /v1/cdrs: {resp.status} {await resp.text()}")
                page = await resp.json()
            cdrs.update((r["call_id"], (r["status"], r["disposition"])) for r in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        if all(cdrs.get(u, ("open", None))[0] == "closed" for u in uuids):
            break
        await asyncio.sleep(0.5)
    return cdrs


async def measure(
    args: argparse.Namespace, fs: FreeSwitchEmulator, tap: EmulatorTap, ctl: ControllerProcess
) -> Run:
    """Warm up and sample, churn, tear down and sample, read the CDRs."""
    warm = await warm_up(args, fs, tap)
    if not await torn_down(fs, ctl):
        raise ImpossibleResult(f"the warm-up calls were not torn down within {TEARDOWN_S:g} s")
    alive(ctl)
    rss0, tasks0 = await sample(ctl)
    print(f"warm-up: {len(warm)} calls; controller RSS {rss0:.1f} MB, {tasks0:.0f} asyncio tasks", flush=True)
    done = await churn(args, fs, ctl)
    down = await torn_down(fs, ctl)
    alive(ctl)
    rss1, tasks1 = await sample(ctl)
    cdrs = await closed_cdrs(ctl, warm + done.uuids)
    started = sum(u in tap.started for u in done.uuids)
    return Run(warm, done, (rss0, rss1), (tasks0, tasks1), down, cdrs, started)


async def bench(args: argparse.Namespace, workdir: Path, pins: tuple[int, int] | None) -> Run:
    """Emulator, stand-in worker and controller process up; measure; everything down again."""
    config = EmulatorConfig(password=secrets.token_hex(8), temp_dir=workdir)
    wire.serialize_json = fast_serialize_json  # Event.json_frame looks it up at each call
    try:
        async with FreeSwitchEmulator(config) as fs, StreamSink() as sink:
            tap = EmulatorTap(fs, audio=False, keep=2000)
            ctl = ControllerProcess(workdir, (fs.port, fs.config.password), ROUTES, sink.url)
            try:
                await ctl.start(pins[1] if pins else None, "asyncio")
                print(f"controller: pid {ctl.pid} {f'on core {pins[1]}' if pins else 'unpinned'}", flush=True)
                return await measure(args, fs, tap, ctl)
            finally:
                await ctl.stop()
    finally:
        wire.serialize_json = REFERENCE_JSON


def lost(run: Run) -> list[str]:
    """Calls placed whose CDR is missing, still open, or closed as ``lost``."""
    placed = run.warm + run.churn.uuids
    return [u for u in placed if run.cdrs.get(u, ("open", None))[0] != "closed" or run.cdrs[u][1] == "lost"]


def report(args: argparse.Namespace, run: Run, missing: list[str]) -> None:
    """The human summary."""
    c = run.churn
    cps = len(c.uuids) / max(c.seconds, 1e-9)
    print(f"churn: {len(c.uuids)} calls in {c.seconds:.0f} s ({cps:.1f} CPS), "
          f"{args.concurrent} concurrent (peak {c.peak}), hold {args.hold_min:g}-{args.hold_max:g} s, seed "
          f"{args.seed}; {run.started} got a stream start; {c.gone} ended before their hangup")  # fmt: skip
    d0, d1 = run.rss_mb
    print(f"controller RSS: {d0:.1f} MB after the warm-up, {d1:.1f} MB after the teardown "
          f"({d1 - d0:+.1f} MB; "
          f"max {max(c.rss_max_mb, d0, d1):.1f} MB at the samples); asyncio tasks {run.tasks[0]:.0f} -> "
          f"{run.tasks[1]:.0f}; torn down: {run.torn_down}")  # fmt: skip
    dispositions = collections.Counter(str(d) for _, d in run.cdrs.values())
    print(f"CDRs: {len(run.cdrs)} for {len(run.warm) + len(c.uuids)} calls placed (warm-up included): "
          + ", ".join(f"{k} {n}" for k, n in dispositions.most_common())
          + f"; lost {len(missing)}{' e.g. ' + ', '.join(missing[:3]) if missing else ''}")  # fmt: skip


def check(run: Run, missing: list[str]) -> None:
    """Raise :class:`ImpossibleResult` when the run placed nothing, lost a CDR, or did not end cleanly."""
    if not run.churn.uuids:
        raise ImpossibleResult("no call placed")
    if not run.started:
        raise ImpossibleResult(f"no call set up: none of {len(run.churn.uuids)} calls got a stream start")
    if not run.cdrs:
        raise ImpossibleResult("no CDR in the store")
    if not run.torn_down:
        raise ImpossibleResult(f"calls were not torn down within {TEARDOWN_S:g} s of the last hangup")
    require_finite(tasks_start=run.tasks[0], tasks_end=run.tasks[1])
    if missing:
        raise ImpossibleResult(f"lost_cdrs={len(missing)}: calls with no closed CDR, e.g. {missing[0]}")


def main() -> None:
    """Parse the options, pin, run, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="run time in minutes (default 10)")
    length.add_argument("--seconds", type=float, help="run time in seconds")
    parser.add_argument("--concurrent", type=int, default=200, help="calls kept up at once")
    parser.add_argument("--hold-min", type=float, default=5.0, help="shortest hold time, seconds")
    parser.add_argument("--hold-max", type=float, default=30.0, help="longest hold time, seconds")
    parser.add_argument("--max-calls", type=int, default=100_000, help="most calls placed in the churn")
    parser.add_argument("--max-cps", type=float, default=50.0, help="most calls placed per second")
    parser.add_argument("--seed", type=int, default=18, help="seed of the hold times")
    args = parser.parse_args()
    args.seconds = args.seconds if args.seconds is not None else 60.0 * (args.minutes or 10.0)
    if not 0 < args.seconds <= 4 * 3600:
        parser.error("need a run time in (0 s, 4 h]")
    if not (1 <= args.concurrent <= 2000 and 1 <= args.max_calls <= 1_000_000 and 0 < args.max_cps <= 500):
        parser.error("need 1 <= --concurrent <= 2000, 1 <= --max-calls <= 1e6, 0 < --max-cps <= 500")
    if not 0.1 <= args.hold_min <= args.hold_max <= 3600:
        parser.error("need 0.1 <= --hold-min <= --hold-max <= 3600")
    pins = cores()
    if pins is not None:
        os.sched_setaffinity(0, {pins[0]})
    print(f"bench: pid {os.getpid()} {f'on core {pins[0]}' if pins else 'unpinned (one CPU)'}, uvloop")
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        run = uvloop.run(bench(args, Path(tmp), pins))
    missing = lost(run)
    report(args, run, missing)
    check(run, missing)
    print(figures_line(
        calls=len(run.churn.uuids), concurrent=args.concurrent, rss_start_mb=run.rss_mb[0],
        rss_end_mb=run.rss_mb[1], tasks_start=int(run.tasks[0]), tasks_end=int(run.tasks[1]),
        lost_cdrs=len(missing),
    ))  # fmt: skip


if __name__ == "__main__":
    run_bench("soak", main)
