"""FreeSWITCH's compose healthcheck, run for real: CI's compose tier puts the emulator in FreeSWITCH's place
with a healthcheck of its own, so the real one is exercised here. The command from ``docker-compose.yml``
(compose's ``$$`` unescaped) runs under ``sh`` in a network namespace of the test's, where sockets stand in
for FreeSWITCH's: the event socket listening on 172.30.57.1:8021 (added to the namespace's loopback) and
the internal SIP profile bound to PBX_IP:5060 over UDP. ``/proc/net`` shows the reader's own namespace.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import netnskit

pytestmark = pytest.mark.skipif(netnskit.skip_reason() is not None, reason=netnskit.skip_reason() or "")

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
ESL = ("172.30.57.1", 8021)
SIP_PORT = 5060
# Binds what it is told (tcp HOST PORT | udp HOST PORT ...), says "ready", then sleeps until stopped.
LISTENER = """
import socket, sys, time
args, held = sys.argv[1:], []
for kind, host, port in zip(args[::3], args[1::3], args[2::3]):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.bind((host, int(port)))
    if kind == "tcp":
        s.listen()
    held.append(s)
print("ready", flush=True)
time.sleep(60)
"""


def _healthcheck() -> str:
    test: list[str] = yaml.safe_load(COMPOSE.read_text())["services"]["freeswitch"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    return test[1].replace("$$", "$")


async def _healthy(ns: netnskit.Netns, pbx_ip: str, *sockets: Any) -> int:
    """The healthcheck's exit status while ``sockets`` (kind, host, port) are bound in ``ns``."""
    listener = await ns.spawn(
        sys.executable, "-c", LISTENER, *(str(part) for s in sockets for part in s),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert listener.stdout is not None
        assert await listener.stdout.readline() == b"ready\n"
        check = await asyncio.create_subprocess_exec(
            *ns.argv("env", f"PBX_IP={pbx_ip}", "sh", "-c", _healthcheck()),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return await asyncio.wait_for(check.wait(), 10)
    finally:
        await netnskit.stop_process(listener)


async def test_freeswitch_healthcheck_needs_the_event_socket_and_the_sip_profile() -> None:
    async with netnskit.network_namespace() as ns:
        ns.run("ip", "addr", "add", f"{ESL[0]}/32", "dev", "lo")
        esl = ("tcp", *ESL)
        sip = ("udp", ns.ns_ip, SIP_PORT)
        assert await _healthy(ns, ns.ns_ip, esl, sip) == 0
        assert await _healthy(ns, ns.ns_ip, esl) == 1  # the SIP profile did not bind PBX_IP
        assert await _healthy(ns, ns.ns_ip, sip) == 1  # no event socket yet
        assert await _healthy(ns, ns.ns_ip, esl, ("udp", ns.ns_ip, SIP_PORT + 1)) == 1
        assert await _healthy(ns, "2001:db8::5", esl) == 0  # IPv6 PBX_IP: the event socket only
