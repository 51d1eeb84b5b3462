"""Faults a test asks of the emulator's ESL listeners, each one a way a real FreeSWITCH connection stalls.

``hold``  the path to the client stalls after the command ran (a congested network, a descheduled
          process): the command takes effect at once (a bgapi job starts and places its call), but its
          reply and every event queued behind it wait ``seconds``; a client that dropped the connection
          meanwhile never gets them.
``busy``  the listener is busy for ``seconds`` before it reads the command: mod_event_socket.c runs one
          ``api`` command at a time inside listener_run, so a slow one delays every later command. A client
          that drops the connection meanwhile (a reset) loses the unread command: it never runs.

Each fault applies once, to the next command whose line starts with ``prefix``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Faults", "Stall"]


@dataclass(frozen=True)
class Stall:
    """One stall: which command, how long, and whether it runs before (``hold``) or after (``busy``)."""

    prefix: str
    seconds: float
    mode: Literal["hold", "busy"] = "hold"


@dataclass
class Faults:
    """The stalls still to happen, in the order they were asked for."""

    stalls: list[Stall] = field(default_factory=list)

    def stall(self, prefix: str, seconds: float, mode: Literal["hold", "busy"] = "hold") -> None:
        """Stall the next command starting with ``prefix`` (see the module docstring)."""
        self.stalls.append(Stall(prefix, seconds, mode))

    def take(self, line: str) -> Stall | None:
        """The stall for the command ``line``, used up; None when none applies."""
        for stall in self.stalls:
            if line.startswith(stall.prefix):
                self.stalls.remove(stall)
                return stall
        return None
