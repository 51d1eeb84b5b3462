"""uuid_broadcast / uuid_break as esl_playback_queue.txt shows them.

Broadcasts queue: each is picked up ~100 ms after the previous one ended (~120 ms after an idle api call) and
reports CHANNEL_EXECUTE playback + PLAYBACK_START, then PLAYBACK_STOP (done | break) +
CHANNEL_EXECUTE_COMPLETE (always "FILE PLAYED"), then PRIVATE_COMMAND. ``uuid_break`` stops the current file
only; ``uuid_break all`` also drops the queue silently. ``variable_playback_*`` stay on the channel (stale).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from dataclasses import dataclass, field

from tests.fsemu.apps import Apps
from tests.fsemu.audio import EchoSource, MediaInfo, media_info
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore
from tests.fsemu.wire import Event, HeaderValue

PICKUP_DELAY = 0.12  # api call -> CHANNEL_EXECUTE of an idle parked leg (capture: ~120 ms)
GAP = 0.1  # end of one broadcast -> CHANNEL_EXECUTE of the next (capture: ~100 ms)
BREAK_DELAY = 0.02  # uuid_break -> PLAYBACK_STOP (capture: ~20 ms)


@dataclass
class Broadcast:
    """One queued ``uuid_broadcast``; ``command`` holds the COMMAND headers created at queue time."""

    path: str
    command: list[tuple[str, HeaderValue]]


@dataclass
class PlaybackQueue:
    """Per-channel broadcast queue and the task that plays it."""

    items: collections.deque[Broadcast] = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    breaker: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    current: str | None = None


class Player:
    """Plays files on channels for uuid_broadcast (and the endless tone of extension 7101)."""

    def __init__(self, core: SwitchCore, apps: Apps) -> None:
        self.core = core
        self.apps = apps

    def broadcast(self, ch: EmulatedChannel, path: str) -> None:
        """Queue ``path`` on ``ch`` (the api reply ``+OK Message sent`` is sent by the caller)."""
        queue = ch.playback
        if queue is None:
            queue = ch.playback = PlaybackQueue()
        command = self.core.core_headers(
            "COMMAND", ("switch_ivr_async.c", "switch_ivr_broadcast", 5731), None
        )
        command += [
            ("call-command", "execute"),
            ("execute-app-name", "playback"),
            ("execute-app-arg", path),
            ("event-lock", "true"),
            ("lead-frames", "5"),
        ]
        queue.items.append(Broadcast(path, command))
        queue.wake.set()
        if queue.task is None or queue.task.done():
            queue.task = self.core.spawn(self._run(ch, queue), name=f"broadcast-{ch.uuid}")

    def break_playback(self, ch: EmulatedChannel, flush_all: bool) -> None:
        """``uuid_break [all]``: stop the current file; with ``all`` drop the queue too (no event)."""
        queue = ch.playback
        if queue is None:
            return
        if flush_all:
            queue.items.clear()
        if queue.current is not None:
            queue.breaker.set()

    async def _run(self, ch: EmulatedChannel, queue: PlaybackQueue) -> None:
        delay = PICKUP_DELAY
        while ch.alive:
            if not queue.items:
                queue.wake.clear()
                await queue.wake.wait()
                delay = PICKUP_DELAY
                continue
            await asyncio.sleep(delay)
            if not queue.items or not ch.alive:
                continue
            item = queue.items.popleft()
            await self.play_broadcast(ch, queue, item)
            delay = GAP

    async def play_broadcast(self, ch: EmulatedChannel, queue: PlaybackQueue, item: Broadcast) -> None:
        """Play one queued broadcast and report it like switch_ivr_play_file + parse_next_event."""
        ch.set_vars([("current_loop", "1"), ("total_loops", "1")])
        queue.current = item.path
        queue.breaker.clear()
        try:
            await self.play_file(ch, item.path, queue.breaker)
        finally:
            queue.current = None
        ch.set_var("current_loop", None)
        ch.set_var("total_loops", None)
        if not ch.alive:
            return
        private = self.core.core_headers(
            "PRIVATE_COMMAND", ("switch_ivr.c", "switch_ivr_parse_next_event", 804), None
        )
        headers = item.command + private + ch.basic_headers()
        self.core.publish(Event(headers))

    async def play_file(self, ch: EmulatedChannel, path: str, breaker: asyncio.Event) -> str:
        """Run the ``playback`` app for ``path`` until done, break or hangup; return the status."""
        app_uuid = self.apps.execute(ch, "playback", path)
        info = media_info(path)
        if info is None:
            self.apps.complete(ch, "playback", path, app_uuid, "FILE NOT FOUND")
            return "error"
        kind: list[tuple[str, HeaderValue]] = [("Playback-File-Type", "tone_stream")] if info.is_tone else []
        self.core.fire_channel(ch, "PLAYBACK_START", post=[*kind, ("Playback-File-Path", path)])
        started = time.monotonic()
        echo = ch.audio_source if isinstance(ch.audio_source, EchoSource) else None
        if echo is not None:
            echo.play(path)
        try:
            status = await self._wait(ch, info, breaker)
        finally:
            if echo is not None:
                echo.stop()
        elapsed = time.monotonic() - started
        ch.set_vars(_playback_vars(ch, info, elapsed, status))
        post = [
            *kind,
            ("Playback-File-Path", path),
            ("Playback-Status", "done" if status != "break" else "break"),
        ]
        self.core.fire_channel(ch, "PLAYBACK_STOP", post=post)
        response = "PLAYBACK ERROR" if info.samples is None else "FILE PLAYED"
        self.apps.complete(ch, "playback", path, app_uuid, response)
        return status

    async def _wait(self, ch: EmulatedChannel, info: MediaInfo, breaker: asyncio.Event) -> str:
        seconds = info.seconds
        hung = asyncio.ensure_future(ch.hangup_event.wait())
        broke = asyncio.ensure_future(breaker.wait())
        try:
            done, _ = await asyncio.wait({hung, broke}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hung.cancel()
            broke.cancel()
            await asyncio.gather(hung, broke, return_exceptions=True)
        if broke in done and hung not in done:
            await asyncio.sleep(BREAK_DELAY)
            return "break"
        return "hangup" if hung in done else "done"


def _playback_vars(
    ch: EmulatedChannel, info: MediaInfo, elapsed: float, status: str
) -> list[tuple[str, HeaderValue]]:
    """variable_playback_* as FreeSWITCH leaves them (read-ahead sample counts after a break)."""
    chan_rate = ch.read_codec.rate if ch.read_codec else 8000
    total = info.samples
    if status == "done" and total is not None:
        file_samples = total
        position = round(total * chan_rate / info.rate)
    else:
        heard = int(elapsed * info.rate)
        position = int(elapsed * chan_rate)
        if total is None:
            file_samples = math.ceil(elapsed) * info.rate
        elif info.rate != chan_rate:
            # The file is read ahead in 16384-sample blocks when resampled (capture: 32768 after 1.02 s).
            file_samples = min(total, (heard // 16384 + 2) * 16384)
        else:
            file_samples = min(total, heard)
    millis = file_samples * 1000 // info.rate
    return [
        ("playback_last_offset_pos", str(position)),
        ("playback_seconds", str(millis // 1000)),
        ("playback_ms", str(millis)),
        ("playback_samples", str(file_samples)),
    ]
