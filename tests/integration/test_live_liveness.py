"""Live twin of media liveness: ``STREAM_HEART_BEAT`` pings reach a real aiohttp worker on a silent channel.

Runs on the emulator and, ``-m live``, on a real FreeSWITCH 1.10.12 + mod_audio_stream ec2a781
(``esl_target``, tests/integration/conftest.py). The A-leg of ``originate loopback/<tone ext> &park()`` is
parked, and its stream is also paused (``uuid_audio_stream … pause``: no binary frames, on both), so only
libwsc's pings can reach the worker. The worker (the real app, ``tests/workerkit.py``) closes a stream
with no frame for ``idle_timeout_s`` (2.5 s here): the stream still open after 5 s proves that PINGs
arrived at least every 2.5 s, and answered PONGs never upset FreeSWITCH (the bug is still attached).
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from collections.abc import Mapping

import pytest

from media_worker.vad.silero import SileroModel
from tests.integration.conftest import EslTarget
from tests.integration.test_live_drift import _gone, _originate, _session
from tests.workerkit import running_worker

SILENT_S = 5.0  # twice the worker's idle_timeout_s


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


async def _until_open(sessions: Mapping[str, object], call_id: str, deadline_s: float = 5.0) -> None:
    async with asyncio.timeout(deadline_s):
        while call_id not in sessions:  # noqa: ASYNC110 - the worker's sessions, filled by the wire
            await asyncio.sleep(0.02)


async def test_heart_beat_pings_keep_a_silent_parked_stream_open(
    esl_target: EslTarget, model: SileroModel
) -> None:
    a_leg = str(uuidlib.uuid4())
    call_id = f"live-ping-{a_leg[:8]}"
    worker_host = esl_target.worker_host
    async with (
        running_worker(model, host=worker_host, idle_timeout_s=2.5, liveness_s=1.5) as rw,
        _session(esl_target) as rec,
    ):
        assert (await rec.api(_originate(esl_target, a_leg, esl_target.tone_extension))) == f"+OK {a_leg}\n"
        try:
            assert (await rec.api(f"uuid_setvar {a_leg} STREAM_HEART_BEAT 1")).startswith("+OK")
            assert (
                await rec.api(f"uuid_audio_stream {rw.start_args(a_leg, call_id, 8000)}") == "+OK Success\n"
            )
            await _until_open(rw.worker.sessions, call_id)
            assert await rec.api(f"uuid_audio_stream {a_leg} pause") == "+OK Success\n"
            await asyncio.sleep(SILENT_S)
            still_open = call_id in rw.worker.sessions
            stopped = await rec.api(f"uuid_audio_stream {a_leg} stop")
        finally:
            await rec.api(f"uuid_kill {a_leg}", record=False)
            await _gone(rec, a_leg)
    assert still_open, f"the worker closed the silent stream within {SILENT_S} s: no pings arrived"
    assert stopped == "+OK Success\n"  # the bug was still attached: the PONGs did not end the stream
