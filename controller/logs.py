"""The controller's logging: one format on stderr, and janus-client kept quiet and short.

janus-client calls ``logging.basicConfig`` when imported, logs every Janus message at INFO (Janus tokens and
SIP secrets included) and logs a full traceback at ERROR when Janus drops the WebSocket under its reader.
The Janus adapter notices the drop itself and logs it once ("session lost"), so the library's errors are
kept, condensed to their last line at WARNING.
"""

from __future__ import annotations

import logging

__all__ = ["setup_logging"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CondensedLibraryErrors(logging.Filter):
    """Rewrites ERROR records of the ``library`` loggers as one-line WARNINGs (the message's last line)."""

    def __init__(self, library: str) -> None:
        super().__init__()
        self.prefix = library + "."

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and (record.name + ".").startswith(self.prefix):
            lines = [line for line in record.getMessage().splitlines() if line.strip()]
            record.msg, record.args = (lines[-1].strip() if lines else "error"), ()
            record.exc_info = record.exc_text = record.stack_info = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def setup_logging(level: str) -> None:
    """Configure the root logger (replacing janus-client's import-time setup) and janus-client's level."""
    logging.basicConfig(level=level, format=_FORMAT, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(CondensedLibraryErrors("janus_client"))
    logging.getLogger("janus_client").setLevel(logging.WARNING)
