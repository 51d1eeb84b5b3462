"""Read the recorded FreeSWITCH captures (shared/fixtures/freeswitch) into typed events.

A capture is a sequence of blocks ``### <dir> t=<s> len=<N>``, exactly N bytes, then ``### END``; lines
starting with ``#`` outside blocks are commentary (see the header of each capture file). The FS>APP bytes of
one session are concatenated and fed through our real ``EslParser`` in odd-sized chunks, and every event frame
is decoded with ``decode_event``, so the call model tests consume exactly what the adapter would hand over.
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.freeswitch.decode import decode_event
from controller.freeswitch.events import Event
from controller.freeswitch.protocol import EslParser
from tests.fsemu import fixtures as fsemu_fixtures
from tests.fsemu.fixtures import Block

__all__ = ["Block", "fs_events", "read_blocks", "session_bytes"]

_CHUNKS = (1, 7, 13, 2, 61, 5, 256, 3, 1021, 11)
"""Odd chunk sizes, cycled, so frames and multi-byte characters straddle feed() calls."""


def read_blocks(name: str) -> list[Block]:
    """The blocks of one capture file (by name, in the fixtures directory)."""
    return fsemu_fixtures.read_blocks(fsemu_fixtures.fixtures_dir() / name)


def session_bytes(name: str, session: int | None = None) -> bytes:
    """The concatenated FS>APP bytes of one session (all sessions when None)."""
    return b"".join(
        b.data
        for b in read_blocks(name)
        if b.direction == "FS>APP" and (session is None or b.session == session)
    )


def fs_events(name: str, session: int | None = None, chunks: tuple[int, ...] = _CHUNKS) -> Iterator[Event]:
    """Yield the events FreeSWITCH sent in a capture, framed in ``chunks``-sized pieces and decoded."""
    data = session_bytes(name, session)
    parser = EslParser()
    pos = 0
    i = 0
    while pos < len(data):
        size = chunks[i % len(chunks)]
        parser.feed(data[pos : pos + size])
        pos += size
        i += 1
        for frame in parser:
            if frame.content_type.startswith("text/event-"):
                yield decode_event(frame)
    if not parser.at_frame_boundary():
        raise ValueError(f"{name}: capture ends inside a frame")
