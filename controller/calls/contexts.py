"""Dialing classes: the FreeSWITCH dialplan contexts ``switchyard render`` writes, one per kind of caller.

A call runs the context of whoever places it, so what a caller can reach is what that context holds
(mod_dialplan_xml.c: a transfer or a user's ``user_context`` names the context; nothing else is searched).
The PSTN (trunk outbound) rules are rendered only into the contexts whose callers may pay for a call::

    <calls.context>            desk users with outbound off; API originates and transfers naming none
                               line tests, routes (park)
    <calls.context>-pstn       desk users with ``outbound: true``: line tests, PSTN rules, routes
    <calls.context>-browser    browser users (Janus): line tests, routes; PSTN rules only with
                               ``calls.browser_outbound``
    <calls.context>-agent      an agent's transfers: routes only (never a trunk)
    <calls.context>-inbound    the trunks' DIDs (from context public): line tests, routes

Every context ends with the ``unrouted`` hangup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_BASE_LENGTH", "DialingContexts"]

MAX_BASE_LENGTH: Final = 56
"""``calls.context`` is at most this long, so its longest class name (``-inbound``) is a context name."""


@dataclass(frozen=True, slots=True)
class DialingContexts:
    """The names of the rendered contexts, from ``calls.context``."""

    local: str

    @property
    def pstn(self) -> str:
        """Desk users allowed to dial out through the trunks."""
        return f"{self.local}-pstn"

    @property
    def browser(self) -> str:
        """Browser users (the controller's directory answers give it as ``user_context``)."""
        return f"{self.local}-browser"

    @property
    def agent(self) -> str:
        """Where an agent's transfer sends the call."""
        return f"{self.local}-agent"

    @property
    def inbound(self) -> str:
        """Where the trunks' DIDs go on."""
        return f"{self.local}-inbound"
