"""Twins of what a restarted controller reads from the sessions (controller/calls/snapshot.py): each runs on
the emulator and, ``-m live``, on a real FreeSWITCH 1.10.12 + mod_audio_stream.

``uuid_setvar_multi`` keeps the route on the channel; ``uuid_dump <uuid> json`` gives it back with the
caller-profile times in microseconds and ``Answer-State``; ``uuid_buglist`` names mod_audio_stream's bug
while a stream is on; a channel that is gone answers ``-ERR`` to the dump and ``false`` to ``uuid_exists``.
"""

from __future__ import annotations

import json
import time
import uuid as uuidlib

from tests.integration.conftest import EslTarget
from tests.integration.test_live_drift import stream_call

BUG = "<function>audio_stream</function>"


async def test_the_route_kept_on_the_channel_reads_back_from_its_dump(esl_target: EslTarget) -> None:
    async with stream_call(esl_target) as call:
        rec, a_leg = call.rec, call.a_leg
        route = "switchyard_route=agent;switchyard_route_arg=support"
        reply = await rec.api(f"uuid_setvar_multi {a_leg} {route}")
        dump = json.loads(await rec.api(f"uuid_dump {a_leg} json"))
        bugs_before = await rec.api(f"uuid_buglist {a_leg}")
        assert await call.start(call.worker.url()) == "+OK Success\n"
        await call.until("CUSTOM mod_audio_stream::connect")
        bugs_streaming = await rec.api(f"uuid_buglist {a_leg}")
        exists = await rec.api(f"uuid_exists {a_leg}")
        assert await call.stop() == "+OK Success\n"
        await call.until("MEDIA_BUG_STOP")
        await call.worker.wait_done(0, 10.0)
    assert reply.startswith("+OK")
    assert dump["Unique-ID"] == a_leg
    assert dump["variable_switchyard_route"] == "agent"
    assert dump["variable_switchyard_route_arg"] == "support"
    assert dump["Answer-State"] == "answered"  # the loopback A-leg of a tone extension
    created, answered = int(dump["Caller-Channel-Created-Time"]), int(dump["Caller-Channel-Answered-Time"])
    assert abs(created / 1e6 - time.time()) < 60
    assert created <= answered
    assert dump["variable_current_application"] == "park"
    assert "<media-bugs>" in bugs_before
    assert BUG not in bugs_before
    assert BUG in bugs_streaming
    assert exists == "true"


async def test_a_channel_that_is_gone_has_no_dump(esl_target: EslTarget) -> None:
    async with stream_call(esl_target) as call:
        gone = str(uuidlib.uuid4())
        dump = await call.rec.api(f"uuid_dump {gone} json")
        exists = await call.rec.api(f"uuid_exists {gone}")
    assert dump.startswith("-ERR")
    assert exists == "false"
