"""The route table: which action a parked call gets, from its destination (and caller / context).

Routes are settings (``calls.routes``), tried in order; the first whose patterns all match wins. Patterns are
regular expressions matched against the whole value. An action is one line::

    agent <name>        answer and stream the call to a media worker running agent <name>
    user <ext>          bridge to the registered SIP user <ext>
    echo                answer and echo the caller's audio
    conference <room>   answer and join conference <room>
    reject <CAUSE>      hang up with a Q.850 cause name (e.g. CALL_REJECTED, USER_BUSY)

``$1``…``$9`` in the argument are replaced with the destination pattern's groups (``user $1``). A destination
no route matches is rejected with ``UNALLOCATED_NUMBER`` (SIP 404). Exceptions: invalid routes raise
``ValueError`` inside pydantic validation, so settings report them with the field path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.freeswitch.commands import HANGUP_CAUSES  # re-exported: settings validate with it

__all__ = ["HANGUP_CAUSES", "Action", "Route", "RouteDecision", "RouteTable", "parse_action"]

ActionKind = Literal["agent", "user", "echo", "conference", "reject"]

_ARG = re.compile(r"^[A-Za-z0-9_.+#*@-]{1,64}$")
_GROUP = re.compile(r"\$([1-9])")


@dataclass(frozen=True, slots=True)
class Action:
    """A parsed action; ``arg`` may still hold ``$N`` references (resolved per call)."""

    kind: ActionKind
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.arg}".strip()


def parse_action(text: str) -> Action:
    """Parse one action line.

    Raises:
        ValueError: unknown action, missing or extra argument, invalid cause or argument characters.
    """
    words = text.split()
    if not words:
        raise ValueError("empty action")
    kind, args = words[0], words[1:]
    if kind == "echo":
        if args:
            raise ValueError("'echo' takes no argument")
        return Action("echo")
    if kind not in ("agent", "user", "conference", "reject"):
        raise ValueError(f"unknown action {kind!r} (agent, user, echo, conference, reject)")
    if len(args) != 1:
        raise ValueError(f"'{kind}' takes exactly one argument")
    arg = args[0]
    if kind == "reject" and arg not in HANGUP_CAUSES:
        raise ValueError(f"unknown hangup cause {arg!r}")
    if not _ARG.match(_GROUP.sub("1", arg)):
        raise ValueError(f"invalid argument {arg!r}: letters, digits and _ . + # * @ - only")
    return Action(kind, arg)  # type: ignore[arg-type]


class Route(BaseModel):
    """One route of the table (``calls.routes``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="names the route for agents[].transfers (route:<name>: an agent may transfer to the "
        "destinations it matches); unique",
    )
    destination: str = Field(description="regular expression matched against the whole destination number")
    caller: str | None = Field(None, description="regular expression on the caller id number (any if unset)")
    context: str | None = Field(None, description="dialplan context the call must come from (any if unset)")
    action: str = Field(description="agent <name> | user <ext> | echo | conference <room> | reject <CAUSE>")
    fallback: str | None = Field(
        None,
        description="action when an agent route finds no worker (default: reject NORMAL_TEMPORARY_FAILURE)",
    )
    announcement: str | None = Field(None, description="file played before the fallback runs")
    language: str = Field("en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$", description="language told to the agent")

    @field_validator("destination", "caller")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    @field_validator("action", "fallback")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_action(value)
        return value

    @model_validator(mode="after")
    def _groups_exist(self) -> Route:
        groups = re.compile(self.destination).groups
        for text in (self.action, self.fallback or ""):
            for ref in _GROUP.findall(text):
                if int(ref) > groups:
                    raise ValueError(f"{text!r} uses ${ref}; the destination pattern has {groups} group(s)")
        return self


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What to do with one call: the action with its argument resolved, and the route that gave it."""

    action: Action
    route: Route | None  # None: nothing matched (the default reject)
    index: int  # position in the table, -1 for the default
    fallback: Action | None = None  # the route's fallback, ``$N`` resolved


def _resolve(action: Action, groups: tuple[str, ...]) -> Action | None:
    """``$N`` replaced by the destination's groups; None if that gives a forbidden argument."""
    if "$" not in action.arg:
        return action
    arg = _GROUP.sub(lambda m: groups[int(m.group(1)) - 1], action.arg)
    return Action(action.kind, arg) if _ARG.match(arg) else None


@dataclass(frozen=True, slots=True)
class _Compiled:
    route: Route
    destination: re.Pattern[str]
    caller: re.Pattern[str] | None
    action: Action
    fallback: Action | None


class RouteTable:
    """The compiled routes; immutable, swapped whole on reload."""

    def __init__(self, routes: tuple[Route, ...] = (), unknown_cause: str = "UNALLOCATED_NUMBER") -> None:
        self.routes = routes
        self._default = Action("reject", unknown_cause)
        self._compiled = tuple(
            _Compiled(
                r,
                re.compile(r.destination),
                re.compile(r.caller) if r.caller is not None else None,
                parse_action(r.action),
                parse_action(r.fallback) if r.fallback else None,
            )
            for r in routes
        )

    def decide(self, destination: str, caller: str = "", context: str = "") -> RouteDecision:
        """The first matching route's action (``$N`` resolved), or the default reject."""
        for index, c in enumerate(self._compiled):
            match = c.destination.fullmatch(destination)
            if match is None:
                continue
            if c.caller is not None and c.caller.fullmatch(caller) is None:
                continue
            if c.route.context is not None and c.route.context != context:
                continue
            groups = match.groups("")
            action, fallback = _resolve(c.action, groups), c.fallback and _resolve(c.fallback, groups)
            if action is None:
                continue  # the groups made an argument we will not put in a command
            return RouteDecision(action, c.route, index, fallback)
        return RouteDecision(self._default, None, -1)
