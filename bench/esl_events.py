"""ESL event throughput: greenswitch (plain events) next to our pipeline (JSON → typed event → call model).

The FreeSWITCH emulator, pinned to core 0, pushes the same burst of realistic channel events (the calls of
shared/fixtures/freeswitch/esl_inbound_session.txt replayed with fresh UUIDs) to one client at a time; each
client runs in its own process pinned to core 1. The rate is events / (time of the client's last handled
event - time the burst started), both read from CLOCK_MONOTONIC, so reading, parsing and handling all count.
The last line is machine-readable: ``events_per_s_pipeline=<n> events_per_s_greenswitch=<n>``.

Impossible results end the run with exit 1 and one line on stderr (:mod:`bench.result`): a client that
exits with an error or does not report, one that handled fewer events than the burst held (greenswitch
counts every event; ours counts the typed events it applied to the call model), a rate that is not
finite and positive.

Run: ``make bench`` or ``python -m bench.esl_events [--events N]`` (``make bench-smoke``: 3000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time

from bench.result import ImpossibleResult, figures_line, require_finite, run
from controller.freeswitch.node import CUSTOM_EVENTS, SUBSCRIBED_EVENTS

CLIENT_CORE = 1
EMULATOR_CORE = 0


def pin(core: int) -> None:
    """Pin this process to one core when the machine has it."""
    if hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {core})


def run_pipeline(port: int, password: str, count: int) -> tuple[float, int]:
    """Our node adapter + call model; returns the monotonic time of the last event and the events seen."""
    from controller.calls.model import CallModel
    from controller.freeswitch.events import Event
    from controller.freeswitch.node import FreeSwitchNode
    from controller.settings import FreeSwitchNodeSettings

    async def main() -> tuple[float, int]:
        settings = FreeSwitchNodeSettings(name="bench", port=port, password=password, keepalive=0)
        model = CallModel()
        seen = 0
        async with FreeSwitchNode(settings) as node:
            async with asyncio.timeout(300):
                async for event in node.events():
                    if not isinstance(event, Event):
                        print("ready", flush=True)
                        continue
                    model.apply(node.name, event)
                    seen += 1
                    if seen == count:
                        break
        return time.monotonic(), seen

    return asyncio.run(main())


def run_greenswitch(port: int, password: str, count: int) -> tuple[float, int]:
    """greenswitch's InboundESL with a catch-all handler; the time of the last event and the events seen."""
    import gevent
    import greenswitch

    state = {"seen": 0, "ended": 0.0}

    def handle(_event: object) -> None:
        state["seen"] += 1
        if state["seen"] == count:
            state["ended"] = time.monotonic()

    esl = greenswitch.InboundESL(host="127.0.0.1", port=port, password=password)
    esl.connect()
    esl.register_handle("*", handle)
    esl.send("event plain " + " ".join((*SUBSCRIBED_EVENTS, "CUSTOM", *CUSTOM_EVENTS)))
    print("ready", flush=True)
    deadline = time.monotonic() + 300
    while state["seen"] < count and time.monotonic() < deadline:
        gevent.sleep(0.01)
    esl.stop()
    return state["ended"], int(state["seen"])


def client_main(kind: str, port: int, password: str, count: int) -> None:
    """Entry of a client process: pin, run, print the time of the last event and the events seen as JSON."""
    pin(CLIENT_CORE)
    last, seen = (
        run_pipeline(port, password, count) if kind == "pipeline" else run_greenswitch(port, password, count)
    )
    print(json.dumps({"last": last, "seen": seen}), flush=True)


async def measure(kind: str, count: int) -> float:
    """Start the emulator here, a client process there, push the burst, return the client's rate."""
    from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
    from tests.fsemu.burst import captured_channel_events, realistic_burst

    templates = captured_channel_events(names=SUBSCRIBED_EVENTS, subclasses=CUSTOM_EVENTS)
    burst = realistic_burst(count, templates)
    for event in burst:  # serialise up front, so the burst runs at wire speed
        event.plain_frame() if kind == "greenswitch" else event.json_frame()
    config = EmulatorConfig(password=secrets.token_hex(8))
    async with FreeSwitchEmulator(config) as fs:
        argv = [sys.executable, "-m", "bench.esl_events", "--client", kind, "--port", str(fs.port),
                "--password", config.password, "--events", str(count)]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(300):
                while (await proc.stdout.readline()).strip() != b"ready":
                    pass
                await asyncio.sleep(0.5)  # let the subscription settle
                started = time.monotonic()  # CLOCK_MONOTONIC: one clock for both processes
                await fs.emit_burst(burst, yield_every=200)
                out, _ = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        return _rate(kind, proc.returncode, out.decode(), count, started)


def _rate(kind: str, returncode: int | None, out: str, count: int, started: float) -> float:
    """Events per second from a client's report.

    Raises:
        ImpossibleResult: the client failed, did not report, handled fewer events than the burst held, or
            reported a last event before the burst started.
    """
    lines = out.strip().splitlines()
    if returncode != 0 or not lines:
        raise ImpossibleResult(f"the {kind} client exited with {returncode} and no report")
    report = json.loads(lines[-1])
    if report["seen"] < count:
        raise ImpossibleResult(
            f"the {kind} client handled {report['seen']} of the {count} events of the burst"
        )
    elapsed = float(report["last"]) - started
    if not elapsed > 0:
        raise ImpossibleResult(f"the {kind} client's last event came {elapsed:.3f} s after the burst started")
    return count / elapsed


def main() -> None:
    """Run both clients on the same burst and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000, help="events in the burst (100..1000000)")
    parser.add_argument("--client", choices=["pipeline", "greenswitch"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--password")
    args = parser.parse_args()
    if not 100 <= args.events <= 1_000_000:
        parser.error("need 100 <= --events <= 1000000")
    if args.client:
        client_main(args.client, args.port, args.password, args.events)
        return
    pin(EMULATOR_CORE)
    greenswitch_rate = asyncio.run(measure("greenswitch", args.events))
    pipeline_rate = asyncio.run(measure("pipeline", args.events))
    print(f"events: {args.events} realistic channel events (esl_inbound_session.txt calls, fresh UUIDs)")
    print(f"greenswitch 0.0.19, plain, reader + handler:{greenswitch_rate:10.0f} events/s")
    print(f"ours, json -> typed event -> call model:     {pipeline_rate:10.0f} events/s")
    print(f"ratio ours/greenswitch:                      {pipeline_rate / greenswitch_rate:10.2f}")
    require_finite(events_per_s_pipeline=pipeline_rate, events_per_s_greenswitch=greenswitch_rate)
    print(
        figures_line(
            events_per_s_pipeline=round(pipeline_rate), events_per_s_greenswitch=round(greenswitch_rate)
        )
    )


if __name__ == "__main__":
    run("esl_events", main)
