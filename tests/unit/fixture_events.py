"""Read the recorded FreeSWITCH captures (shared/fixtures/freeswitch) into typed events.

A capture is a sequence of blocks ``### <dir> t=<s> len=<N>``, exactly N bytes, then ``### END``; lines
starting with ``#`` outside blocks are commentary (see the header of each capture file). The FS>APP bytes of
one session are concatenated and fed through our real ``EslParser`` in odd-sized chunks, and every event frame
is decoded with ``decode_event``, so the call model tests consume exactly what the adapter would hand over.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from controller.freeswitch.events import Event, decode_event
from controller.freeswitch.protocol import EslParser

__all__ = ["Block", "fixture_path", "fs_events", "read_blocks", "session_bytes"]

_CHUNKS = (1, 7, 13, 2, 61, 5, 256, 3, 1021, 11)
"""Odd chunk sizes, cycled, so frames and multi-byte characters straddle feed() calls."""


def fixture_dir() -> Path:
    """Directory of the captures: ``SWITCHYARD_FIXTURES`` or ``shared/`` beside the repository."""
    override = os.environ.get("SWITCHYARD_FIXTURES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "freeswitch"


def fixture_path(name: str) -> Path:
    """Path of one capture file."""
    return fixture_dir() / name


@dataclass(frozen=True, slots=True)
class Block:
    """One recorded block: direction (``FS>APP`` or ``APP>FS``), session index (0-based) and exact bytes."""

    direction: str
    session: int
    data: bytes


def read_blocks(name: str) -> list[Block]:
    """Parse a capture file into its blocks; ``## ===`` lines start a new session."""
    raw = fixture_path(name).read_bytes()
    blocks: list[Block] = []
    session = -1
    pos = 0
    while pos < len(raw):
        eol = raw.find(b"\n", pos)
        line = raw[pos : eol if eol >= 0 else len(raw)]
        pos = eol + 1 if eol >= 0 else len(raw)
        if line.startswith(b"## ====="):
            session += 1
            continue
        if not line.startswith(b"### ") or line == b"### END":
            continue
        fields = line.decode().split()
        length = int(fields[-1].removeprefix("len="))
        blocks.append(Block(fields[1], max(session, 0), raw[pos : pos + length]))
        pos += length
        end = raw.find(b"### END\n", pos)
        if end < 0 or raw[pos:end].strip(b"\n"):
            raise ValueError(f"{name}: block at byte {pos} does not end with ### END")
        pos = end + len(b"### END\n")
    return blocks


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
