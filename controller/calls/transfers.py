"""Where a voice agent may send its call: the controller's check of an agent's ``transfer`` action.

The model behind an agent takes instructions from the caller ("transfer me to 1 900 ..."), so its transfer
target is untrusted input. Two fences, both needed:

* the transfer runs in the agent dialing class (``<calls.context>-agent``, controller.calls.contexts), a
  context that holds the routes and nothing else: no trunk rule is reachable from it whatever the number;
* before that, the destination must be one the agent's settings allow (``agents[].transfers``): a pattern
  matching it whole, or ``route:<name>`` naming a route (``calls.routes[].name``) whose destination
  pattern matches it; an agent that lists none may reach a directory user or the destination of a route
  that is not a reject. The worker checks the patterns first (media_worker.voice.speak); it passes on
  what only a named route could allow, since it does not know the routes.

A named route must exist and must not be a reject (:func:`route_entry_errors`, run by the settings, where
both sections are: at start and at each reload, which keeps the old table when it fails). A refused transfer
is not sent; the caller stays with the agent. The refusal is logged and kept in the CDR
(``extra.transfer_refused``, and ``extra.transfer_refused_by``: ``controller``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from pydantic_core import InitErrorDetails, PydanticCustomError

from controller.calls.routes import Route, RouteTable
from media_worker.voice.settings import AgentSettings, route_entry

__all__ = ["AgentTransfers", "route_entry_errors"]


@dataclass(frozen=True, slots=True)
class _Rule:
    patterns: tuple[re.Pattern[str], ...]
    routes: frozenset[str]  # route names


def _rule(entries: Collection[str]) -> _Rule:
    names = {name for entry in entries if (name := route_entry(entry)) is not None}
    patterns = tuple(re.compile(entry) for entry in entries if route_entry(entry) is None)
    return _Rule(patterns, frozenset(names))


def _allows(route: Route, destination: str) -> bool:
    return not route.action.startswith("reject") and re.fullmatch(route.destination, destination) is not None


class AgentTransfers:
    """The transfer rule of every agent.

    Args:
        context: the agent dialing class, where allowed transfers go.
        patterns: agent name → its ``transfers`` entries (agents without any take the default).
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
        self._rules = {name: _rule(found) for name, found in patterns.items() if found}
        self._table = table
        self._users = frozenset(users)

    def refusal(self, agent: str, destination: str) -> str | None:
        """Why ``agent`` may not transfer to ``destination`` (None: it may).

        An unknown agent (a stream started through the API with a URL) gets the default rule.
        """
        rule = self._rules.get(agent)
        routes = self._table().routes
        if rule is not None:
            if any(p.fullmatch(destination) for p in rule.patterns):
                return None
            if any(r.name in rule.routes and _allows(r, destination) for r in routes):
                return None
            return f"{destination!r} matches none of agent {agent!r}'s transfers"
        if destination in self._users or any(_allows(r, destination) for r in routes):
            return None
        return f"{destination!r} is neither a directory user nor a route's destination"


def route_entry_errors(agents: Sequence[AgentSettings], routes: Sequence[Route]) -> list[InitErrorDetails]:
    """The ``route:<name>`` entries of ``agents[].transfers`` that name no route, or a reject route (each
    error at ``agents.<i>.transfers.<j>``)."""
    by_name = {route.name: route for route in routes if route.name}
    errors: list[InitErrorDetails] = []
    for i, agent in enumerate(agents):
        for j, entry in enumerate(agent.transfers):
            name = route_entry(entry)
            route = by_name.get(name) if name is not None else None
            if name is None or (route is not None and not route.action.startswith("reject")):
                continue
            known = ", ".join(sorted(by_name)) or "none"
            why = (
                "names no route of calls.routes (named ones: {known})"
                if route is None
                else "names a reject route: an agent cannot transfer there"
            )
            error = PydanticCustomError("unknown_route", f"{{entry}} {why}", {"entry": entry, "known": known})
            errors.append(InitErrorDetails(type=error, loc=("agents", i, "transfers", j), input=entry))
    return errors
