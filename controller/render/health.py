"""FreeSWITCH's container healthcheck (``healthcheck.sh`` beside its rendered configuration).

FreeSWITCH is healthy once the sockets the settings give it are bound: the event socket listening
(``event_socket.listen_ip``/``port``, TCP) and both SIP profiles (``sip.internal``, ``sip.external``, UDP).
The script reads ``/proc/net/{tcp,tcp6,udp,udp6}`` of its own network namespace, so it needs only ``sh`` and
``grep`` and makes no connection: an ESL client from the container's host namespace may arrive from an
address outside the event socket's ACL (Docker masquerades host-to-bridge traffic), and a SIP probe would
be answered or refused by FreeSWITCH's own policy rather than tell whether it runs.

``/proc/net`` rows read ``  sl: LOCAL REMOTE STATE ...``. A local address is printed as the kernel's
``__be32`` words in host byte order (``%08X`` each: one word for IPv4, four for IPv6), and the port as
``%04X``; so on a little-endian host (x86-64, arm64) 172.30.57.1:8021 is ``01391EAC:1F55``. A listening
TCP socket has state ``0A``; a bound, unconnected UDP socket has remote ``0…0:0000``.
"""

from __future__ import annotations

import ipaddress
import shlex
import sys
from typing import Final, Literal

from controller.settings import Settings

__all__ = ["HEALTHCHECK_FILE", "freeswitch_healthcheck", "proc_net_address"]

HEALTHCHECK_FILE: Final = "healthcheck.sh"
_LISTEN: Final = "0A"
_CLOSE: Final = "07"  # an unconnected UDP socket


def proc_net_address(host: str, port: int, byteorder: Literal["little", "big"] = sys.byteorder) -> str:
    """``host:port`` as a ``/proc/net`` row prints a local address (``byteorder``: this host's by default)."""
    packed = ipaddress.ip_address(host).packed
    words = (packed[i : i + 4] for i in range(0, len(packed), 4))
    return "".join(f"{int.from_bytes(word, byteorder):08X}" for word in words) + f":{port:04X}"


def _check(kind: str, what: str, host: str, port: int, state: str) -> str:
    """One ``grep`` of the right table; on a miss it says what is not bound and exits 1."""
    version = ipaddress.ip_address(host).version
    table = f"/proc/net/{kind}{'6' if version == 6 else ''}"
    zero = "0" * (8 if version == 4 else 32) + ":0000"
    row = f": {proc_net_address(host, port)} {zero} {state} "
    shown = f"[{host}]:{port}" if version == 6 else f"{host}:{port}"
    message = f"unhealthy: {what} is not bound to {shown} ({kind})"
    return f"grep -q {shlex.quote(row)} {table} || {{ echo {shlex.quote(message)}; exit 1; }}"


def freeswitch_healthcheck(settings: Settings) -> str:
    """The script: exit 0 once the event socket listens and both SIP profiles are bound, else 1 naming the
    first socket missing."""
    esl, sip = settings.event_socket, settings.sip
    checks = [
        _check("tcp", "the event socket", esl.listen_ip, esl.port, _LISTEN),
        _check("udp", "the internal SIP profile", sip.internal.listen_ip, sip.internal.port, _CLOSE),
        _check("udp", "the external SIP profile", sip.external.listen_ip, sip.external.port, _CLOSE),
    ]
    lines = [
        "#!/bin/sh",
        "# Rendered by `switchyard render` (controller/render/health.py): FreeSWITCH is healthy once the",
        "# sockets of its settings are bound, read from /proc/net of its own network namespace.",
        *checks,
        "echo healthy",
        "",
    ]
    return "\n".join(lines)
