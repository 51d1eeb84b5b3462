"""Issue 17 item 5 (play paths): ``POST /v1/calls/{id}/play`` took any absolute path, ``..`` included, so an
API client could have FreeSWITCH read (and play to a caller) any file it can open. Now a path must lie
under ``calls.media_dirs`` or ``calls.recordings_dir``, with no ``.``, ``..`` or empty segment.

The same for ``mod_audio_stream::play``: the controller broadcast whatever file the event named, and the
event may come from anyone with ESL access. Now only a file directly inside the node's temp directory
(``freeswitch.<node>.temp_dir``) named for that channel (``<uuid>_<n>.tmp.<type>``) is played; any other is
refused, logged and noted in the CDR (``extra.play_refused``), controller.calls.speechfiles.
"""

from __future__ import annotations

import json
import uuid as uuid_module
import wave
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from controller.calls.speechfiles import shown_path
from controller.settings import FreeSwitchNodeSettings
from tests.controllerkit import StandInWorker, register_worker, running_controller, speak, until
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


# -- ::play: only mod_audio_stream's own file of the channel, directly in FreeSWITCH's temp directory ----
def _forged(temp: Path, uuid: str) -> list[str]:
    """``::play`` files a forger might name on the channel ``uuid`` (none of them mod_audio_stream's)."""
    own = f"{uuid}_1.tmp.r16"
    return [
        "/etc/passwd",
        f"{temp}/../../../../etc/passwd",
        f"{temp}/{uuid}_0.tmp.r16/../../../../etc/passwd",
        f"{temp}/./{own}",
        f"{temp}//{own}",
        f"{temp}/sub/{own}",
        f"{temp}-other/{own}",
        f"{temp}x/{own}",
        f"/proc/self/root{temp}/{own}",
        f"/dev/fd/../../{temp}/{own}",
        f"{temp}/{uuid_module.uuid4()}_0.tmp.r16",  # another channel's file
        f"{temp}/{uuid.upper()}_1.tmp.r16",
        f"{temp}/{uuid}_1.tmp.xml",
        f"{temp}/{uuid}_1.tmp.r16 aleg",
        "tone_stream://%(1000,0,440)",
        "",
    ]


async def test_a_forged_play_is_refused_noted_and_not_played(tmp_path: Path) -> None:
    """Anyone with ESL access can fire ``mod_audio_stream::play`` with a body of their own: the controller
    broadcasts the worker's real file and none of the forged ones, and the CDR lists each forged one."""
    temp = tmp_path / "fs-temp"
    temp.mkdir()
    calls = {"routes": [{"destination": "^7102$", "action": "agent support"}]}
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=temp)) as fs,
        StandInWorker(lambda session: speak(session, 0.3)) as worker,
        running_controller(fs, tmp_path, calls=calls) as rc,
    ):
        await register_worker(rc, "w1", worker.url)
        events = fs.record_events()
        uuid = await fs.inject_inbound_call(destination="7102")
        await until(lambda: len(_broadcasts(events)) == 1, "the worker's own file was broadcast")
        forged = _forged(temp, uuid)
        for path in forged:
            fs.fire_custom(uuid, "mod_audio_stream::play", json.dumps({"file": path}))
        fs.fire_custom(uuid, "mod_audio_stream::play", json.dumps({"file": f"{temp}/{uuid}_0.tmp.r16"}))
        await until(lambda: len(_broadcasts(events)) == 2, "the second announcement of its own file")
        await fs.caller_hangup(uuid)
        await rc.call_ended(uuid, timeout=10)
        record = await rc.controller.store.get(uuid)
    played = [b.split(" ")[1] for b in _broadcasts(events)]
    assert played == [f"{temp}/{uuid}_0.tmp.r16"] * 2
    assert record is not None
    assert str(record.extra["play_refused"]).split(" ") == [shown_path(path) for path in forged]


@pytest.mark.parametrize("path", ["tmp", "/tmp/", "/tmp/../etc", "/tmp/./x", "/tmp//x", "/tmp/a b"])
def test_the_temp_dir_setting_is_an_absolute_directory(path: str) -> None:
    with pytest.raises(ValidationError, match="temp_dir"):
        FreeSwitchNodeSettings(name="fs1", password=SecretStr("a-password"), temp_dir=path)


def test_the_temp_dir_defaults_to_freeswitchs() -> None:
    assert FreeSwitchNodeSettings(name="fs1", password=SecretStr("a-password")).temp_dir == "/tmp"
