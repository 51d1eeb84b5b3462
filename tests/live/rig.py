"""The live tier: the live twins (``pytest -m live``) against a real FreeSWITCH started for them.

``make test-live`` runs ``python -m tests.live.rig``, which picks one of three ways:

* ``SWITCHYARD_LIVE_ESL`` or ``SWITCHYARD_LIVE_API`` set: a FreeSWITCH or a stack of the user's own; the live
  twins run against it as the variables say (tests/integration/conftest.py), nothing is started.
* otherwise, ``fsrun`` found (``FSRUN``, default ``../shared/freeswitch/fsrun`` beside the
  repository: a FreeSWITCH 1.10.12 + mod_audio_stream build): the rig below.
* neither: one line saying the live tier is skipped, exit 0.

The rig, everything made fresh and removed at the end:

    host namespace                                        test namespace (tests/netnskit.py)
    FreeSWITCH: ESL 127.0.0.1:<free>, SIP + RTP on LIVE_HOST_IP ◄──veth──► LIVE_NS_IP: Janus (per test)
    controller API LIVE_HOST_IP:<free>, worker 127.0.0.1:<free> (per test, tests/live/stack.py)

1. a network namespace joined by a veth pair (WebRTC needs a non-loopback path: ICE skips 127/8);
2. fresh secrets, free ports and those addresses: the ``LIVE_*`` variables of tests/live/switchyard.yaml;
3. ``switchyard render`` of that file, and ``fsrun start`` on the rendered ``freeswitch/conf`` (its own
   ``FS_STATE``: log, db, recordings in the rig's directory);
4. ``pytest -m live`` with ``SWITCHYARD_LIVE_*`` naming that FreeSWITCH (the ESL twins) and the rig (the
   stack twins start a controller, a worker and Janus from the same file);
5. ``fsrun stop``, the namespace removed. The tier fails when a live twin fails or is skipped (a skip here
   means the rig is broken), and prints the end of FreeSWITCH's log when it fails.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from tests.netnskit import Netns, network_namespace, skip_reason

REPO: Final = Path(__file__).resolve().parents[2]
SETTINGS: Final = REPO / "tests" / "live" / "switchyard.yaml"
DEFAULT_FSRUN: Final = REPO.parent / "shared" / "freeswitch" / "fsrun"
FSRUN_DEADLINE: Final = 90.0  # fsrun start waits up to 60 s for the event socket; stop up to 20 s
RENDER_DEADLINE: Final = 60.0
PYTEST_DEADLINE: Final = 1800.0
LOG_TAIL: Final = 6000
TONE_EXTENSION: Final = "7101"  # line_tests in tests/live/switchyard.yaml
PARK_EXTENSION: Final = "7102"  # a route: parks, the controller under test decides
CONTEXT: Final = "switchyard"  # calls.context (the default)


def free_port(host: str) -> int:
    """A TCP port the kernel hands out on ``host`` now (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def rig_ports(ns: Netns) -> dict[str, int]:
    """Free ports for the event socket, the controller's API (on the veth) and the worker."""
    return {"esl": free_port("127.0.0.1"), "api": free_port(ns.host_ip), "worker": free_port("127.0.0.1")}


def rig_variables(ns: Netns, workdir: Path, ports: Mapping[str, int]) -> dict[str, str]:
    """The ``LIVE_*`` variables of tests/live/switchyard.yaml: addresses, ``ports``, fresh secrets."""

    def secret() -> str:
        return secrets.token_hex(16)

    return {
        "LIVE_WORKDIR": str(workdir),
        "LIVE_FS_STATE": str(workdir / "fs"),
        "LIVE_NETNS": ns.name,
        "LIVE_HOST_IF": ns.host_if,
        "LIVE_NS_IF": ns.ns_if,
        "LIVE_HOST_IP": ns.host_ip,
        "LIVE_NS_IP": ns.ns_ip,
        "LIVE_ESL_PORT": str(ports["esl"]),
        "LIVE_API_PORT": str(ports["api"]),
        "LIVE_WORKER_PORT": str(ports["worker"]),
        "LIVE_ESL_PASSWORD": secret(),
        "LIVE_API_TOKEN": secret(),
        "LIVE_WORKER_TOKEN": secret(),
        "LIVE_STREAM_SECRET": secret(),
        "LIVE_SIP_PASSWORD": secret(),
        "LIVE_JANUS_ADMIN_SECRET": secret(),
        "LIVE_JANUS_EVENTS_PASSWORD": secret(),
        "LIVE_JANUS_DIRECTORY_PASSWORD": secret(),
    }


def settings_environment(base: Mapping[str, str], live: Mapping[str, str]) -> dict[str, str]:
    """``base`` without ``SWITCHYARD_*`` (they would override settings) and with the rig's variables."""
    env = {key: value for key, value in base.items() if not key.startswith("SWITCHYARD_")}
    return env | dict(live)


def pytest_environment(base: Mapping[str, str], live: Mapping[str, str]) -> dict[str, str]:
    """The environment of ``pytest -m live``: the rig's variables and the ESL twins' target."""
    env = settings_environment(base, live)
    env.update(
        {
            "SWITCHYARD_LIVE_RIG": str(SETTINGS),
            "SWITCHYARD_LIVE_ESL": f"127.0.0.1:{live['LIVE_ESL_PORT']}",
            "SWITCHYARD_LIVE_ESL_PASSWORD": live["LIVE_ESL_PASSWORD"],
            "SWITCHYARD_LIVE_CONTEXT": CONTEXT,
            "SWITCHYARD_LIVE_TONE_EXT": TONE_EXTENSION,
            "SWITCHYARD_LIVE_PARK_EXT": PARK_EXTENSION,
            "SWITCHYARD_LIVE_WORKER_HOST": "127.0.0.1",
            "SWITCHYARD_LIVE_TEMP_DIR": f"{live['LIVE_FS_STATE']}/temp",  # fsrun's -temp
        }
    )
    return env


def _run(argv: Sequence[str], env: Mapping[str, str], deadline: float) -> None:
    """Run a setup step; raise ``RuntimeError`` with its output when it fails."""
    done = subprocess.run(
        argv, env=dict(env), cwd=REPO, capture_output=True, text=True, timeout=deadline, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    if done.stdout.strip():
        print(f"live tier: {done.stdout.strip()}", flush=True)


def _counts(report: Path) -> dict[str, int]:
    """tests/failures/errors/skipped from pytest's JUnit XML report."""
    suite = ET.parse(report).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    return {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}


async def _pytest(args: Sequence[str], env: Mapping[str, str], report: Path) -> int:
    """``pytest -m live`` (bounded); its exit status, made non-zero when a live twin was skipped."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-q", "-m", "live", "-rs", f"--junitxml={report}", *args,
        cwd=REPO, env=dict(env),
    )  # fmt: skip
    try:
        async with asyncio.timeout(PYTEST_DEADLINE):
            status = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    counts = _counts(report) if report.exists() else {}  # noqa: ASYNC240 - one stat after pytest ended
    print(f"live tier: {counts or 'no report'} against a real FreeSWITCH", flush=True)
    if status == 0 and (not counts.get("tests") or counts.get("skipped")):
        print("live tier: a live twin was skipped or none ran: the rig is broken", file=sys.stderr)
        return 1
    return status


async def run_rig(fsrun: Path, args: Sequence[str]) -> int:
    """Steps 1-5 of the module docstring; the pytest exit status."""
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-live-"))
    try:
        async with network_namespace() as ns:
            live = rig_variables(ns, workdir, rig_ports(ns))
            # The chaos twin restarts FreeSWITCH itself: fsrun and the configuration it runs on.
            live |= {"LIVE_FSRUN": str(fsrun), "LIVE_FS_CONF": str(workdir / "conf" / "freeswitch" / "conf")}
            env = pytest_environment(os.environ, live)
            fs_env = settings_environment(os.environ, live) | {"FS_STATE": live["LIVE_FS_STATE"]}
            render = [sys.executable, "-m", "controller", "render", "--config", str(SETTINGS)]
            _run([*render, "--out", str(workdir / "conf")], fs_env, RENDER_DEADLINE)
            _run([str(fsrun), "start", str(workdir / "conf" / "freeswitch" / "conf")], fs_env, FSRUN_DEADLINE)
            status = 1
            try:
                status = await _pytest(args, env, workdir / "live.xml")
            finally:
                if status != 0:  # before the stop, whose module unloading would fill the tail
                    log = Path(live["LIVE_FS_STATE"]) / "log" / "freeswitch.log"
                    tail = log.read_text(errors="replace")[-LOG_TAIL:] if log.exists() else "(no log)"
                    print(f"live tier: the end of FreeSWITCH's log:\n{tail}", file=sys.stderr)
                _run([str(fsrun), "stop"], fs_env, FSRUN_DEADLINE)
            return status
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    """Entry point: the user's own target, the rig, or the line saying the tier is skipped."""
    if os.environ.get("SWITCHYARD_LIVE_ESL") or os.environ.get("SWITCHYARD_LIVE_API"):
        command = [sys.executable, "-m", "pytest", "-q", "-m", "live", "-rs", *argv]
        return subprocess.run(command, cwd=REPO, check=False).returncode
    fsrun = Path(os.environ.get("FSRUN", str(DEFAULT_FSRUN)))
    if not os.access(fsrun, os.X_OK):
        print(f"live tier: skipped, no real FreeSWITCH here ({fsrun} not found; see README 'Live tests')")
        return 0
    reason = skip_reason()
    if reason is not None:
        print(f"live tier: cannot run the rig: {reason}", file=sys.stderr)
        return 1
    return asyncio.run(run_rig(fsrun, argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
