"""A network namespace with a veth pair, made for one test and removed after it.

ICE does not work over loopback (libnice skips 127.0.0.0/8 candidates, aiortc does not gather them), so
media tests run their servers in a namespace of their own that is joined to the host by a veth pair:

    host namespace                          test namespace ``sy-<hex>``
    ``sy-<hex>-h`` 198.18.x.y/30  ◄──veth──► ``sy-<hex>-n`` 198.18.x.y+1/30 (and ``lo`` up)

Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking, never routed), a random /30 not already on the
host. The namespace has no default route: nothing started in it can reach beyond the host's end of the
veth. Its resolver (``/etc/netns/<name>/resolv.conf``, which ``ip netns exec`` mounts over
``/etc/resolv.conf``) is the namespace's own loopback, where nothing answers: a DNS lookup fails at once
instead of waiting out the host's unreachable servers, and no query leaves the machine.
``accept_local=1`` and ``rp_filter=0`` are set on both veth ends (per interface: they vanish with it;
the host's ``all``/``default`` settings are not touched).

Everything made here is removed by name in a ``finally``: processes started with :meth:`Netns.spawn` (by
PID: SIGTERM, a bounded wait, SIGKILL), then any process still inside the namespace (``ip netns pids``:
only processes started in it, i.e. by this test), then the veth (deleting one end deletes both), the
namespace and its ``/etc/netns/<name>``. Needs root and iproute2; :func:`skip_reason` says why not when
they are missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["Netns", "network_namespace", "skip_reason"]

BENCHMARK_NET: Final = ipaddress.ip_network("198.18.0.0/15")
COMMAND_DEADLINE: Final = 10.0
STOP_DEADLINE: Final = 5.0
ETC_NETNS: Final = Path("/etc/netns")


def skip_reason() -> str | None:
    """Why namespace tests cannot run here (not root, no ``ip``), or ``None`` when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    return None


def _ip(*args: str) -> str:
    """Run ``ip args`` (bounded); its stdout. Raises ``RuntimeError`` with stderr when it fails."""
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=COMMAND_DEADLINE, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _free_subnet() -> ipaddress.IPv4Network:
    """A random /30 of 198.18.0.0/15 that no address of the host falls into."""
    used = [
        ipaddress.ip_interface(line.split()[3])
        for line in _ip("-o", "-4", "addr", "show").splitlines()
        if len(line.split()) > 3
    ]
    subnets = 2 ** (30 - BENCHMARK_NET.prefixlen)
    for _ in range(100):
        base = int(BENCHMARK_NET.network_address) + 4 * secrets.randbelow(subnets)
        subnet = ipaddress.IPv4Network((base, 30))
        if not any(address.ip in subnet or subnet.overlaps(address.network) for address in used):
            return subnet
    raise RuntimeError("no free /30 in 198.18.0.0/15")


@dataclass
class Netns:
    """A test's namespace: its name, both veth ends and their addresses, and the processes it started."""

    name: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str
    prefixlen: int = 30
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    def argv(self, *command: str) -> list[str]:
        """``command`` run inside the namespace (``ip netns exec`` execs it: the PID stays the same)."""
        return ["ip", "netns", "exec", self.name, *command]

    def run(self, *command: str, timeout: float = COMMAND_DEADLINE) -> str:
        """Run ``command`` inside the namespace to completion (bounded); its stdout.

        Raises:
            RuntimeError: it exited non-zero (the message holds its stderr).
            subprocess.TimeoutExpired: it ran longer than ``timeout``.
        """
        done = subprocess.run(
            self.argv(*command), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} in {self.name}: {done.stderr.strip()}")
        return done.stdout

    async def spawn(self, *command: str, **kwargs: Any) -> asyncio.subprocess.Process:
        """Start ``command`` inside the namespace; it is stopped (by PID) when the namespace goes.

        ``kwargs`` go to ``asyncio.create_subprocess_exec`` (stdout, stderr, env…); stdin is /dev/null
        unless given.
        """
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process = await asyncio.create_subprocess_exec(*self.argv(*command), **kwargs)
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        """PIDs of every process inside the namespace (``ip netns pids``)."""
        return [int(pid) for pid in _ip("netns", "pids", self.name).split()]


async def stop_process(process: asyncio.subprocess.Process, deadline: float = STOP_DEADLINE) -> None:
    """SIGTERM ``process`` by PID, wait at most ``deadline``, then SIGKILL it and reap it (bounded)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(deadline):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        async with asyncio.timeout(deadline):
            await process.wait()


def _sweep(netns: Netns) -> None:
    """SIGKILL whatever still runs inside the namespace (children of what the test started)."""
    with contextlib.suppress(RuntimeError):
        for pid in netns.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _create(netns: Netns, subnet: ipaddress.IPv4Network) -> None:
    _ip("netns", "add", netns.name)
    etc = ETC_NETNS / netns.name
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    _ip("link", "add", netns.host_if, "type", "veth", "peer", "name", netns.ns_if)
    _ip("link", "set", netns.ns_if, "netns", netns.name)
    _ip("addr", "add", f"{netns.host_ip}/{subnet.prefixlen}", "dev", netns.host_if)
    _ip("link", "set", netns.host_if, "up")
    netns.run("ip", "addr", "add", f"{netns.ns_ip}/{subnet.prefixlen}", "dev", netns.ns_if)
    netns.run("ip", "link", "set", netns.ns_if, "up")
    netns.run("ip", "link", "set", "lo", "up")
    for interface, inside in ((netns.host_if, False), (netns.ns_if, True)):
        for key, value in (("accept_local", "1"), ("rp_filter", "0")):
            command: Sequence[str] = ("sysctl", "-q", "-w", f"net.ipv4.conf.{interface}.{key}={value}")
            if inside:
                netns.run(*command)
            else:
                subprocess.run(command, check=True, timeout=COMMAND_DEADLINE, capture_output=True)


def _remove(netns: Netns) -> None:
    """Delete the veth (both ends go together) and the namespace, by name; missing ones are fine."""
    with contextlib.suppress(RuntimeError):
        _ip("link", "del", netns.host_if)
    with contextlib.suppress(RuntimeError):
        _ip("netns", "del", netns.name)
    shutil.rmtree(ETC_NETNS / netns.name, ignore_errors=True)


@contextlib.asynccontextmanager
async def network_namespace() -> AsyncIterator[Netns]:
    """A fresh namespace with a veth pair to the host; everything it made is removed on exit.

    Raises:
        RuntimeError: an ``ip`` command failed (what was made so far is removed).
    """
    tag = secrets.token_hex(3)
    subnet = _free_subnet()
    host_ip, ns_ip = (str(address) for address in subnet.hosts())
    netns = Netns(name=f"sy-{tag}", host_if=f"sy-{tag}-h", ns_if=f"sy-{tag}-n", host_ip=host_ip, ns_ip=ns_ip)
    try:
        _create(netns, subnet)
        yield netns
    finally:
        try:
            for process in reversed(netns.processes):
                await stop_process(process)
        finally:
            _sweep(netns)
            _remove(netns)
