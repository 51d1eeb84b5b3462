"""The top-level sections of ``switchyard.yaml``, which process reads which, and the keys that were renamed.

Every process reads the one file but validates only its own sections (a media worker does not hold the ESL
password); a key that is no section at all is refused by each of them, so a typo is caught by whichever
process starts first. The controller's ``Settings`` has exactly these fields (a unit test holds them equal).
"""

from __future__ import annotations

from typing import Final

__all__ = ["CONTROLLER_SECTIONS", "RENAMED", "SECTIONS", "WORKER_SECTIONS"]

SECTIONS: Final = frozenset(
    {
        "freeswitch",
        "media_worker",
        "worker_pool",
        "api",
        "calls",
        "cdr",
        "agents",
        "sip",
        "event_socket",
        "users",
        "line_tests",
        "trunks",
        "janus",
    }
)
WORKER_SECTIONS: Final = frozenset({"media_worker", "agents"})
"""What a media worker reads; it is not given the other sections' secrets (the ESL password...)."""
CONTROLLER_SECTIONS: Final = SECTIONS - {"trunks"}
"""What the controller reads: all but the trunks' credentials, which only FreeSWITCH needs (it reads the
SIP users: the phone page's sign-in checks a directory user's password, agent transfers reach local users)."""

RENAMED: Final = {
    "worker": ("media_worker", "the media worker process's own settings"),
    "workers": ("worker_pool", "how the controller uses the media workers"),
}
"""Old top-level key → its new name and what it holds: the two were one letter apart and meant different
processes. A file or a ``SWITCHYARD_`` variable that still uses one is refused with the new name."""
