"""Where a voice agent may send its call: the controller's check of an agent's ``transfer`` action.

The model behind an agent takes instructions from the caller ("transfer me to 1 900 ..."), so its transfer
target is untrusted input. Two fences, both needed:

* the transfer runs in the agent dialing class (``<calls.context>-agent``, controller.calls.contexts), a
  context that holds the routes and nothing else: no trunk rule is reachable from it whatever the number;
* before that, the destination must be one the agent's settings allow (``agents[].transfers``: patterns,
  whole match) or, when it names none, a directory user or the destination of a route that is not a
  reject. The worker checks the same patterns first (media_worker.voice.transfers).

A refused transfer is not sent; the caller stays with the agent. The refusal is logged and kept in the CDR
(``extra.transfer_refused``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping

from controller.calls.routes import RouteTable

__all__ = ["AgentTransfers"]


class AgentTransfers:
    """The transfer rule of every agent.

    Args:
        context: the agent dialing class, where allowed transfers go.
        patterns: agent name → its ``transfers`` patterns (agents without any take the default).
        table: the current route table (it is reloaded whole, so it is asked for each time).
        users: the directory's extensions (none in a controller started on its own sections, which do not
            include ``users``: there users are reached through their ``user`` routes).
    """

    def __init__(
        self,
        context: str,
        patterns: Mapping[str, Collection[str]],
        table: Callable[[], RouteTable],
        users: Collection[str],
    ) -> None:
        self.context = context
        self._patterns = {
            name: tuple(re.compile(p) for p in found) for name, found in patterns.items() if found
        }
        self._table = table
        self._users = frozenset(users)

    def refusal(self, agent: str, destination: str) -> str | None:
        """Why ``agent`` may not transfer to ``destination`` (None: it may).

        An unknown agent (a stream started through the API with a URL) gets the default rule.
        """
        patterns = self._patterns.get(agent)
        if patterns is not None:
            if any(p.fullmatch(destination) for p in patterns):
                return None
            return f"{destination!r} matches none of agent {agent!r}'s transfers patterns"
        if destination in self._users:
            return None
        for route in self._table().routes:
            if re.fullmatch(route.destination, destination) and not route.action.startswith("reject"):
                return None
        return f"{destination!r} is neither a directory user nor a route's destination"
