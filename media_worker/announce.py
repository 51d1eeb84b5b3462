"""Worker → controller: register and heartbeat with capacity and load.

Why announce rather than have the controller poll configured URLs: workers are scaled with
``docker compose up --scale worker=N``, where only the worker knows its own address; a heartbeat carries
fresh load (streams, VAD lag) at no cost to the controller; and a worker that stops is dropped after a few
missed beats without anyone editing a list. ``POST {controller_url}/v1/workers/heartbeat`` every
``heartbeat_s`` (0.5 s), listing the call ids of the open streams (:mod:`switchyard.liveness`): the
controller moves a call whose worker falls silent or stops listing it. On shutdown one last beat says
``draining`` so no new call is sent here. A beat that fails is retried by the one backoff policy
(:mod:`switchyard.retry`): doubling from two periods up to 30 s, with full jitter, so the workers of a
restarted controller do not all come back in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import urllib.parse
from collections.abc import Callable

import aiohttp

from media_worker.server import Worker
from switchyard.liveness import listed_calls
from switchyard.retry import Backoff, BackoffSettings

__all__ = ["announce", "heartbeat_backoff", "heartbeat_body", "next_beat"]

log = logging.getLogger("switchyard.worker.announce")


_WILDCARDS = ("0.0.0.0", "::", "")
_MAX_WAIT_S = 2.0  # the controller routes and judges liveness by these beats: resume soon after it is back


def heartbeat_backoff(heartbeat_s: float, rng: Callable[[], float] = random.random) -> Backoff:
    """The waits after failed beats: from two periods, doubling, up to 2 s (at least two periods), full
    jitter."""
    maximum = max(_MAX_WAIT_S, 2 * heartbeat_s)
    return Backoff(BackoffSettings(initial=2 * heartbeat_s, maximum=maximum, quick_failure=0), rng)


def next_beat(
    heartbeat_s: float, backoff: Backoff, failed: bool, rng: Callable[[], float] = random.random
) -> float:
    """Seconds until the next beat: after a delivered one the period, less up to a fifth (so the workers
    drift apart); after a failed one the backoff's next wait."""
    if failed:
        return backoff.next_delay()
    backoff.reset()
    return heartbeat_s * (0.8 + 0.2 * rng())


def heartbeat_body(worker: Worker, local_ip: str | None = None) -> dict[str, object]:
    """What one heartbeat says about the worker.

    The URL is ``advertise_url`` when set; a worker bound to a wildcard address advertises ``local_ip``, the
    address its packets to the controller leave from (a scaled compose replica knows no other name).
    """
    settings = worker.settings
    host = settings.host if settings.host not in _WILDCARDS else (local_ip or settings.host)
    if ":" in host:
        host = f"[{host}]"
    url = settings.advertise_url or f"ws://{host}:{settings.port}"
    calls = listed_calls(worker.sessions)
    return {**worker.health(), "url": url, "heartbeat_s": settings.heartbeat_s, "calls": calls}


async def local_ip_towards(url: str) -> str | None:
    """The local address the kernel picks to reach ``url``'s host (a UDP connect sends nothing)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.hostname is None:
        return None
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(parsed.hostname, parsed.port or 80, type=socket.SOCK_DGRAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            return str(probe.getsockname()[0])
    except OSError as exc:
        log.warning("cannot tell the local address towards %s: %s", parsed.hostname, exc)
        return None


async def announce(worker: Worker, stop: asyncio.Event) -> None:
    """Heartbeat until ``stop`` is set (just wait when no controller is configured)."""
    settings = worker.settings
    if settings.controller_url is None:
        await stop.wait()
        return
    target = f"{str(settings.controller_url).rstrip('/')}/v1/workers/heartbeat"
    local_ip = await local_ip_towards(target) if settings.host in _WILDCARDS else None
    timeout = aiohttp.ClientTimeout(total=max(1.0, settings.heartbeat_s))
    token = settings.controller_token.get_secret_value() if settings.controller_token else ""
    headers = {"Authorization": f"Bearer {token}"}
    failures = 0
    backoff = heartbeat_backoff(settings.heartbeat_s)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as http:
        while not stop.is_set():
            try:
                async with http.post(target, json=heartbeat_body(worker, local_ip)) as response:
                    response.raise_for_status()
                failures = 0
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures += 1
                log.warning("heartbeat to %s failed (%d in a row): %s", target, failures, exc)
            delay = next_beat(settings.heartbeat_s, backoff, failures > 0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        worker.draining = True
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.post(target, json=heartbeat_body(worker, local_ip)) as response:
                response.raise_for_status()
