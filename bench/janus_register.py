"""Browser SIP registration through Janus, as the phone page sees it: the time from the ``register`` request
on Janus's WebSocket API to the SIP plugin's ``registered`` event on the same WebSocket.

A real Janus (Debian's ``janus``, configured by ``render_janus``) and sipp as the registrar
(``tests/sipp/uas_register_echo.xml``), both on loopback. ``--starts`` Janus processes one after another;
each serves ``--registrations`` registrations in turn, each on its own WebSocket and Janus session (create,
attach ``janus.plugin.sip``, register, destroy), like a page load. The first registration after each start
is also shown apart: the browser test's one registration is the first of its Janus.

Bounded: a registration waits at most ``REGISTER_DEADLINE`` (past SIP's Timer F, 32 s, after which the
plugin reports 408 itself), the run at most ``--max-seconds``. Traffic stays on 127.0.0.1.

The last line: ``registrations=<n> p50_ms=<n> p99_ms=<n> max_ms=<n> late_acks=<n>`` (late_acks: see
``_report``). Impossible results end the run with exit 1 and one line on stderr (:mod:`bench.result`): no
registration, one that failed or timed out, Janus or sipp missing.

    python -m bench.janus_register [--starts 5] [--registrations 40] [--max-seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bench.result import ImpossibleResult, figures_line, run
from controller.janus.admin import JanusAdmin
from controller.settings import Settings
from tests.januskit import JanusProcess, free_ports, janus_section

SCENARIO = Path(__file__).resolve().parents[1] / "tests" / "sipp" / "uas_register_echo.xml"
REGISTER_DEADLINE = 40.0
STEP_DEADLINE = 5.0  # create, attach, destroy
SLOW_S = 1.0
Result = tuple[float, bool]  # seconds to "registered"; whether "registering" came after it


class JanusWs:
    """One WebSocket to Janus's API with a token: requests by transaction, events in arrival order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, token: str) -> None:
        self.ws = ws
        self.token = token

    async def send(self, message: dict[str, Any]) -> str:
        transaction = secrets.token_hex(6)
        await self.ws.send_str(json.dumps({**message, "transaction": transaction, "token": self.token}))
        return transaction

    async def until(self, transaction: str, kinds: tuple[str, ...]) -> dict[str, Any]:
        """The next message of ``transaction`` whose ``janus`` is one of ``kinds`` (errors raise)."""
        while True:
            message: dict[str, Any] = json.loads(await self.ws.receive_str())
            if message.get("transaction") != transaction and message.get("janus") != "event":
                continue
            if message.get("janus") == "error":
                raise RuntimeError(f"Janus refused: {message['error']}")
            if message.get("janus") in kinds:
                return message

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        async with asyncio.timeout(STEP_DEADLINE):
            return await self.until(await self.send(message), ("success",))


async def _register_once(http: aiohttp.ClientSession, janus: JanusProcess, token: str, proxy: str) -> Result:
    """One page-like registration: the seconds from sending ``register`` to the ``registered`` event, and
    whether the plugin's ``registering`` acknowledgement came after ``registered`` (see ``_report``)."""
    async with http.ws_connect(janus.ws_url, protocols=("janus-protocol",)) as raw:
        ws = JanusWs(raw, token)
        session = (await ws.request({"janus": "create"}))["data"]["id"]
        handle = await ws.request({"janus": "attach", "session_id": session, "plugin": "janus.plugin.sip"})
        user = f"sip:bench-{secrets.token_hex(4)}@127.0.0.1"
        body = {"request": "register", "username": user, "secret": "bench", "proxy": proxy}
        message = {"janus": "message", "session_id": session, "handle_id": handle["data"]["id"], "body": body}
        started = time.perf_counter()
        transaction = await ws.send(message)
        seen: list[str] = []
        elapsed = 0.0
        try:
            async with asyncio.timeout(REGISTER_DEADLINE):
                while not {"registering", "registered"} <= set(seen):
                    event = await ws.until(transaction, ("event",))
                    result = event.get("plugindata", {}).get("data", {}).get("result", {})
                    seen.append(result.get("event", ""))
                    if seen[-1] == "registered":
                        elapsed = time.perf_counter() - started
                    if seen[-1] == "registration_failed":
                        raise ImpossibleResult(f"a registration failed: {result}")
        except TimeoutError:
            raise ImpossibleResult(
                f"no 'registered' within {REGISTER_DEADLINE:g} s (events: {seen})"
            ) from None
        await ws.request({"janus": "destroy", "session_id": session})
        return elapsed, seen.index("registering") > seen.index("registered")


@asynccontextmanager
async def _registrar(workdir: Path) -> AsyncIterator[int]:
    """sipp answering REGISTER with 200 on a free loopback port; stopped by PID on exit."""
    port = free_ports(1)[0]
    with (workdir / "sipp.out").open("wb") as out:
        sipp = await asyncio.create_subprocess_exec(
            "sipp", "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(port), "-nostdin",
            "-timeout", "3600", stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        yield port
    finally:
        if sipp.returncode is None:
            sipp.terminate()
        await asyncio.wait_for(sipp.wait(), 10)


async def _one_start(workdir: Path, sip_port: int, count: int, until: float) -> list[Result]:
    """A fresh Janus serving ``count`` registrations (fewer if ``until`` passes); their results."""
    ports = dict(zip(("http", "ws", "admin"), free_ports(3), strict=True))
    settings = Settings.model_validate({"janus": janus_section(ports, sip_local_ip="127.0.0.1")})
    janus = JanusProcess(settings, workdir)
    janus.write_conf()
    await janus.start()
    times: list[Result] = []
    try:
        async with aiohttp.ClientSession() as http:
            admin = JanusAdmin(settings.janus.admin_url, settings.janus.admin_key(), http)
            token = secrets.token_urlsafe(24)
            await admin.add_token(token)
            for _ in range(count):
                if time.monotonic() > until:
                    break
                times.append(await _register_once(http, janus, token, f"sip:127.0.0.1:{sip_port}"))
    finally:
        await janus.stop()
    return times


def _report(firsts: list[Result], rest: list[Result]) -> None:
    """Prints the figures. The late acknowledgements are a race in janus_sip.c: the handler thread pushes
    ``registering`` after ``nua_register()``, while the sofia thread may already have pushed ``registered``
    (a registrar answering at once, as sipp on loopback does). A page showing the last event stays at
    "registering"."""
    every = sorted(t for t, _ in firsts + rest)
    ms = [1000 * t for t in every]
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    print(f"registrations: {len(every)} ({len(firsts)} Janus starts)")
    spread = f"p50 {cuts[49]:.1f}  p90 {cuts[89]:.1f}  p99 {cuts[98]:.1f}  max {ms[-1]:.1f}"
    print(f"register -> registered, ms: {spread}")
    print(f"first after a start, ms: {', '.join(f'{1000 * t:.1f}' for t, _ in firsts)}")
    print(f"over {SLOW_S:.0f} s: {sum(t > SLOW_S for t in every)}")
    late = sum(after for _, after in firsts + rest)
    print(f"'registering' pushed after 'registered': {late} of {len(every)}")
    print(
        figures_line(
            registrations=len(every), p50_ms=cuts[49], p99_ms=cuts[98], max_ms=ms[-1], late_acks=late
        )
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--registrations", type=int, default=40, help="per Janus start")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    if not (shutil.which("janus") and shutil.which("sipp")):
        raise ImpossibleResult("needs janus and sipp (apt-get install janus sip-tester)")
    until = time.monotonic() + args.max_seconds
    firsts: list[Result] = []
    rest: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-janus-") as tmp:
        async with _registrar(Path(tmp)) as sip_port:
            for start in range(args.starts):
                if time.monotonic() > until:
                    break
                workdir = Path(tmp) / f"janus-{start}"
                workdir.mkdir()
                times = await _one_start(workdir, sip_port, args.registrations, until)
                firsts += times[:1]
                rest += times[1:]
    if not firsts:
        raise ImpossibleResult(f"0 registrations in {args.max_seconds:g} s")
    _report(firsts, rest)
    return 0


if __name__ == "__main__":
    run("janus_register", lambda: asyncio.run(main()))
