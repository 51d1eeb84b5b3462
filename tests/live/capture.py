"""Record the drift scenarios from a real FreeSWITCH: ``python -m tests.live.capture OUTDIR [NAME...]``.

The FreeSWITCH is named as for the live twins (tests/integration/conftest.py): ``SWITCHYARD_LIVE_ESL``
(host:port), ``SWITCHYARD_LIVE_ESL_PASSWORD``, ``SWITCHYARD_LIVE_CONTEXT`` (default switchyard),
``SWITCHYARD_LIVE_TONE_EXT`` (7101), ``SWITCHYARD_LIVE_PARK_EXT`` (7102), ``SWITCHYARD_LIVE_WORKER_HOST``
(127.0.0.1). Each scenario of tests/fsemu/drift_scenarios.py is written to ``OUTDIR/<name>.txt``
(tests/fixtures/live/ in the repository) with a header saying what was captured, when and how;
tests/integration/test_emulator_live_drift.py replays them on the emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.fsemu.drift_recorder import EslRecorder
from tests.fsemu.drift_scenarios import SCENARIOS, DriftTarget, run_scenario
from tests.fsemu.transcript import Transcript

BUILD = "FreeSWITCH 1.10.12 + mod_audio_stream ec2a781 (libwsc 09d18e5), ../shared/freeswitch tarball"


def target_from(env: Mapping[str, str]) -> DriftTarget:
    """The FreeSWITCH the environment names (KeyError/ValueError when it names none)."""
    host, _, port = env["SWITCHYARD_LIVE_ESL"].rpartition(":")
    return DriftTarget(
        host.strip("[]"),
        int(port),
        env["SWITCHYARD_LIVE_ESL_PASSWORD"],
        env.get("SWITCHYARD_LIVE_CONTEXT", "switchyard"),
        env.get("SWITCHYARD_LIVE_TONE_EXT", "7101"),
        env.get("SWITCHYARD_LIVE_PARK_EXT", "7102"),
        env.get("SWITCHYARD_LIVE_WORKER_HOST", "127.0.0.1"),
    )


async def _version(target: DriftTarget) -> str:
    rec = await EslRecorder.open(target.host, target.port, target.password, Transcript())
    try:
        return (await rec.api("version")).strip()
    finally:
        await rec.close()


def header(name: str, version: str, target: DriftTarget) -> list[str]:
    """The comment lines a capture file starts with."""
    doc = (SCENARIOS[name][0].__doc__ or "").strip()
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    return [
        f"{name}: {doc}",
        f"Real capture, {today}: {BUILD}; `version` said: {version}",
        f"Captured by `python -m tests.live.capture OUTDIR {name}` (tests/fsemu/drift_scenarios.py) over ESL",
        f"127.0.0.1 loopback, dialplan context {target.context!r} of `switchyard render` (tone extension "
        f"{target.tone_extension}, park extension {target.park_extension}).",
        "Format and normalisation: tests/fsemu/transcript.py (UUIDs -> <A>/<B>/<Un>, worker URL -> <WORKER>,",
        "show rows' created/created_epoch/hostname masked). Lines starting with # are not compared.",
        "",
    ]


async def capture(outdir: Path, names: Sequence[str], target: DriftTarget) -> None:
    """Run ``names`` against ``target`` and write their files."""
    version = await _version(target)
    await asyncio.to_thread(outdir.mkdir, parents=True, exist_ok=True)
    for name in names:
        transcript = await run_scenario(name, target)
        path = outdir / f"{name}.txt"
        text = transcript.render(header(name, version, target))
        await asyncio.to_thread(path.write_text, text)
        print(f"{path}: {len(text.encode())} bytes")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, read the environment once, capture."""
    parser = argparse.ArgumentParser(prog="python -m tests.live.capture")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("names", nargs="*", help=f"scenarios (default: all of {', '.join(SCENARIOS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    try:
        target = target_from(os.environ)
    except (KeyError, ValueError):
        print("capture: set SWITCHYARD_LIVE_ESL=host:port and SWITCHYARD_LIVE_ESL_PASSWORD", file=sys.stderr)
        return 2
    asyncio.run(capture(args.outdir, args.names or list(SCENARIOS), target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
