"""Reader of the recorded FreeSWITCH captures in ../shared/fixtures/freeswitch.

Block format (see each file's header): ``### <dir> t=<seconds> len=<N>`` then exactly N bytes, then a line
``### END`` (one extra newline may precede it when the block does not end with one). Sessions are separated by
commentary lines ``## ===... SESSION ...``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

_MARKER = re.compile(rb"^### (?P<dir>APP>FS|FS>APP) t=(?P<t>[0-9.]+) len=(?P<len>\d+)\n", re.M)
_SESSION = re.compile(rb"^## =+ (?P<title>.*?) =+$", re.M)


class FixtureFormatError(Exception):
    """A capture file does not follow the block format."""


@dataclass(frozen=True, slots=True)
class Block:
    """One framed message of a capture."""

    direction: str  # "APP>FS" (client sent) or "FS>APP" (FreeSWITCH sent)
    t: float
    data: bytes
    session: int  # 0-based index of the session the block belongs to


def fixtures_dir() -> Path:
    """The captures directory: $SWITCHYARD_FIXTURES, else ``<repo>/../shared/fixtures/freeswitch``."""
    override = os.environ.get("SWITCHYARD_FIXTURES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "freeswitch"


def read_blocks(path: Path) -> list[Block]:
    """Parse a capture file into its blocks (raises FixtureFormatError on a malformed block)."""
    data = path.read_bytes()
    sessions = [m.start() for m in _SESSION.finditer(data)]
    blocks: list[Block] = []
    pos = 0
    while (match := _MARKER.search(data, pos)) is not None:
        start = match.end()
        end = start + int(match.group("len"))
        tail = data[end : end + 8]
        if not tail.startswith((b"### END", b"\n### END")):
            raise FixtureFormatError(f"{path.name}: block at byte {match.start()} not followed by ### END")
        session = sum(1 for s in sessions if s < match.start()) - 1 if sessions else 0
        blocks.append(
            Block(match.group("dir").decode(), float(match.group("t")), data[start:end], max(session, 0))
        )
        pos = end
    return blocks


@dataclass(frozen=True, slots=True)
class Message:
    """An ESL message split into envelope headers and body (framing by Content-Length)."""

    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """First envelope header called ``name``."""
        return next((v for k, v in self.headers if k == name), None)

    @property
    def content_type(self) -> str:
        """The Content-Type header ('' if none)."""
        return self.header("Content-Type") or ""


def split_messages(data: bytes) -> list[Message]:
    """Split a byte stream of FS>APP messages by the envelope's Content-Length."""
    out: list[Message] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n\n", pos)
        if end < 0:
            raise FixtureFormatError("incomplete envelope")
        lines = data[pos:end].decode().split("\n")
        headers = tuple((k, v) for k, _, v in (ln.partition(": ") for ln in lines))
        length = int(next((v for k, v in headers if k == "Content-Length"), "0"))
        body = data[end + 2 : end + 2 + length]
        if len(body) != length:
            raise FixtureFormatError("short body")
        out.append(Message(headers, body))
        pos = end + 2 + length
    return out


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """An event body decoded into ordered (name, value) pairs and its own body."""

    headers: tuple[tuple[str, object], ...]
    body: str | None
    inner_length_ok: bool = True

    def get(self, name: str) -> str | None:
        """First header value as text."""
        for key, value in self.headers:
            if key == name:
                return value if isinstance(value, str) else str(value)
        return None

    @property
    def names(self) -> list[str]:
        """Header names in order."""
        return [k for k, _ in self.headers]


def parse_plain_event(body: bytes) -> ParsedEvent:
    """Decode a text/event-plain body (URL-decoded values; inner Content-Length framing checked)."""
    head, sep, rest = body.partition(b"\n\n")
    pairs = []
    for line in head.decode().split("\n"):
        if line:
            key, _, value = line.partition(": ")
            pairs.append((key, unquote(value)))
    if pairs and pairs[-1][0] == "Content-Length":
        length = int(str(pairs[-1][1]))
        return ParsedEvent(tuple(pairs[:-1]), rest.decode(), len(rest) == length)
    return ParsedEvent(tuple(pairs), None, sep == b"\n\n" and rest == b"")


def parse_json_event(body: bytes) -> ParsedEvent:
    """Decode a text/event-json body keeping key order and duplicates."""
    import json

    pairs: list[tuple[str, object]] = json.loads(body, object_pairs_hook=list)
    text = next((v for k, v in pairs if k == "_body"), None)
    length = next((v for k, v in pairs if k == "Content-Length"), None)
    ok = text is None or (isinstance(text, str) and str(len(text.encode())) == length)
    headers = tuple(
        (k, v) for k, v in pairs if k not in ("_body",) and not (k == "Content-Length" and text is not None)
    )
    return ParsedEvent(headers, text if isinstance(text, str) else None, ok)
