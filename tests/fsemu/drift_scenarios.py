"""The scenarios recorded from a real FreeSWITCH into tests/fixtures/live/ and replayed on the emulator.

Each scenario drives one inbound ESL connection (``EslRecorder``) and, where it streams, a
``ScriptedWorker``; it returns a normalised ``Transcript``. ``python -m tests.live.capture OUTDIR`` runs them
against a real FreeSWITCH and writes ``<name>.txt``; tests/integration/test_emulator_live_drift.py runs them
on the emulator and compares (tests.fsemu.transcript.compare). The dialplan they need: ``tone_extension``
answers and plays an endless tone, ``park_extension`` parks and never answers by itself, both in
``context``. Streams go from the A-leg of a tone call (``originate ... &park()``: answered and parked).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tests.fsemu.drift_recorder import EslRecorder, is_event
from tests.fsemu.scripted_worker import Behaviour, ScriptedWorker
from tests.fsemu.transcript import Transcript

STREAM_EVENTS = (
    "event json CHANNEL_STATE CHANNEL_CALLSTATE CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_DESTROY "
    "MEDIA_BUG_START MEDIA_BUG_STOP CUSTOM mod_audio_stream::connect mod_audio_stream::disconnect "
    "mod_audio_stream::error mod_audio_stream::json mod_audio_stream::play"
)
CALL_EVENTS = (
    "event json CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_PARK CHANNEL_UNPARK CHANNEL_STATE CHANNEL_CALLSTATE "
    "CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_DESTROY"
)
METADATA = '{"m":1}'
EVENT_DEADLINE = 10.0
ROWS_DEADLINE = 5.0


@dataclass(frozen=True)
class DriftTarget:
    """The FreeSWITCH (or emulator) a scenario runs against."""

    host: str
    port: int
    password: str
    context: str = "switchyard"
    tone_extension: str = "7101"
    park_extension: str = "7102"
    worker_host: str = "127.0.0.1"


@dataclass
class Run:
    """One scenario run: the connection, the A-leg's UUID, the target and the worker."""

    rec: EslRecorder
    a_leg: str
    target: DriftTarget
    worker: ScriptedWorker

    @property
    def transcript(self) -> Transcript:
        """The transcript being written."""
        return self.rec.transcript

    def originate(self, extension: str, *variables: str) -> str:
        """The ``originate`` api argument for a loopback call to ``extension`` with the A-leg parked."""
        values = ",".join((f"origination_uuid={self.a_leg}", *variables))
        return f"originate {{{values}}}loopback/{extension}/{self.target.context} &park()"

    async def stream_call(self) -> None:
        """A tone call whose A-leg's events (only) are subscribed to."""
        await self.rec.api(self.originate(self.target.tone_extension))
        await self.rec.command(STREAM_EVENTS)
        await self.rec.command(f"filter Unique-ID {self.a_leg}")

    async def start(self, url: str) -> str:
        """``uuid_audio_stream <A> start <url> mono 8k <metadata>``."""
        return await self.rec.api(f"uuid_audio_stream {self.a_leg} start {url} mono 8k {METADATA}")

    async def until(self, key: str, detail: str | None = None, what: str = "") -> None:
        """Wait for the A-leg's event and note how long it took."""
        waited = await self.rec.until_event(is_event(key, self.a_leg, detail), timeout=EVENT_DEADLINE)
        self.transcript.add_comment(f"{what or key} after {waited:.2f} s")

    async def worker_saw(self, index: int) -> None:
        """Add what worker connection ``index`` (0-based) observed, once it ended."""
        conn = await self.worker.wait_done(index, EVENT_DEADLINE)
        self.transcript.add_worker(index + 1, conn.seen)

    async def hang_up(self) -> None:
        """Kill the A-leg and wait until it is gone."""
        await self.rec.api(f"uuid_kill {self.a_leg}")
        await self.until("CHANNEL_STATE", "CS_DESTROY", "CHANNEL_DESTROY")


def closed_port(host: str) -> int:
    """A port on ``host`` nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


# -- the scenarios -----------------------------------------------------------------------------------
async def show_json(run: Run) -> None:
    """(a) ``show channels|calls as json`` empty, for a loopback pair, and the core database's lag."""
    rec = run.rec
    await rec.api("show channels as json")
    await rec.api("show calls as json")
    await rec.api(run.originate(run.target.tone_extension))
    await rec.api("show channels as json")  # written to the core db by a SQL thread, later
    waited = await _rows(rec, 2)
    run.transcript.add_comment(f"both rows listed {waited:.2f} s after originate returned")
    await rec.api("show channels as json")
    await rec.api("show calls as json")
    await rec.api(f"uuid_kill {run.a_leg}")
    waited = await _rows(rec, 0)
    run.transcript.add_comment(f"rows gone {waited:.2f} s after uuid_kill returned")
    await rec.api("show channels as json")


async def _rows(rec: EslRecorder, count: int) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(ROWS_DEADLINE):
        while json.loads(await rec.api("show channels as json", record=False))["row_count"] != count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return loop.time() - started


async def msleep(run: Run) -> None:
    """(b) ``msleep`` replies, also through bgapi."""
    rec = run.rec
    _, took = await rec.timed_api("msleep 100")
    run.transcript.add_comment(f"msleep 100 replied after {took:.2f} s")
    await rec.api("msleep")
    await rec.api("msleep abc")
    await rec.command("event json BACKGROUND_JOB")
    await rec.command("bgapi msleep 50")
    await rec.until_event(is_event("BACKGROUND_JOB"), timeout=EVENT_DEADLINE)


async def stream_start_failures(run: Run) -> None:
    """(c) starts that never connect: refused, 404, EOF or a bad accept in the handshake, no answer."""
    await run.stream_call()
    host = run.target.worker_host
    await run.start(f"ws://{host}:{closed_port(host)}/refused")
    await run.until("MEDIA_BUG_STOP", what="refused: MEDIA_BUG_STOP")
    await run.rec.api(f"uuid_audio_stream {run.a_leg} stop")
    for index, kind in enumerate(("http404", "eof_in_handshake", "bad_accept", "silent")):
        run.worker.behaviour = Behaviour(kind)
        await run.start(run.worker.url(f"/{kind}"))
        await run.until("MEDIA_BUG_STOP", what=f"{kind}: MEDIA_BUG_STOP")
        await run.rec.api(f"uuid_audio_stream {run.a_leg} stop")
        await run.worker_saw(index)
    await run.hang_up()


async def stream_stop_and_hangup(run: Run) -> None:
    """(c) a connected stream stopped by ``uuid_audio_stream stop``, then one ended by the hangup."""
    await run.stream_call()
    await run.start(run.worker.url("/stop"))
    await run.until("CUSTOM mod_audio_stream::connect")
    await run.rec.api(f"uuid_audio_stream {run.a_leg} stop")
    await run.until("MEDIA_BUG_STOP")
    await run.worker_saw(0)
    await run.start(run.worker.url("/hangup"))
    await run.until("CUSTOM mod_audio_stream::connect")
    await run.hang_up()
    await run.worker_saw(1)


async def worker_close(run: Run) -> None:
    """(e) the worker ends a connected stream: TCP reset, FIN without a close frame, close 1000 / 4000."""
    await run.stream_call()
    rec, a_leg = run.rec, run.a_leg
    for index, kind in enumerate(("reset", "eof")):
        run.worker.behaviour = Behaviour(kind, after=0.5)
        await run.start(run.worker.url(f"/{kind}"))
        await run.until("MEDIA_BUG_STOP", what=f"{kind}: MEDIA_BUG_STOP")
        await rec.api(f"uuid_audio_stream {a_leg} stop")
        await run.worker_saw(index)
    for index, (code, reason) in enumerate(((1000, ""), (4000, "bye now")), start=2):
        run.worker.behaviour = Behaviour("close", after=0.5, code=code, reason=reason)
        await run.start(run.worker.url(f"/close{code}"))
        await run.until("CUSTOM mod_audio_stream::disconnect", what=f"close {code}: ::disconnect")
        await run.worker_saw(index)
        await run.start(run.worker.url("/again"))  # the bug is still attached
        await rec.api(f"uuid_audio_stream {a_leg} stop")
        await run.until("MEDIA_BUG_STOP", what=f"close {code}: MEDIA_BUG_STOP after stop")
    await run.hang_up()


async def originate_no_answer(run: Run) -> None:
    """(d) originate to the park extension with originate_timeout=2: nobody answers."""
    rec = run.rec
    await rec.command(CALL_EVENTS)
    reply, took = await rec.timed_api(run.originate(run.target.park_extension, "originate_timeout=2"))
    run.transcript.add_comment(f"originate replied {reply.strip()!r} after {took:.2f} s")
    await rec.until_event(is_event("CHANNEL_STATE", detail="CS_DESTROY"), count=2, timeout=EVENT_DEADLINE)


Scenario = Callable[[Run], Awaitable[None]]
SCENARIOS: dict[str, tuple[Scenario, frozenset[str]]] = {
    "show_json": (show_json, frozenset()),
    "msleep": (msleep, frozenset({"BACKGROUND_JOB"})),
    "stream_start_failures": (
        stream_start_failures,
        frozenset({"CUSTOM mod_audio_stream::error", "MEDIA_BUG_STOP"}),
    ),
    "stream_stop_and_hangup": (stream_stop_and_hangup, frozenset({"MEDIA_BUG_STOP"})),
    "worker_close": (
        worker_close,
        frozenset({"CUSTOM mod_audio_stream::error", "CUSTOM mod_audio_stream::disconnect"}),
    ),
    "originate_no_answer": (originate_no_answer, frozenset({"CHANNEL_HANGUP"})),
}


async def run_scenario(name: str, target: DriftTarget) -> Transcript:
    """Run scenario ``name`` against ``target`` and return its transcript."""
    scenario, names_of = SCENARIOS[name]
    transcript = Transcript(names_of)
    a_leg = str(uuidlib.uuid4())
    transcript.name_leg(a_leg, "A")
    async with ScriptedWorker(target.worker_host) as worker:
        rec = await EslRecorder.open(target.host, target.port, target.password, transcript)
        try:
            await scenario(Run(rec, a_leg, target, worker))
        finally:
            with contextlib.suppress(ConnectionError, TimeoutError):
                await rec.api(f"uuid_kill {a_leg}", record=False)
            await rec.close()
    return transcript
