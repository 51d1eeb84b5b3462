"""Keyset page cursors: the sort key of a page's last record, opaque to clients.

Records are listed newest first by ``(created_at, call_id)``; ``call_id`` breaks ties between calls created
in the same microsecond. A cursor is that key of the last record on a page, ``created_at`` as integer
microseconds since the Unix epoch, as urlsafe base64 (no padding) of ``{"t": <µs>, "id": <call_id>}``. The
next page holds the records strictly after it in that order, so rows are neither skipped nor repeated when
new calls arrive between pages. Every backend shares this format, so a cursor survives a change of backend.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from controller.store.base import InvalidCursor
from controller.store.records import CdrRecord

__all__ = ["PageKey", "epoch_us"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_MAX_CURSOR_CHARS: Final = 2048
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_INT64_MIN: Final = -(2**63)  # an SQL INTEGER (SQLite, PostgreSQL bigint) holds 64 bits
_INT64_MAX: Final = 2**63 - 1


def epoch_us(moment: datetime) -> int:
    """Integer microseconds since the Unix epoch of an aware ``datetime`` (exact, no float rounding)."""
    return (moment - _EPOCH) // _MICROSECOND


def from_epoch_us(us: int) -> datetime | None:
    """The UTC ``datetime`` of FreeSWITCH's microsecond timestamps; None for 0 (unknown / not yet)."""
    return _EPOCH + us * _MICROSECOND if us else None


@dataclass(frozen=True, slots=True)
class PageKey:
    """Where a page ends: the sort key of its last record."""

    created_us: int
    call_id: str

    @classmethod
    def of(cls, record: CdrRecord) -> PageKey:
        """The sort key of ``record``."""
        return cls(epoch_us(record.created_at), record.call_id)

    def encode(self) -> str:
        """The opaque cursor string for this key."""
        body = json.dumps({"t": self.created_us, "id": self.call_id}, separators=(",", ":"))
        return base64.urlsafe_b64encode(body.encode()).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> PageKey:
        """Parse a cursor made by ``encode``.

        Raises:
            InvalidCursor: the cursor is too long, not urlsafe base64, not JSON, or lacks an integer ``t``
                and a string ``id``.
        """
        if len(cursor) > _MAX_CURSOR_CHARS:
            raise InvalidCursor(f"invalid cursor: longer than {_MAX_CURSOR_CHARS} characters")
        if not cursor or _BASE64URL.fullmatch(cursor) is None:
            raise InvalidCursor("invalid cursor: not urlsafe base64")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except binascii.Error as exc:
            raise InvalidCursor(f"invalid cursor: bad base64 ({exc})") from exc
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidCursor("invalid cursor: not a JSON document") from exc
        if not isinstance(body, dict):
            raise InvalidCursor("invalid cursor: not a JSON object")
        created_us, call_id = body.get("t"), body.get("id")
        if not isinstance(created_us, int) or isinstance(created_us, bool):
            raise InvalidCursor("invalid cursor: 't' (creation time in µs) missing or not an integer")
        if not _INT64_MIN <= created_us <= _INT64_MAX:
            raise InvalidCursor("invalid cursor: 't' (creation time in µs) out of range")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidCursor("invalid cursor: 'id' (call id) missing or not a non-empty string")
        return cls(created_us, call_id)
