"""CDRs as CSV for spreadsheets and billing tools: one flat row per call, header first.

Quoting is the stdlib ``csv`` module's (RFC 4180 style, CRLF line ends). Times are ISO 8601 in UTC with a
``Z`` suffix, empty when unknown; recording paths are joined with ``;``. A cell starting with ``=``, ``+``,
``-``, ``@`` (or a tab / carriage return) gets a leading ``'`` so a spreadsheet shows it as text instead of
evaluating it as a formula (OWASP "CSV Injection"); note this includes E.164 numbers such as ``+4930…``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from controller.store.records import CdrRecord

__all__ = ["CSV_COLUMNS", "cdrs_to_csv"]

CSV_COLUMNS: Final = (
    "call_id",
    "node",
    "status",
    "caller",
    "callee",
    "call_type",
    "route",
    "agent",
    "created_at",
    "answered_at",
    "ended_at",
    "hangup_cause",
    "disposition",
    "duration_s",
    "billsec_s",
    "worker",
    "recording_paths",
    "closed_while_down",
)

_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def _time(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _row(record: CdrRecord) -> list[str]:
    values = (
        record.call_id,
        record.node,
        record.status,
        record.caller,
        record.callee,
        record.call_type,
        record.route,
        record.agent,
        _time(record.created_at),
        _time(record.answered_at),
        _time(record.ended_at),
        record.hangup_cause,
        record.disposition or "",
        f"{record.duration_s:.3f}",
        f"{record.billsec_s:.3f}",
        record.stream.worker,
        ";".join(record.recording_paths),
        "true" if record.closed_while_down else "false",
    )
    return [_cell(value) for value in values]


def cdrs_to_csv(records: Iterable[CdrRecord]) -> str:
    """Render records as CSV text: the ``CSV_COLUMNS`` header, then one row per record in the given order.

    Args:
        records: the records to export.

    Returns:
        The whole document, CRLF line ends.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_row(record) for record in records)
    return out.getvalue()
