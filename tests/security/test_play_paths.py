"""Issue 17 item 5 (play paths): ``POST /v1/calls/{id}/play`` took any absolute path, ``..`` included, so an
API client could have FreeSWITCH read (and play to a caller) any file it can open. Now a path must lie
under ``calls.media_dirs`` or ``calls.recordings_dir``, with no ``.``, ``..`` or empty segment.
"""

from __future__ import annotations

import wave
from pathlib import Path

from tests.controllerkit import running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.wire import Event
from tests.integration.test_call_api import ROUTES, _originate, _post


def _broadcasts(events: list[Event]) -> list[str]:
    return [e.get("API-Command-Argument") or "" for e in events if e.get("API-Command") == "uuid_broadcast"]


async def test_play_refuses_paths_outside_the_media_directories(tmp_path: Path) -> None:
    media = tmp_path / "sounds"
    media.mkdir()
    with wave.open(str(media / "hello.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 4000)
    calls = {"routes": ROUTES, "media_dirs": [str(media)]}
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, calls=calls) as rc,
    ):
        events = fs.record_events()
        call_id = await _originate(rc)
        refused = {
            path: await _post(rc, f"/v1/calls/{call_id}/play", {"file": path})
            for path in (
                "/etc/freeswitch/vars.xml",
                f"{media}/../../../etc/passwd",
                f"{media}/./hello.wav",
                f"{media}//hello.wav",
                f"{media}-other/hello.wav",
            )
        }
        allowed = await _post(rc, f"/v1/calls/{call_id}/play", {"file": f"{media}/hello.wav"})
    for path, (status, body) in refused.items():
        assert status == 422, path
        assert body["error"]["field"] in ("file", "body.file", "body"), body
    assert allowed[0] == 200
    assert [b.split(" ")[1] for b in _broadcasts(events)] == [f"{media}/hello.wav"]
