"""Call detail records: the record models, the store interface, the SQLite store and the CSV export.

The records (``controller.store.records``) are frozen pydantic models: one ``CdrRecord`` per call, open while
the call is up and closed when it ends (or, after a controller restart, closed "with what is known" and
flagged ``closed_while_down``). ``CdrStore`` (``controller.store.base``) is the async interface;
``SqliteCdrStore`` (``controller.store.sqlite``) keeps the records in one SQLite file in WAL mode. Pages are
keyset-paged, newest first, with opaque cursors (``controller.store.cursor``). ``cdrs_to_csv``
(``controller.store.csv``) exports them for spreadsheets.

Exception tree::

    StoreError                  the store failed: database or file-system error (chained with
    │                           ``raise ... from``), used before open() or after aclose(), unknown schema
    │                           version, unreadable stored row
    └── InvalidCursor           a malformed ``CdrQuery.cursor``; also a ValueError (the client's fault)

Outside the tree: pydantic's ``ValidationError`` for invalid record fields (naive datetimes among them),
``ValueError`` for a record of the wrong status passed to ``begin`` / ``finish``.
"""

from controller.store.base import CdrStore, InvalidCursor, StoreError
from controller.store.csv import CSV_COLUMNS, cdrs_to_csv
from controller.store.cursor import PageKey, epoch_us, from_epoch_us
from controller.store.records import (
    CallType,
    CdrLeg,
    CdrPage,
    CdrQuery,
    CdrRecord,
    CdrStatus,
    Disposition,
    ExtraValue,
    StreamStats,
    TranscriptTurn,
    UtcDatetime,
)
from controller.store.sqlite import SCHEMA_VERSION, SqliteCdrStore

__all__ = [
    "CSV_COLUMNS",
    "SCHEMA_VERSION",
    "CallType",
    "CdrLeg",
    "CdrPage",
    "CdrQuery",
    "CdrRecord",
    "CdrStatus",
    "CdrStore",
    "Disposition",
    "ExtraValue",
    "InvalidCursor",
    "PageKey",
    "SqliteCdrStore",
    "StoreError",
    "StreamStats",
    "TranscriptTurn",
    "UtcDatetime",
    "cdrs_to_csv",
    "epoch_us",
    "from_epoch_us",
]
