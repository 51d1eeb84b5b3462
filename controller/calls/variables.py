"""Which channel variables an API client may set on an originated leg: an allowlist, never a pattern.

FreeSWITCH acts on many variables by name, and several of them run things: ``execute_on_answer``,
``execute_on_originate`` and the other ``execute_on_*`` run a dialplan application (``system`` runs a shell
command as FreeSWITCH's user; switch_channel.c ``switch_channel_execute_on``), ``api_on_*`` run an API
command (switch_channel.c ``switch_channel_api_on``), ``record_*`` choose where recordings are written,
and ``sip_h_*`` / ``sip_rh_*`` add SIP headers (caller-id spoofing with P-Asserted-Identity; mod_sofia
``sofia_glue_set_extra_headers``). So a request may set only the variables named here
(``SAFE_VARIABLES``) and the exact names an operator adds (``calls.api_variables``); scoped tokens pass
their own set to :func:`refused_variable`. Wildcards are never accepted.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Final

__all__ = ["DANGEROUS_PREFIXES", "SAFE_VARIABLES", "VARIABLE_NAME", "allowed_variables", "refused_variable"]

VARIABLE_NAME: Final = r"^[a-z][a-z0-9_]{0,63}$"
"""Names a request may use at all (the API model's pattern)."""

SAFE_VARIABLES: Final = frozenset(
    {
        "ignore_early_media",  # originate returns on answer, not on early media (switch_ivr_originate.c)
        "hangup_after_bridge",  # what the leg does after a bridge ends (switch_ivr_bridge.c)
        "park_after_bridge",
        "continue_on_fail",
        "call_timeout",
        "leg_timeout",
    }
)
"""Variables that only shape how the leg rings, bridges and ends: open to every token."""

DANGEROUS_PREFIXES: Final = ("execute_on_", "api_on_", "api_hangup_hook", "record_", "sip_h_", "sip_rh_")
"""Families that run applications, API commands, write files or forge SIP headers; never in the safe set."""


def allowed_variables(extra: Iterable[str] = ()) -> frozenset[str]:
    """The safe set plus the operator's exact ``extra`` names (``calls.api_variables``)."""
    return SAFE_VARIABLES | frozenset(extra)


def refused_variable(names: Iterable[str], allowed: Collection[str]) -> str | None:
    """The first of ``names`` that is not in ``allowed`` (exact names), or None when all are."""
    for name in names:
        if name not in allowed or not re.fullmatch(VARIABLE_NAME, name):
            return name
    return None
