"""Issue 17 item 5 (metadata): a caller id with ``"``, ``\\``, ``'`` or non-ASCII reached the worker as
invalid JSON after FreeSWITCH un-escaped the api argument (``\\"`` -> ``"``, ``\\\\`` -> ``\\``, ``\\n`` ->
newline, paired ``'`` removed: tests/fsemu/argsplit.py), so every worker refused the stream in turn.

The twin runs the controller's own metadata (``stream_request``) through ``uuid_audio_stream … start`` on
the emulator and (``-m live``) the real FreeSWITCH, and reads the first text frame a raw WebSocket worker
received.
"""

from __future__ import annotations

import pytest

from controller.calls.channel import Channel
from controller.calls.router import stream_request
from switchyard.wire import parse_metadata
from tests.fsemu.argsplit import unescape_argument
from tests.integration.conftest import EslTarget, esl_target  # noqa: F401 - the twin's fixture
from tests.integration.test_live_drift import DEADLINE, OK, stream_call

CALLER_IDS = (
    'say "hi"',
    "back\\slash\\",
    "\\u0041 is not A",
    "it's",
    "'quoted' twice 'x'",
    "caf\u00e9 \u4e2d\u6587 \U0001f600",
    "tab\tnew\nline",
    "\\\"mixed\\' all",
)


def _request(caller: str, call_id: str = "call-1") -> str:
    ch = Channel("u1", "fs1", call_id, caller_id_number=caller, destination_number="7000")
    return stream_request(ch, "default").metadata


@pytest.mark.parametrize("caller", CALLER_IDS)
def test_metadata_survives_the_emulated_unescaping(caller: str) -> None:
    meta = parse_metadata(unescape_argument(_request(caller)), "call-1")
    assert meta.caller == caller


def test_metadata_is_ascii_with_no_backslash_but_unicode_escapes() -> None:
    text = _request("".join(CALLER_IDS))
    assert text.isascii()
    assert "'" not in text
    assert text.count("\\") == text.count("\\u")


async def test_caller_ids_reach_the_worker_intact(esl_target: EslTarget) -> None:  # noqa: F811
    async with stream_call(esl_target) as call:
        for i, caller in enumerate(CALLER_IDS):
            metadata = _request(caller, f"call-{i}")
            url = call.worker.url(f"/stream/call-{i}")
            command = f"uuid_audio_stream {call.a_leg} start {url} mono 8k {metadata}"
            assert await call.rec.api(command) == OK
            await call.until("CUSTOM mod_audio_stream::connect")
            assert await call.stop() == OK
            conn = await call.worker.wait_done(i, DEADLINE)
            assert parse_metadata(conn.texts[0], f"call-{i}").caller == caller, conn.texts
