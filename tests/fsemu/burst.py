"""Realistic event bursts for flood tests and benchmarks, built from the recorded captures.

The channel events FreeSWITCH sent in a capture are replayed as new calls: every UUID in a copy is
replaced by a fresh one, so a consumer sees many distinct calls (create, answer, park, execute, audio
stream, playback, hangup), not the same call repeated.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from tests.fsemu.fixtures import (
    fixtures_dir,
    parse_json_event,
    parse_plain_event,
    read_blocks,
    split_messages,
)
from tests.fsemu.wire import Event, HeaderValue

__all__ = ["captured_channel_events", "realistic_burst"]

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def captured_channel_events(
    capture: str = "esl_inbound_session.txt", names: Iterable[str] = (), subclasses: Iterable[str] = ()
) -> list[Event]:
    """The events with a ``Unique-ID`` that FreeSWITCH sent in ``capture`` (both formats), in order.

    Args:
        capture: file name in the fixtures directory.
        names: keep only these Event-Names; all when empty.
        subclasses: keep CUSTOM events only of these subclasses (none when empty and ``names`` is given).
    """
    wanted = set(names)
    if subclasses:
        wanted.add("CUSTOM")
    custom = set(subclasses)
    data = b"".join(b.data for b in read_blocks(fixtures_dir() / capture) if b.direction == "FS>APP")
    events: list[Event] = []
    for message in split_messages(data):
        if message.content_type == "text/event-plain":
            parsed = parse_plain_event(message.body)
        elif message.content_type == "text/event-json":
            parsed = parse_json_event(message.body)
        else:
            continue
        headers = [(k, v if isinstance(v, list) else str(v)) for k, v in parsed.headers]
        event = Event(headers, parsed.body)
        if event.name == "CUSTOM" and wanted and event.subclass not in custom:
            continue
        if event.get("Unique-ID") and (not wanted or event.name in wanted):
            events.append(event)
    return events


def _renamed(event: Event, mapping: dict[str, str]) -> Event:
    def sub(text: str) -> str:
        return _UUID.sub(lambda m: mapping.setdefault(m.group(0), str(uuid.uuid4())), text)

    headers: list[tuple[str, HeaderValue]] = [
        (k, v if k == "Core-UUID" else sub(v) if isinstance(v, str) else [sub(x) for x in v])
        for k, v in event.headers
    ]
    return Event(headers, sub(event.body) if event.body is not None else None)


def realistic_burst(count: int, templates: list[Event]) -> list[Event]:
    """``count`` events: copies of ``templates`` (one capture's calls), each copy with fresh UUIDs."""
    out: list[Event] = []
    while len(out) < count:
        mapping: dict[str, str] = {}
        out.extend(_renamed(e, mapping) for e in templates[: count - len(out)])
    return out
