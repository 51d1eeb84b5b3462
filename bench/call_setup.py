"""Call setup: the controller routing N parked calls per second to a worker, on one core.

The FreeSWITCH emulator and a stand-in media worker (a real aiohttp WebSocket server) run in this process,
pinned to one core; the controller runs in its own (:mod:`bench.call_setup_controller`: what ``switchyard
controller`` runs), pinned to the other, so its CPU time (``/proc/<pid>/stat``, all threads) is its own.
The worker is registered through ``POST /v1/workers/heartbeat``; the route ``^7\\d{3}$ → agent default``
(the shipped default agent: the controller refuses a route to an agent not in ``agents:``) makes the
controller answer each parked call and send ``uuid_audio_stream <uuid> start ws://… mono 8k``.

After a warm-up, ``--cps`` SIP calls to 7150 per second are offered for ``--seconds`` on an absolute
schedule; each caller hangs up ``--hold`` s after its INVITE. A call's latency runs from the emulator
firing CHANNEL_PARK to the emulator receiving its ``uuid_audio_stream … start``, both stamped here (the
emulator's ``Apps.park`` and ``uuid_audio_stream`` handler are wrapped on the instance); a call without
one within 5 s of its park, or before its caller hung up, failed. Achieved CPS = calls with a stream start
/ (first offer → the later of the schedule's end and the last start). ``cpu_ms_per_call`` = the
controller's CPU from the window's start until every call is torn down and the controller idle again
(answer, stream start, hangup, CDR) / calls with a stream start. This process's CPU share is printed too:
near 100 %, the emulator, not the controller, is the limit; CPU used by other processes is printed as well.

The emulated streams connect and send their metadata but no audio (the controller never sees it; 50
frames/s per stream would load this process, not the controller); ``--audio`` sends it in real time.
Two more things keep the Python emulator from being the limit: its event JSON is built with the C string
encoder (the same bytes, checked on every warm-up event; ``--reference-json`` keeps its own code), and
this process's garbage collector is off during the window. On a quiet core it offered 400 CPS at 83 % of
that core; on a VM losing CPU to steal it saturated near 150-170 CPS (the steal is printed).
The last line: ``cps=<n> p50_ms=<n> p99_ms=<n> cpu_ms_per_call=<n>``. Impossible results end the run
with exit 1 and one line on stderr (:mod:`bench.result`): no warm-up call or no window call set up, no
stream reaching the stand-in worker, calls not torn down, the controller exiting.

Run: ``make bench`` or ``python -m bench.call_setup [--cps 200] [--seconds 10] [--hold 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import math
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench.call_setup_controller import (
    CLK_TCK,
    ControllerProcess,
    Sample,
    StreamSink,
    cores,
    logged_gc_pauses,
    proc_cpu_s,
    proc_rss_mb,
)
from bench.call_setup_emulator import (
    REFERENCE_JSON,
    START_LIMIT_S,
    EmulatorTap,
    check_json,
    fast_serialize_json,
)
from bench.result import ImpossibleResult, figures_line
from bench.result import run as run_bench
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator, wire

DESTINATION = "7150"
ROUTES = [{"destination": "^7\\d{3}$", "action": "agent default", "language": "en"}]
TEARDOWN_S = 30.0  # last hangup until no channel and no call is left
LATE_S = 0.005  # an offer this late counts as late (the generator fell behind)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (nan when empty)."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# ---- the emulator: stamped, and cheaper where it is not the subject -----------------------------------


@dataclass
class Offered:
    """What the generator offered and how well it kept its schedule."""

    uuids: list[str]
    t0: float  # perf_counter of the first scheduled offer
    end: float  # perf_counter when the schedule ended (last offer made, one interval on)
    late: int  # offers made more than LATE_S after their time
    max_late_s: float
    gone: int = 0  # calls already ended when their caller was to hang up


class Hangups:
    """Callers to hang up, in time order (every call holds the same time)."""

    def __init__(self, fs: FreeSwitchEmulator) -> None:
        self.fs = fs
        self.due: collections.deque[tuple[float, str]] = collections.deque()
        self.gone = 0

    async def run_due(self, now: float) -> None:
        """Hang up every caller whose time has come."""
        while self.due and self.due[0][0] <= now:
            _, uuid = self.due.popleft()
            try:
                await self.fs.caller_hangup(uuid)
            except KeyError:  # the call ended already (e.g. the controller rejected it)
                self.gone += 1

    async def drain(self, limit_s: float) -> None:
        """Hang up the rest as each one comes due (bounded by ``limit_s``)."""
        for _ in range(int(limit_s / 0.005) + 1):
            if not self.due:
                return
            await self.run_due(time.perf_counter())
            await asyncio.sleep(0.005)


async def offer(fs: FreeSwitchEmulator, hangups: Hangups, cps: float, total: int, hold: float) -> Offered:
    """``total`` inbound calls, one every 1/``cps`` s by absolute time; each hangs up ``hold`` s later."""
    interval = 1.0 / cps
    t0 = time.perf_counter() + 0.05
    uuids: list[str] = []
    late, max_late = 0, 0.0
    for i in range(total):
        at = t0 + i * interval
        await hangups.run_due(time.perf_counter())
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lateness = time.perf_counter() - at
        late += lateness > LATE_S
        max_late = max(max_late, lateness)
        uuids.append(await fs.inject_inbound_call(caller=f"{1000 + i % 9000}", destination=DESTINATION))
        hangups.due.append((time.perf_counter() + hold, uuids[-1]))
    return Offered(uuids, t0, max(time.perf_counter(), t0 + total * interval), late, max_late)


async def torn_down(fs: FreeSwitchEmulator, ctl: ControllerProcess) -> bool:
    """Wait until the emulator has no channel and the controller no call, then until its CPU is idle."""
    for _ in range(int(TEARDOWN_S / 0.1)):
        if not fs.channels and (await ctl.scrape()).get("switchyard_calls_active") == 0:
            break
        await asyncio.sleep(0.1)
    else:
        return False
    before = proc_cpu_s(ctl.pid)
    for _ in range(50):  # CDR writes finish in the controller's writer thread; idle = no tick in 0.3 s
        await asyncio.sleep(0.3)
        now = proc_cpu_s(ctl.pid)
        if now - before < 1.5 / CLK_TCK:
            break
        before = now
    return True


# ---- the run -------------------------------------------------------------------------------------------


class LoopProbe:
    """Samples this process's loop lag and the emulator's event backlog toward the controller; GC off.

    The emulated calls leave cyclic garbage that only full collections free: they paused the emulator
    100 ms and more every few seconds (10-40 ms every 0.25 s when forced that often), latency the
    controller did not cause. So the collector is off while the probe runs, unless this process's RSS
    passes ``rss_limit_mb`` (checked each second).
    """

    def __init__(self, fs: FreeSwitchEmulator, rss_limit_mb: float = 2048.0) -> None:
        self.fs = fs
        self.rss_limit_mb = rss_limit_mb
        self.max_lag_s = 0.0
        self.max_backlog = 0
        self.collections = 0

    async def run(self, period: float = 0.01) -> None:
        """Sample every ``period`` until cancelled (bounded: an hour)."""
        gc.disable()
        try:
            for i in range(int(3600 / period)):
                before = time.perf_counter()
                await asyncio.sleep(period)
                self.max_lag_s = max(self.max_lag_s, time.perf_counter() - before - period)
                backlog = (len(listener.queue) for listener in self.fs._listeners)
                self.max_backlog = max(self.max_backlog, *backlog, 0)
                if i % int(1 / period) == 0 and proc_rss_mb(os.getpid()) > self.rss_limit_mb:
                    gc.collect()
                    self.collections += 1
        finally:
            gc.enable()


@dataclass
class Run:
    """Everything the report needs."""

    offered: Offered
    latencies_s: list[float]  # sorted, of the calls that got a stream start
    window_s: float  # first offer → the later of the schedule's end and the last stream start
    cpu: tuple[Sample, Sample, Sample]  # window start, window end, all torn down and idle
    metrics: tuple[dict[str, float], dict[str, float]]  # the controller's /metrics before and after
    tap: EmulatorTap  # counts from the window's start to the end of the teardown
    connected: int  # streams whose metadata reached the stand-in worker
    rss_mb: tuple[float, float]  # controller VmRSS after the warm-up and after the teardown
    torn_down: bool
    probe: LoopProbe
    warm: tuple[int, int]  # warm-up calls offered, stream starts


async def warm_up(
    args: argparse.Namespace, fs: FreeSwitchEmulator, tap: EmulatorTap, ctl: ControllerProcess
) -> tuple[int, int]:
    """A few calls through everything (≤ 50 CPS), torn down; checks the fast JSON; (offered, started)."""
    hangups = Hangups(fs)
    warm = await offer(fs, hangups, min(args.cps, 50.0), args.warmup, 0.5)
    await hangups.drain(5.0)
    await torn_down(fs, ctl)
    check_json(tap.kept)
    tap.reset_counts()
    return len(warm.uuids), sum(tap.latency_s(uuid) is not None for uuid in warm.uuids)


async def measure(
    args: argparse.Namespace,
    fs: FreeSwitchEmulator,
    sink: StreamSink,
    tap: EmulatorTap,
    ctl: ControllerProcess,
) -> Run:
    """Warm up, then the offered-load window, then hang up, tear down and take the figures."""
    warm = await warm_up(args, fs, tap, ctl)
    if warm[0] and not warm[1]:
        raise ImpossibleResult(f"no call set up: none of {warm[0]} warm-up calls got a stream start")
    gc.collect()
    rss_warm, before = proc_rss_mb(ctl.pid), await ctl.scrape()
    hangups, probe = Hangups(fs), LoopProbe(fs)
    probing = asyncio.create_task(probe.run())
    try:
        start = Sample.take(ctl.pid)
        offered = await offer(fs, hangups, args.cps, round(args.cps * args.seconds), args.hold)
        end = Sample.take(ctl.pid)
        await hangups.drain(args.hold + 1.0)
    finally:
        probing.cancel()
        await asyncio.gather(probing, return_exceptions=True)
    done = await torn_down(fs, ctl)
    idle, after = Sample.take(ctl.pid), await ctl.scrape()
    offered.gone = hangups.gone
    latencies = sorted(x for x in map(tap.latency_s, offered.uuids) if x is not None)
    last_start = max((tap.started[u] for u in offered.uuids if tap.latency_s(u) is not None), default=0.0)
    connected = len(sink.with_metadata.intersection(offered.uuids))  # a one-leg call's id is its UUID
    return Run(
        offered, latencies, max(offered.end, last_start) - offered.t0, (start, end, idle), (before, after),
        tap, connected, (rss_warm, proc_rss_mb(ctl.pid)), done, probe, warm,
    )  # fmt: skip


async def bench(
    args: argparse.Namespace, workdir: Path, pins: tuple[int, int] | None
) -> tuple[Run, Path, int | None]:
    """Emulator, stand-in worker and controller process up; measure; everything down again. Returns the
    run, the controller's log and its exit code if it exited before it was stopped (else None)."""
    config = EmulatorConfig(password=secrets.token_hex(8), temp_dir=workdir)
    if not args.reference_json:
        wire.serialize_json = fast_serialize_json  # Event.json_frame looks it up at each call
    try:
        async with FreeSwitchEmulator(config) as fs, StreamSink() as sink:
            tap = EmulatorTap(fs, audio=args.audio, keep=0 if args.reference_json else 2000)
            ctl = ControllerProcess(workdir, (fs.port, fs.config.password), ROUTES, sink.url)
            try:
                await ctl.start(pins[1] if pins else None, args.loop)
                where = f"on core {pins[1]}" if pins else "unpinned"
                print(f"controller: pid {ctl.pid} {where}, {args.loop} loop", flush=True)
                measured = await measure(args, fs, sink, tap, ctl)
                return measured, ctl.log, ctl.proc.returncode if ctl.proc is not None else None
            finally:
                await ctl.stop()
    finally:
        wire.serialize_json = REFERENCE_JSON


# ---- the report ----------------------------------------------------------------------------------------


def report_calls(args: argparse.Namespace, run: Run) -> tuple[float, float, float, float]:
    """Print the offered load, the calls handled, the latencies; (cps, p50, p99, controller ms per call)."""
    o, lat = run.offered, [x * 1000 for x in run.latencies_s]
    n, handled = len(o.uuids), len(lat)
    cps = handled / run.window_s if run.window_s > 0 else 0.0
    p50, p95, p99 = (percentile(lat, q) for q in (0.50, 0.95, 0.99))
    print(f"warm-up: {run.warm[0]} calls, {run.warm[1]} stream starts")
    print(f"offered: {n} calls at {args.cps:g} CPS for {args.seconds:g} s, hold {args.hold:g} s; "
          f"{o.late} offers late by > {LATE_S * 1000:.0f} ms (max {o.max_late_s * 1000:.1f} ms); bench "
          f"loop lag max {run.probe.max_lag_s * 1000:.1f} ms, GC off "
          f"({run.probe.collections} forced)")  # fmt: skip
    print(f"handled: {handled} stream starts in {run.window_s:.2f} s = {cps:.1f} CPS; failed {n - handled} "
          f"(no start within {START_LIMIT_S:g} s of the park); {run.connected} streams reached the stand-in "
          f"worker; {o.gone} calls ended before their hangup")  # fmt: skip
    within = sum(x <= 10.0 for x in lat) / handled if handled else 0.0
    print(f"park -> stream start (emulator clock): p50 {p50:.2f} p95 {p95:.2f} p99 {p99:.2f} "
          f"max {max(lat, default=float('nan')):.2f} ms; {within:.1%} <= 10 ms")  # fmt: skip
    before, after = run.metrics
    key, le10 = "switchyard_route_seconds", 'switchyard_route_seconds_bucket{le="0.01"}'
    routed = after.get(f"{key}_count", 0.0) - before.get(f"{key}_count", 0.0)
    if routed:
        mean = (after[f"{key}_sum"] - before.get(f"{key}_sum", 0.0)) / routed * 1000
        share = (after[le10] - before.get(le10, 0.0)) / routed
        print(f"controller's own view (its park -> ::connect): {routed:.0f} decisions, mean {mean:.2f} ms, "
              f"{share:.1%} <= 10 ms")  # fmt: skip
    cpu_s = run.cpu[2].controller - run.cpu[0].controller
    return cps, p50, p99, cpu_s / handled * 1000 if handled else float("nan")


def report_resources(run: Run, log: Path, per_call: float) -> None:
    """Print the api commands, the emulator's figures, CPU and memory, the controller log, and notes."""
    n = max(1, len(run.offered.uuids))
    print("api commands per call: " + ", ".join(f"{c} {k / n:.2f}" for c, k in run.tap.api.most_common()))
    left = run.metrics[1].get("switchyard_calls_active", float("nan"))
    print(f"emulator: {run.tap.events / n:.1f} events fired per call; max ESL backlog to the controller "
          f"{run.probe.max_backlog}; calls left in the controller {left:.0f}; torn down: "
          f"{run.torn_down}")  # fmt: skip
    controller, bench, others, steal = run.cpu[0].shares(run.cpu[1])
    print(f"CPU in the window: controller {controller:.0%} of its core; bench process (emulator + stand-in "
          f"worker + generator) {bench:.0%} of its core; other processes {others:.2f} cores; "
          f"steal {steal:.0%}")  # fmt: skip
    cpu_s = run.cpu[2].controller - run.cpu[0].controller
    print(f"controller: {cpu_s:.2f} CPU s from the window's start to idle after the teardown = "
          f"{per_call:.2f} ms per call; RSS {run.rss_mb[0]:.1f} MB after the warm-up, "
          f"{run.rss_mb[1]:.1f} MB after the teardown")  # fmt: skip
    pauses = logged_gc_pauses(log)
    if pauses is not None:
        longest = [round(x * 1000, 1) for x in pauses["max_s"]]
        print(f"controller GC, whole run: {pauses['passes']} passes by generation, longest {longest} ms, "
              f"{pauses['total_s']:.2f} s in all")  # fmt: skip
    marks = (" ERROR ", " WARNING ", " CRITICAL ", "Traceback")
    found = [line for line in log.read_text(errors="replace").splitlines() if any(m in line for m in marks)]
    print(f"controller log: {len(found)} ERROR/WARNING/CRITICAL/traceback lines")
    for line in found[:5]:
        print(f"  {line[:300]}")
    if others > 0.1:
        print(f"NOTE: other processes used {others:.2f} cores during the window: the figures are disturbed")
    if bench > 0.85 or run.probe.max_lag_s > 0.05 or run.offered.late > n // 20:
        print("NOTE: the bench process was near its core's limit or behind its schedule: the emulator, not "
              "the controller, may be what limits the rate and adds to the latency")  # fmt: skip


def check(run: Run, ctl_exit: int | None) -> None:
    """Raise :class:`ImpossibleResult` when the run set no call up or did not end cleanly."""
    n, handled = len(run.offered.uuids), len(run.latencies_s)
    if ctl_exit is not None:
        raise ImpossibleResult(f"the controller exited with {ctl_exit} during the run")
    if not handled:
        raise ImpossibleResult(
            f"no call set up: none of {n} calls got a stream start within {START_LIMIT_S:g} s"
        )
    if not run.connected:
        raise ImpossibleResult(f"no call set up: {handled} stream starts, but no stream reached the worker")
    if not run.torn_down:
        raise ImpossibleResult(f"calls were not torn down within {TEARDOWN_S:g} s of the last hangup")


def main() -> None:
    """Parse the options, pin, run, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--cps", type=float, default=200.0, help="calls offered per second (≤ 2000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the offered-load window")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds from INVITE to the caller's BYE")
    parser.add_argument("--warmup", type=int, default=20, help="calls before the window (≤ 50 CPS)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                        help="the controller's event loop (switchyard controller runs asyncio)")  # fmt: skip
    parser.add_argument("--audio", action="store_true", help="streams send real-time audio frames too")
    parser.add_argument("--reference-json", action="store_true", help="the emulator's own (slow) JSON")
    args = parser.parse_args()
    if not (0 < args.cps <= 2000 and 0 < args.seconds <= 600 and 0.05 <= args.hold <= 60):
        parser.error("need 0 < --cps <= 2000, 0 < --seconds <= 600, 0.05 <= --hold <= 60")
    if not 0 <= args.warmup <= 1000:
        parser.error("need 0 <= --warmup <= 1000")
    pins = cores()
    if pins is not None:
        os.sched_setaffinity(0, {pins[0]})
    print(f"bench: pid {os.getpid()} {f'on core {pins[0]}' if pins else 'unpinned (one CPU)'}, uvloop")
    with tempfile.TemporaryDirectory(prefix="bench-call-setup-") as tmp:
        run, log, ctl_exit = uvloop.run(bench(args, Path(tmp), pins))
        cps, p50, p99, per_call = report_calls(args, run)
        report_resources(run, log, per_call)
    check(run, ctl_exit)
    print(figures_line(cps=cps, p50_ms=p50, p99_ms=p99, cpu_ms_per_call=per_call))


if __name__ == "__main__":
    run_bench("call_setup", main)
