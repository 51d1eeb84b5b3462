"""The one path of commands to FreeSWITCH: a ``Command`` to a node, and the wait for what confirms it.

Everything that acts on FreeSWITCH (call control, the router, agent playback and streams, the registration
tracker, the API's registration listing) sends through ``CommandSender``; the commands themselves come from
``controller.freeswitch.commands``. A confirmation is a change of the call model: its waiter is registered
*before* the command is sent (``ChangeWaiters``), so an event racing ahead of the reply is not missed.
Library errors are mapped here, once, to the call layer's.

Exceptions::

    CallError              base; ``field`` names the request field at fault ('' for none)
    ├── UnknownCall        no such call or leg (HTTP 404)
    ├── CallConflict       the call is in a state that forbids the operation, e.g. already ended (409)
    ├── CommandRefused     FreeSWITCH answered -ERR (409, with its text)
    ├── NotConfirmed       no confirmation (or background job result) before the deadline (504)
    └── NodeUnavailable    the node is unknown or its ESL connection is down (503)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Protocol

from controller.calls.changes import ChannelChange
from controller.calls.waiters import ChangeWaiters, ChannelGone, Predicate
from controller.freeswitch.commands import Command
from controller.freeswitch.connection import CommandError, JobTimeout
from controller.freeswitch.protocol import EslError

__all__ = [
    "CallConflict",
    "CallError",
    "CommandRefused",
    "CommandSender",
    "EslNode",
    "NodeUnavailable",
    "NotConfirmed",
    "UnknownCall",
]


class CallError(Exception):
    """Base of call-control errors; ``field`` names the request field at fault ('' for none)."""

    def __init__(self, reason: str, field: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class UnknownCall(CallError):
    """No such call or leg."""


class CallConflict(CallError):
    """The call's state forbids the operation."""


class CommandRefused(CallError):
    """FreeSWITCH refused the command."""


class NotConfirmed(CallError):
    """FreeSWITCH did not confirm in time."""


class NodeUnavailable(CallError):
    """The node is not connected."""


class EslNode(Protocol):
    """What the sender needs of a FreeSWITCH node (``FreeSwitchNode``)."""

    @property
    def connected(self) -> bool: ...

    async def execute(
        self,
        command: Command,
        timeout: float | None = None,
        *,
        check: bool = True,
        job_uuid: str | None = None,
    ) -> str: ...


class CommandSender:
    """Sends commands to the nodes by name and waits for the changes that confirm them."""

    def __init__(self, nodes: Mapping[str, EslNode], waiters: ChangeWaiters) -> None:
        self._nodes = nodes
        self._waiters = waiters

    def connected(self) -> dict[str, bool]:
        """Every configured node and whether its ESL connection is up."""
        return {name: node.connected for name, node in self._nodes.items()}

    async def run(
        self,
        node: str,
        command: Command,
        timeout: float | None = None,
        *,
        check: bool = True,
        job_uuid: str | None = None,
    ) -> str:
        """Send ``command`` to ``node``; return the reply (a background job's result).

        Args:
            node: the node's name.
            command: what to send.
            timeout: the reply's deadline (a background job's: its result's); None: the node's own.
            check: a ``-ERR`` reply raises ``CommandRefused`` (else it is returned).
            job_uuid: a background command's Job-UUID (default: a new one).

        Raises:
            CommandRefused, NotConfirmed, NodeUnavailable: see the module docstring.
        """
        esl = self._nodes.get(node)
        if esl is None:
            raise NodeUnavailable(f"unknown node {node}", "node")
        try:
            return await esl.execute(command, timeout, check=check, job_uuid=job_uuid)
        except CommandError as exc:
            raise CommandRefused(f"FreeSWITCH refused {command.verb}: {exc.reply.strip()}") from exc
        except JobTimeout as exc:
            raise NotConfirmed(f"{command.verb}: no result within {timeout}s") from exc
        except EslError as exc:
            raise NodeUnavailable(f"node {node}: {exc}") from exc

    def expect(self, legs: str | Iterable[str], predicate: Predicate) -> asyncio.Future[ChannelChange]:
        """A future for the first change of ``legs`` that ``predicate`` accepts; it fails with
        ``ChannelGone`` when such a leg is removed first. Register it before sending; cancel it when done."""
        return self._waiters.expect(legs, predicate)

    async def confirmed(
        self, node: str, command: Command, legs: tuple[str, ...], predicate: Predicate, timeout: float
    ) -> ChannelChange:
        """Send ``command`` and wait for the change of ``legs`` that ``predicate`` accepts, reply and change
        under one deadline of ``timeout`` seconds.

        Raises:
            NotConfirmed: no such change in time.
            CallConflict: the leg was removed first.
            CommandRefused, NodeUnavailable: see ``run``.
        """
        change = self.expect(legs, predicate)
        try:
            async with asyncio.timeout(timeout):
                await self.run(node, command, timeout)
                return await change
        except TimeoutError as exc:
            raise NotConfirmed(f"FreeSWITCH did not confirm within {timeout}s") from exc
        except ChannelGone as exc:
            raise CallConflict(str(exc)) from exc
        finally:
            change.cancel()
