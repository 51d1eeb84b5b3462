"""Event Socket (ESL) framing, sans-IO.

The parser is fed bytes and hands out whole frames; it never touches a socket. A frame is a block of
``Name: value`` header lines ended by an empty line, followed by a body of exactly ``Content-Length``
*bytes* when that header is present (mod_event_socket.c; every capture in shared/fixtures/freeswitch).
Framing works on bytes, so a multi-byte character split across two reads cannot break it; text is decoded
only once a frame is complete.

Exception tree (this layer)::

    EslError                      base of every error the FreeSWITCH adapter raises
    └── ProtocolError             the peer sent bytes that are not ESL (bad header line, bad length, ...)

The client layer (``controller.freeswitch.connection``) extends the tree with connection errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "DEFAULT_LIMITS",
    "EslError",
    "EslParser",
    "Frame",
    "FrameLimits",
    "ProtocolError",
    "encode_command",
]

MAX_HEADER_BYTES: Final = 64 * 1024
"""Longest header block accepted by default. The outbound ``connect`` reply, the biggest seen, is ~8 KiB."""

MAX_BODY_BYTES: Final = 64 * 1024 * 1024
"""Largest body accepted by default; ``show channels`` on a loaded node stays far below this."""

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})


class EslError(Exception):
    """Base of every error raised by the FreeSWITCH adapter."""


class ProtocolError(EslError):
    """The peer sent bytes that are not a well-formed ESL frame."""


@dataclass(frozen=True, slots=True)
class FrameLimits:
    """The bounds on one frame: beyond either, the bytes are a ``ProtocolError``."""

    max_header_bytes: int = MAX_HEADER_BYTES
    max_body_bytes: int = MAX_BODY_BYTES


DEFAULT_LIMITS: Final = FrameLimits()
"""The default bounds (``MAX_HEADER_BYTES``, ``MAX_BODY_BYTES``)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One framed ESL message: envelope headers (as sent, not URL-decoded) and the exact body bytes."""

    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        """The envelope's ``Content-Type`` ('' when absent)."""
        return self.headers.get("Content-Type", "")


def parse_header_block(block: bytes) -> dict[str, str]:
    """Split ``Name: value`` lines (LF separated, no trailing blank line) into a dict.

    A repeated name keeps its first value (FreeSWITCH repeats ``Event-Name`` when it nests a
    PRIVATE_COMMAND inside a COMMAND event; the outer one is the event's name).

    Raises:
        ProtocolError: a line has no ``": "`` separator or is not UTF-8.
    """
    try:
        text = block.decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"header block is not UTF-8: {exc}") from exc
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        name, sep, value = line.partition(": ")
        if not sep:
            if line.endswith(":") and line[:-1] and " " not in line:
                name, value = line[:-1], ""
            else:
                raise ProtocolError(f"malformed header line {line[:80]!r}")
        if name not in headers:
            headers[name] = value
    return headers


def parse_content_length(value: str, limit: int = MAX_BODY_BYTES) -> int:
    """Parse a ``Content-Length`` value strictly (decimal digits only, at most ``limit``).

    Raises:
        ProtocolError: not a plain decimal number, or larger than ``limit``.
    """
    if not value.isdigit() or not value.isascii():
        raise ProtocolError(f"bad Content-Length {value[:40]!r}")
    length = int(value)
    if length > limit:
        raise ProtocolError(f"Content-Length {length} exceeds the limit of {limit} bytes")
    return length


def _check_first_line(buf: bytearray, start: int) -> None:
    """Fail early on a peer that is not ESL (an SSH or HTTP banner) instead of waiting for a blank line."""
    eol = buf.find(b"\n", start)
    if eol >= 0 and b": " not in buf[start:eol] and not buf[start:eol].endswith(b":"):
        raise ProtocolError(f"not an ESL header line: {bytes(buf[start:eol])[:80]!r}")


class EslParser:
    """Incremental ESL frame parser: ``feed()`` bytes, then drain ``next_frame()`` until it returns None.

    A partial frame is bounded by ``limits``: a header block longer than ``max_header_bytes`` (complete or
    not) and a ``Content-Length`` above ``max_body_bytes`` are protocol errors as soon as they are seen, so
    the buffer never holds more than one read beyond ``max_header_bytes + max_body_bytes``.
    After a ``ProtocolError`` the stream cannot be re-synchronised (there is no frame marker to hunt for),
    so the parser stays broken and the connection must be closed.
    """

    __slots__ = ("_broken", "_buf", "_headers", "_max_body", "_max_header", "_need", "_pos")

    def __init__(self, limits: FrameLimits = DEFAULT_LIMITS) -> None:
        self._max_header = limits.max_header_bytes
        self._max_body = limits.max_body_bytes
        self._buf = bytearray()
        self._pos = 0  # start of the unparsed bytes; the consumed prefix is dropped on the next feed
        self._headers: dict[str, str] | None = None  # headers of a frame whose body is still incomplete
        self._need = 0  # body length of that frame
        self._broken: ProtocolError | None = None

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def __iter__(self) -> Iterator[Frame]:
        """Yield every complete frame buffered so far."""
        while (frame := self.next_frame()) is not None:
            yield frame

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or None when more bytes are needed.

        Raises:
            ProtocolError: the buffered bytes are not ESL; the parser stays broken afterwards.
        """
        if self._broken is not None:
            raise self._broken
        try:
            if self._headers is None and not self._read_headers():
                return None
            return self._read_body()
        except ProtocolError as exc:
            self._broken = exc
            raise

    def _read_headers(self) -> bool:
        buf = self._buf
        start = self._pos
        # FreeSWITCH never sends blank lines between frames, but tolerate stray ones.
        while start < len(buf) and buf[start] == 0x0A:
            start += 1
        self._pos = start
        end = buf.find(b"\n\n", start)
        # Unterminated, the buffer may hold a whole block and the first newline of the blank line after it.
        if (end - start if end >= 0 else len(buf) - start - 1) > self._max_header:
            raise ProtocolError(f"header block longer than the limit of {self._max_header} bytes")
        if end < 0:
            _check_first_line(buf, start)
            return False
        self._headers = parse_header_block(bytes(buf[start:end]))
        self._pos = end + 2
        length_text = self._headers.get("Content-Length")
        self._need = 0 if length_text is None else parse_content_length(length_text, self._max_body)
        return True

    def _read_body(self) -> Frame | None:
        start = self._pos
        stop = start + self._need
        if len(self._buf) < stop:
            return None
        headers = self._headers
        assert headers is not None
        self._headers = None
        self._pos = stop
        return Frame(headers, bytes(self._buf[start:stop]) if stop > start else b"")

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a frame."""
        return len(self._buf) - self._pos

    def at_frame_boundary(self) -> bool:
        """True when no partial frame is buffered (a clean place for the peer to close)."""
        return self._headers is None and not self._buf[self._pos :].strip(b"\n")


def encode_command(command: str, headers: Mapping[str, str] = _EMPTY, body: bytes = b"") -> bytes:
    """Encode one client command: the command line, optional header lines, a blank line, optional body.

    Raises:
        ProtocolError: the command or a header contains a newline (it would smuggle a second command).
    """
    lines = [command]
    for name, value in headers.items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ProtocolError(f"newline inside command or header {line[:80]!r}")
    return ("\n".join(lines) + "\n\n").encode() + body
