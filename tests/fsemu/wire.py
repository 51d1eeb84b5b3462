"""ESL wire format, server side: event serialisation and a sans-IO command reader.

This is an independent implementation of what FreeSWITCH's mod_event_socket puts on the wire
(``switch_event_serialize``, ``switch_event_serialize_json``, ``read_packet``). It shares no code with the
controller's client codec on purpose: the emulator is the second opinion the codec is tested against.

Exceptions: ``CommandTooLong`` (a command header block beyond FreeSWITCH's buffer) is the only error;
everything else is tolerated the way FreeSWITCH tolerates it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

# switch_utils.h SWITCH_URL_UNSAFE; bytes below ' ' or above '~' are always encoded (switch_url_encode_opt).
_URL_UNSAFE = frozenset(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
_HEX = "0123456789ABCDEF"
_ENCODE_TABLE = tuple(
    f"%{_HEX[b >> 4]}{_HEX[b & 15]}" if (b < 0x20 or b > 0x7E or b in _URL_UNSAFE) else chr(b)
    for b in range(256)
)

# mod_event_socket.c read_packet: the header block of one command is read into a 2048-byte buffer.
MAX_COMMAND_HEADER = 2048


class CommandTooLong(Exception):
    """A command header block exceeded FreeSWITCH's read buffer."""


def url_encode(value: str) -> str:
    """Encode a header value like ``switch_url_encode`` does (double-encodes ``%``, UTF-8 byte-wise).

    Args:
        value: The raw header value.

    Returns:
        The value as FreeSWITCH writes it into a ``text/event-plain`` event.
    """
    if value.isascii() and value.isalnum():
        return value
    return "".join(_ENCODE_TABLE[b] for b in value.encode())


HeaderValue = str | list[str]


@dataclass(slots=True)
class Event:
    """One FreeSWITCH event: ordered headers (duplicates allowed, like switch_event_t) and a body.

    Attributes:
        headers: Ordered (name, value) pairs; a list value is an array header (``ARRAY::a|:b`` in plain).
        body: The event body or None.
    """

    headers: list[tuple[str, HeaderValue]]
    body: str | None = None
    _plain: bytes | None = field(default=None, repr=False)
    _json: bytes | None = field(default=None, repr=False)

    def get(self, name: str) -> str | None:
        """Return the first header called ``name`` (case-insensitive), arrays joined FreeSWITCH-style."""
        low = name.lower()
        for key, value in self.headers:
            if key.lower() == low:
                return value if isinstance(value, str) else _array_string(value)
        return None

    @property
    def name(self) -> str:
        """The Event-Name header."""
        return self.get("Event-Name") or ""

    @property
    def subclass(self) -> str | None:
        """The Event-Subclass header, for CUSTOM events."""
        return self.get("Event-Subclass")

    def plain_frame(self) -> bytes:
        """The complete ``text/event-plain`` message (envelope + serialised event), cached."""
        if self._plain is None:
            self._plain = frame_event(serialize_plain(self), "plain")
        return self._plain

    def json_frame(self) -> bytes:
        """The complete ``text/event-json`` message (envelope + serialised event), cached."""
        if self._json is None:
            self._json = frame_event(serialize_json(self), "json")
        return self._json


def _array_string(values: Sequence[str]) -> str:
    return "ARRAY::" + "|:".join(values)


def serialize_plain(event: Event) -> bytes:
    """Serialise like ``switch_event_serialize(event, &buf, SWITCH_TRUE)``.

    Every header is ``Name: url-encoded-value\\n``; then either a blank line, or, with a body,
    ``Content-Length: n\\n\\n<body>``.
    """
    parts = []
    for name, value in event.headers:
        text = value if isinstance(value, str) else _array_string(value)
        parts.append(f"{name}: {url_encode(text)}\n")
    if event.body:
        body = event.body.encode()
        return "".join(parts).encode() + b"Content-Length: %d\n\n" % len(body) + body
    parts.append("\n")
    return "".join(parts).encode()


def _json_string(value: str) -> str:
    # cJSON prints UTF-8 raw and escapes '"', '\\' and control characters (\b \f \n \r \t, else \u00XX),
    # which is exactly json.dumps(ensure_ascii=False).
    return json.dumps(value, ensure_ascii=False)


def serialize_json(event: Event) -> bytes:
    """Serialise like ``switch_event_serialize_json``: compact object, header order kept, duplicates kept."""
    items = []
    for name, value in event.headers:
        if isinstance(value, str):
            rendered = _json_string(value)
        else:
            rendered = "[" + ",".join(_json_string(v) for v in value) + "]"
        items.append(f"{_json_string(name)}:{rendered}")
    if event.body is not None:
        items.append(f'"Content-Length":"{len(event.body.encode())}"')
        items.append(f'"_body":{_json_string(event.body)}')
    return ("{" + ",".join(items) + "}").encode()


def frame_event(serialized: bytes, kind: str) -> bytes:
    """Wrap a serialised event in the listener envelope (mod_event_socket read_packet)."""
    return (
        b"Content-Length: %d\nContent-Type: text/event-%s\n\n" % (len(serialized), kind.encode()) + serialized
    )


def command_reply(text: str) -> bytes:
    """A ``command/reply`` with one ``Reply-Text`` header."""
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def api_response(body: str) -> bytes:
    """An ``api/response`` framed by Content-Length (bytes)."""
    raw = body.encode()
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(raw) + raw


def disconnect_notice(message: str) -> bytes:
    """A ``text/disconnect-notice`` as send_disconnect() writes it for an inbound listener."""
    raw = message.encode()
    return b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n" % len(raw) + raw


@dataclass(frozen=True, slots=True)
class Command:
    """One command read from the client: its first line plus header lines and an optional body."""

    line: str
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None

    def header(self, name: str) -> str | None:
        """Return the first header called ``name`` (case-insensitive)."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


class CommandReader:
    """Sans-IO reader of client commands, following mod_event_socket ``read_packet``.

    Leading CR/LF are skipped; a command ends at two consecutive LF (CRs ignored); header lines are
    ``name: value``; a ``Content-Length`` header makes the reader take that many body bytes.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: tuple[str, tuple[tuple[str, str], ...], int] | None = None

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data

    def commands(self) -> Iterator[Command]:
        """Yield every complete command buffered so far."""
        while True:
            cmd = self._next()
            if cmd is None:
                return
            yield cmd

    def _next(self) -> Command | None:
        if self._pending is None:
            while self._buf[:1] in (bytearray(b"\r"), bytearray(b"\n")):
                del self._buf[:1]
            end = _find_end(self._buf)
            if end < 0:
                if len(self._buf) > MAX_COMMAND_HEADER:
                    raise CommandTooLong(f"{len(self._buf)} bytes without a blank line")
                return None
            block = bytes(self._buf[:end]).decode(errors="replace")
            del self._buf[: end + 1]
            self._pending = _parse_block(block)
        line, headers, clen = self._pending
        if len(self._buf) < clen:
            return None
        body = bytes(self._buf[:clen]).decode(errors="replace") if clen > 0 else None
        del self._buf[:clen]
        self._pending = None
        return Command(line, headers, body)


def _find_end(buf: bytearray) -> int:
    """Index of the second LF of the first LF[CR*]LF sequence, or -1."""
    count = 0
    for i, byte in enumerate(buf):
        if byte == 0x0A:
            count += 1
            if count == 2:
                return i
        elif byte != 0x0D:
            count = 0
    return -1


def _parse_block(block: str) -> tuple[str, tuple[tuple[str, str], ...], int]:
    lines = [ln.rstrip("\r") for ln in block.split("\n") if ln.strip("\r")]
    first = lines[0] if lines else ""
    headers: list[tuple[str, str]] = []
    clen = 0
    for ln in lines[1:]:
        name, sep, value = ln.partition(":")
        if not sep:
            continue
        value = value.lstrip(" ")
        headers.append((name, value))
        if name.lower() == "content-length":
            clen = int(value) if value.strip().isdigit() else 0
    return first, tuple(headers), clen
