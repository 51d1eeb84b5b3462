"""A SIP desk phone for the tests on a real FreeSWITCH: sipp running ``tests/sipp/uac_register_call.xml``.

The phone registers with digest auth, calls a service with PCMU, plays a caller's side of espeak-ng speech
(``tests/speech.py``) as RTP, listens and hangs up. The test then reads what the operator sees: the call's
CDR from the controller's API. Used by the live desk-phone twin (``tests/integration/test_sip_phone_live.py``)
and the compose smoke test on the real FreeSWITCH (``tests/compose/test_stack.py``).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from tests.speech import build_call

__all__ = [
    "CDR_DEADLINE_S", "SCENARIO", "SIPP_DEADLINE_S", "UTTERANCE", "caller_audio", "cdr_of", "local_ip",
    "run_sipp", "scenario", "start_sipp",
]  # fmt: skip

SCENARIO: Final = Path(__file__).resolve().parent / "sipp" / "uac_register_call.xml"
# Whisper tiny.en through PCMU at 8 kHz: this sentence was heard with "bill" in 24 of 24 offline trials
# (start clipped by 0-40 ms, 0-4 % of 20 ms frames lost, gain 0.5-1.5); "I want to pay my bill." in 9 of 24
# ("I want to convey my will.": it failed the twin 1 run in 3).
UTTERANCE: Final = "I would like to pay my bill, please."
SIPP_DEADLINE_S: Final = 60.0
CDR_DEADLINE_S: Final = 20.0


def local_ip(host: str, port: int) -> str:
    """The address this machine sends from to reach ``host`` (no packet is sent: a UDP connect)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        address: str = probe.getsockname()[0]
        return address


def caller_audio(
    workdir: Path, utterance: str = UTTERANCE, *, script: list[tuple[float, str]] | None = None,
    tail: float = 10.0,
) -> Path:  # fmt: skip
    """8 kHz mu-law WAV: 4 s of silence (the greeting), the request, then ``tail`` s to hear the answer (or
    ``script``: (seconds of silence, sentence) pairs); written as ``caller.wav`` in ``workdir``, where the
    scenario's ``rtp_stream`` finds it."""
    call = build_call(workdir, 8000, script or [(4.0, utterance)], tail=tail)
    out = workdir / "caller.wav"
    subprocess.run(["sox", str(call.path), "-e", "u-law", "-b", "8", str(out)], check=True, timeout=30)
    return out


def scenario(workdir: Path, user: str, password: str, domain: str, hold_s: float = 16.0) -> Path:
    """A private copy of the scenario with the phone's account filled in; each call hangs up ``hold_s``
    after its audio starts."""
    text = SCENARIO.read_text().replace("@USER@", user).replace("@DOMAIN@", domain)
    text = text.replace("@HOLD_MS@", str(round(hold_s * 1000)))
    path = workdir / "phone.xml"
    path.touch(0o600)
    path.write_text(text.replace("@PASSWORD@", password))
    return path


async def start_sipp(
    workdir: Path, target: str, service: str, scenario: Path, *, calls: int = 1, cps: float = 1.0,
    deadline_s: float = SIPP_DEADLINE_S,
) -> asyncio.subprocess.Process:  # fmt: skip
    """sipp placing ``calls`` calls of ``scenario`` to ``service`` at ``target`` (``host:port``), ``cps`` a
    second, all up at once; SIP messages traced to ``*_messages.log`` in ``workdir``, stdout piped."""
    host, _, port = target.rpartition(":")
    local = local_ip(host, int(port))
    sipp = shutil.which("sipp")
    assert sipp is not None, "sipp is missing (Debian: sip-tester)"
    period_ms = max(1, round(1000 / cps))
    return await asyncio.create_subprocess_exec(
        *(sipp, target, "-sf", str(scenario), "-s", service),
        *("-i", local, "-mi", local, "-p", "0", "-mp", "0"),
        *("-m", str(calls), "-l", str(calls), "-r", "1", "-rp", str(period_ms), "-nostdin"),
        *("-trace_err", "-trace_msg", "-timeout", f"{int(deadline_s)}s", "-timeout_error"),
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def run_sipp(workdir: Path, target: str, service: str, scenario: Path) -> str:
    """One call of ``scenario`` to ``service`` at ``target`` (``host:port``); its screen. Fails the test with
    sipp's screen and error log when sipp fails."""
    process = await start_sipp(workdir, target, service, scenario)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), SIPP_DEADLINE_S + 10)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        errors = "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))  # noqa: ASYNC240
        pytest.fail(f"sipp exited {process.returncode}:\n{output.decode(errors='replace')[-3000:]}\n{errors}")
    return output.decode(errors="replace")


async def cdr_of(api: aiohttp.ClientSession, caller: str, since: str) -> dict[str, Any]:
    """The newest closed CDR of ``caller`` started after ``since`` (``GET /v1/cdrs``)."""
    async with asyncio.timeout(CDR_DEADLINE_S):
        while True:
            async with api.get("/v1/cdrs", params={"number": caller, "since": since}) as resp:
                assert resp.status == 200, await resp.text()
                records = (await resp.json())["items"]
            closed = [r for r in records if r["status"] == "closed"]
            if closed:
                return dict(closed[0])
            await asyncio.sleep(0.5)
