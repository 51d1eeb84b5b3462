"""The emulator side of ``bench.call_setup``: its fast event JSON (checked byte for byte against the
emulator's own) and the tap that stamps CHANNEL_PARK and ``uuid_audio_stream … start`` per call."""

from __future__ import annotations

import collections
import json.encoder
import time
from typing import Any

from tests.fsemu import EmulatedChannel, FreeSwitchEmulator, wire
from tests.fsemu.audio_stream import StreamSession
from tests.fsemu.wire import Event

REFERENCE_JSON = wire.serialize_json
START_LIMIT_S = 5.0  # a call with no stream start this long after its park failed
_STRING = json.encoder.encode_basestring  # the C one; json.dumps(s, ensure_ascii=False) returns its result


async def _no_audio(session: StreamSession) -> None:
    """Stands in for ``AudioStreams._pump_audio``: the stream stays connected and sends no frames."""


def fast_serialize_json(event: Event) -> bytes:
    """``wire.serialize_json``'s bytes, with the C string encoder instead of one ``json.dumps`` per string.

    The reference spends ~0.5 ms of this process per verbose event (~330 headers), ~10x this; FreeSWITCH
    does it in C. ``json.dumps(s, ensure_ascii=False)`` is ``encode_basestring(s)``, and
    :func:`check_json` compares the bytes with the reference's on every event of the warm-up.
    """
    items = [
        f"{_STRING(name)}:{_STRING(v) if isinstance(v, str) else _array(v)}" for name, v in event.headers
    ]
    if event.body is not None:
        items += [f'"Content-Length":"{len(event.body.encode())}"', f'"_body":{_STRING(event.body)}']
    return ("{" + ",".join(items) + "}").encode()


def _array(values: list[str]) -> str:
    return "[" + ",".join(map(_STRING, values)) + "]"


def check_json(events: list[Event]) -> None:
    """Raise unless the fast serialiser writes exactly the reference's bytes for every event."""
    for event in events:
        if fast_serialize_json(event) != REFERENCE_JSON(event):
            raise RuntimeError(f"fast JSON differs from the emulator's for {event.name}")


class EmulatorTap:
    """Per channel UUID, when the emulator fired CHANNEL_PARK and received ``uuid_audio_stream … start``;
    counts of api commands and fired events; the first ``keep`` events (for :func:`check_json`).

    Counted, not recorded: keeping every event (~330 headers each) made GC pauses of 100 ms and more.
    """

    def __init__(self, fs: FreeSwitchEmulator, *, audio: bool, keep: int = 0) -> None:
        self.parked: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.api: collections.Counter[str] = collections.Counter()
        self.events = 0
        self.kept: list[Event] = []
        self._keep = keep
        self._stamp(fs)
        self._count(fs)
        if not audio:
            fs.streams._pump_audio = _no_audio  # type: ignore[method-assign]

    def _stamp(self, fs: FreeSwitchEmulator) -> None:
        park, stream = fs.apps.park, fs.api.handlers["uuid_audio_stream"]

        def timed_park(ch: EmulatedChannel, *args: Any, **kwargs: Any) -> None:
            park(ch, *args, **kwargs)  # CHANNEL_PARK is the last thing it fires
            self.parked.setdefault(ch.uuid, time.perf_counter())

        async def timed_stream(arg: str) -> str:
            uuid, _, rest = arg.partition(" ")
            if rest.startswith("start "):
                self.started.setdefault(uuid, time.perf_counter())
            return await stream(arg)

        fs.apps.park = timed_park  # type: ignore[method-assign]
        fs.api.handlers["uuid_audio_stream"] = timed_stream

    def _count(self, fs: FreeSwitchEmulator) -> None:
        execute, publish = fs.api.execute, fs.core.publish

        async def counted_execute(command: str, arg: str | None) -> str:
            words = (arg or "").split(" ", 2)
            action = f" {words[1]}" if command == "uuid_audio_stream" and len(words) > 1 else ""
            self.api[command + action] += 1
            return await execute(command, arg)

        def counted_publish(event: Event) -> None:
            self.events += 1
            if len(self.kept) < self._keep:
                self.kept.append(event)
            publish(event)

        fs.api.execute = counted_execute  # type: ignore[method-assign]
        fs.core.publish = counted_publish  # type: ignore[method-assign]

    def reset_counts(self) -> None:
        """Zero the counters and drop the kept events (the window starts)."""
        self.api.clear()
        self.events, self.kept, self._keep = 0, [], 0

    def latency_s(self, uuid: str) -> float | None:
        """Park → stream start of ``uuid``; None when it has none within the limit."""
        parked, started = self.parked.get(uuid), self.started.get(uuid)
        if parked is None or started is None or started - parked > START_LIMIT_S:
            return None
        return started - parked


# ---- offered load --------------------------------------------------------------------------------------
