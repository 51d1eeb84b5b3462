"""FreeSWITCH's compose healthcheck, run for real: CI's compose tier puts the emulator in FreeSWITCH's place
with a healthcheck of its own, so the real one is exercised here. ``switchyard render`` (the command, in a
subprocess) writes ``freeswitch/conf/healthcheck.sh``; it runs under ``sh`` in a network namespace of the
test's, where sockets stand in for FreeSWITCH's: the event socket listening over TCP and the internal and
external SIP profiles bound over UDP, on IPv4 and on IPv6 addresses added to the namespace's loopback.
``/proc/net`` shows the reader's own namespace.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.render.health import HEALTHCHECK_FILE
from tests import netnskit

pytestmark = pytest.mark.skipif(netnskit.skip_reason() is not None, reason=netnskit.skip_reason() or "")

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
ESL_V4, PBX_V4 = "172.30.57.1", "192.0.2.2"
ESL_V6, PBX_V6 = "2001:db8::1", "2001:db8::5"
# Binds what it is told (tcp HOST PORT | udp HOST PORT ...), says "ready", then sleeps until stopped.
LISTENER = """
import socket, sys, time
args, held = sys.argv[1:], []
for kind, host, port in zip(args[::3], args[1::3], args[2::3]):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.bind((host, int(port)))
    if kind == "tcp":
        s.listen()
    held.append(s)
print("ready", flush=True)
time.sleep(60)
"""


def _rendered_check(tmp_path: Path, esl: str, pbx: str) -> Path:
    """``switchyard render`` of settings with the event socket on ``esl`` and both profiles on ``pbx``."""
    config = tmp_path / f"switchyard-{pbx}.yaml"
    settings = {
        "freeswitch": {"main": {"host": esl, "password": "esl-0123456789abcdef"}},
        "event_socket": {"node": "main", "listen_ip": esl, "port": 8021},
        "sip": {
            "internal": {"listen_ip": pbx, "port": 5060},
            "external": {"listen_ip": pbx, "port": 5080},
        },
    }
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / f"out-{pbx}"
    command = [sys.executable, "-m", "controller", "render", "--config", str(config), "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    return out / "freeswitch" / "conf" / HEALTHCHECK_FILE


async def _health(ns: netnskit.Netns, script: Path, *sockets: Any) -> tuple[int, str]:
    """The script's exit status and output while ``sockets`` (kind, host, port) are bound in ``ns``."""
    listener = await ns.spawn(
        sys.executable, "-c", LISTENER, *(str(part) for s in sockets for part in s),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert listener.stdout is not None
        assert await listener.stdout.readline() == b"ready\n"
        check = await asyncio.create_subprocess_exec(
            *ns.argv("sh", str(script)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(check.communicate(), 10)
        return await check.wait(), out.decode().strip()
    finally:
        await netnskit.stop_process(listener)


def test_compose_runs_the_rendered_check_from_the_conf_volume() -> None:
    service = yaml.safe_load(COMPOSE.read_text())["services"]["freeswitch"]
    assert "conf:/etc/switchyard-conf:ro" in service["volumes"]
    script = f"/etc/switchyard-conf/freeswitch/conf/{HEALTHCHECK_FILE}"
    assert service["healthcheck"]["test"] == ["CMD", "sh", script]
    assert "environment" not in service  # it needs no PBX_IP, and no secret


async def test_freeswitch_is_healthy_once_its_ipv4_sockets_are_bound(tmp_path: Path) -> None:
    script = _rendered_check(tmp_path, ESL_V4, PBX_V4)
    esl, internal, external = ("tcp", ESL_V4, 8021), ("udp", PBX_V4, 5060), ("udp", PBX_V4, 5080)
    async with netnskit.network_namespace() as ns:
        for address in (ESL_V4, PBX_V4):
            ns.run("ip", "addr", "add", f"{address}/32", "dev", "lo")
        assert await _health(ns, script, esl, internal, external) == (0, "healthy")
        missing = "unhealthy: the {} is not bound to {} ({})"
        said = missing.format("event socket", "172.30.57.1:8021", "tcp")
        assert await _health(ns, script, internal, external) == (1, said)
        said = missing.format("internal SIP profile", "192.0.2.2:5060", "udp")
        assert await _health(ns, script, esl, external) == (1, said)
        said = missing.format("external SIP profile", "192.0.2.2:5080", "udp")
        assert await _health(ns, script, esl, internal) == (1, said)
        assert (await _health(ns, script, esl, internal, ("udp", PBX_V4, 5081)))[0] == 1
        assert (await _health(ns, script, ("udp", ESL_V4, 8021), internal, external))[0] == 1  # not TCP


async def test_freeswitch_is_healthy_once_its_ipv6_sockets_are_bound(tmp_path: Path) -> None:
    script = _rendered_check(tmp_path, ESL_V6, PBX_V6)
    esl, internal, external = ("tcp", ESL_V6, 8021), ("udp", PBX_V6, 5060), ("udp", PBX_V6, 5080)
    async with netnskit.network_namespace() as ns:
        for address in (ESL_V6, PBX_V6):
            ns.run("ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad")
        assert await _health(ns, script, esl, internal, external) == (0, "healthy")
        status, said = await _health(ns, script, esl, external)
        assert (status, said) == (
            1,
            "unhealthy: the internal SIP profile is not bound to [2001:db8::5]:5060 (udp)",
        )
        assert (await _health(ns, script, internal, external))[0] == 1
        assert (await _health(ns, script, esl, internal, ("udp", ESL_V6, 5080)))[0] == 1  # other address
