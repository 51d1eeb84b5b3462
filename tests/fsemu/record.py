"""``uuid_record <uuid> start|stop|mask|unmask|pause|resume <path> [<limit>]`` (mod_commands.c
session_record_function) and the recording media bug (switch_ivr_async.c). Not captured.

Start: switch_ivr_record_session_event pre-answers, creates the directories, opens the file, adds the
``session_record`` bug: record_callback INIT fires RECORD_START (Record-File-Path), then
switch_core_media_bug_add fires MEDIA_BUG_START. Stop (api, ``all``, the limit, or hangup in CS_HANGUP):
the CLOSE callback sets record_samples/_seconds/_ms and record_completion_cause, fires RECORD_STOP
(Record-File-Path, Record-Completion-Cause), then MEDIA_BUG_STOP. Completion cause: ``success-maxtime`` while
the channel is up, ``success-silence`` at hangup (no silence detection: speech is assumed), ``empty-file``
(file removed, RECORD_DISCARDED) when nothing was written. A mono channel records stereo (read left, write
right) when RECORD_STEREO is true (the vanilla directory sets record_stereo=true for its users).
The emulated file is 16-bit PCM WAV at the read codec's rate: what the channel hears from its caller.
"""

from __future__ import annotations

import asyncio
import copy
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.fsemu.audio import AudioSource
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore

OK = "+OK Success\n"
USAGE = "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]\n"
ERRORS = {
    "start": "-ERR Cannot record session!\n",
    "stop": "-ERR Cannot stop record session!\n",
    "pause": "-ERR Cannot pause recording session!\n",
    "resume": "-ERR Cannot resume recording session!\n",
    "mask": "-ERR Cannot mask recording session!\n",
    "unmask": "-ERR Cannot unmask recording session!\n",
}
TRUE = ("yes", "on", "true", "t", "enabled", "active", "allow", "1")


@dataclass(eq=False)
class Recording:
    """One ``session_record`` media bug."""

    path: str
    rate: int
    channels: int
    ptime_ms: int
    source: AudioSource | None
    started: float = field(default_factory=time.monotonic)
    # (seconds since start, mode): "on" records, "mask" writes silence, "pause" writes nothing.
    modes: list[tuple[float, str]] = field(default_factory=lambda: [(0.0, "on")])
    limit_task: asyncio.Task[None] | None = None

    def set_mode(self, mode: str) -> None:
        """From now on record ``mode``."""
        self.modes.append((time.monotonic() - self.started, mode))


class Recorder:
    """Recordings by channel UUID and path."""

    def __init__(self, core: SwitchCore, pre_answer: Callable[[EmulatedChannel], None]) -> None:
        self.core = core
        self.pre_answer = pre_answer
        self.active: dict[str, dict[str, Recording]] = {}

    async def command(self, arg: str) -> str:
        """Run ``uuid_record`` and return the reply body."""
        argv = arg.split(" ", 4)
        if len(argv) < 3 or not all(argv[:3]):
            return USAGE
        uuid, action, path = argv[0], argv[1].lower(), argv[2]
        if not Path(path).is_absolute() and path.lower() != "all":
            # switch_ivr_record_session_event: a relative file goes under sound_prefix or the base dir.
            path = str(self.core.temp_dir / path)
        ch = self.core.channels.get(uuid)
        if ch is None or not ch.alive:
            return "-ERR Cannot locate session!\n"
        if action not in ERRORS:
            return USAGE
        if action == "start":
            limit = int(argv[3]) if len(argv) > 3 and argv[3].isdigit() else 0
            return OK if self.start(ch, path, limit) else ERRORS[action]
        if action == "stop":
            return OK if self.stop(ch, path) else ERRORS[action]
        rec = self.active.get(ch.uuid, {}).get(path)
        if rec is None:
            return ERRORS[action]
        modes = {"mask": "mask", "unmask": "on", "pause": "pause", "resume": "on"}
        rec.set_mode(modes[action])
        return OK

    def start(self, ch: EmulatedChannel, path: str, limit: int = 0) -> bool:
        """switch_ivr_record_session_event; False = ``-ERR Cannot record session!``."""
        self.pre_answer(ch)
        if ch.read_codec is None:
            return False
        recordings = self.active.setdefault(ch.uuid, {})
        if path in recordings:
            return True  # already recording this file (no RECORD_TOGGLE_ON_REPEAT)
        stereo = (ch.get_var("RECORD_STEREO") or ch.get_var("record_stereo") or "").lower() in TRUE
        rec = Recording(
            path, ch.read_codec.rate, 2 if stereo else 1, ch.ptime_ms, copy.deepcopy(ch.audio_source)
        )
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._write(rec, np.zeros(0, dtype=np.int16))
        except OSError:
            return False
        recordings[path] = rec
        self.core.fire_channel(ch, "RECORD_START", post=[("Record-File-Path", path)])
        pre = [("Media-Bug-Function", "session_record"), ("Media-Bug-Target", path)]
        self.core.fire_channel(ch, "MEDIA_BUG_START", pre=pre)
        if limit > 0:
            rec.limit_task = self.core.spawn(self._limit(ch, rec, limit), name=f"record-limit-{ch.uuid}")
        return True

    async def _limit(self, ch: EmulatedChannel, rec: Recording, limit: int) -> None:
        await asyncio.sleep(limit)
        if self.active.get(ch.uuid, {}).get(rec.path) is rec:
            rec.limit_task = None
            self._close(ch, rec)

    def stop(self, ch: EmulatedChannel, path: str) -> bool:
        """switch_ivr_stop_record_session: one file, or ``all`` (False when nothing was recording)."""
        recordings = self.active.get(ch.uuid, {})
        chosen = (
            list(recordings.values()) if path.lower() == "all" else [r for r in (recordings.get(path),) if r]
        )
        for rec in chosen:
            self._close(ch, rec)
        return bool(chosen)

    def on_hangup(self, ch: EmulatedChannel) -> None:
        """CS_HANGUP: switch_core_media_bug_remove_all closes every recording."""
        for rec in list(self.active.get(ch.uuid, {}).values()):
            self._close(ch, rec)
        self.active.pop(ch.uuid, None)

    def _close(self, ch: EmulatedChannel, rec: Recording) -> None:
        self.active.get(ch.uuid, {}).pop(rec.path, None)
        if rec.limit_task is not None:
            rec.limit_task.cancel()
        pcm = self._render(rec, time.monotonic() - rec.started)
        frames = len(pcm) // rec.channels
        if frames < rec.rate * rec.ptime_ms // 1000:
            Path(rec.path).unlink(missing_ok=True)
            ch.set_var("RECORD_DISCARDED", "true")
            frames, cause = 0, "empty-file"
        else:
            self._write(rec, pcm)
            cause = "success-maxtime" if ch.alive else "success-silence"
        ch.set_vars([("record_samples", str(frames)), ("record_seconds", str(frames // rec.rate))])
        ch.set_vars([("record_ms", str(frames // (rec.rate // 1000))), ("record_completion_cause", cause)])
        post = [("Record-File-Path", rec.path), ("Record-Completion-Cause", cause)]
        self.core.fire_channel(ch, "RECORD_STOP", post=post)
        pre = [("Media-Bug-Function", "session_record"), ("Media-Bug-Target", rec.path)]
        self.core.fire_channel(ch, "MEDIA_BUG_STOP", pre=pre)

    def _render(self, rec: Recording, elapsed: float) -> np.ndarray:
        """The caller's audio over the recording's life: masked parts silent, paused parts left out."""
        source = rec.source or AudioSource()
        ends = [t for t, _ in rec.modes[1:]] + [elapsed]
        parts = []
        for (start, mode), end in zip(rec.modes, ends, strict=True):
            samples = max(0, round(end * rec.rate) - round(start * rec.rate))
            chunk = source.read(samples, rec.rate)
            if mode == "pause":
                continue
            parts.append(np.zeros(samples, dtype=np.int16) if mode == "mask" else chunk)
        mono = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        if rec.channels == 1:
            return mono.astype(np.int16)
        stereo = np.zeros(len(mono) * 2, dtype=np.int16)
        stereo[0::2] = mono  # read (the caller) left, write (what the channel played) right: silence
        return stereo

    def _write(self, rec: Recording, pcm: np.ndarray) -> None:
        with wave.open(rec.path, "wb") as out:
            out.setnchannels(rec.channels)
            out.setsampwidth(2)
            out.setframerate(rec.rate)
            out.writeframes(pcm.astype("<i2").tobytes())
