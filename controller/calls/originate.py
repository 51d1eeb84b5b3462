"""Outbound calls: ``bgapi originate {vars}<target> &park()``.

The new leg gets a uuid we choose (``origination_uuid``), so the call id is known before FreeSWITCH answers.
``originate`` returns (as BACKGROUND_JOB) ``+OK <uuid>`` once the far end answered, or ``-ERR <CAUSE>``
(mod_commands.c). The answered leg parks; with ``agent`` set, the router streams it to that agent (the
``switchyard_agent`` channel variable), otherwise it waits parked for call-control commands.

Targets::

    user        user/<ext>[@<calls.sip_domain>]     a registered SIP user of the directory
    extension   loopback/<ext>/<context>            an extension of the dialplan
    gateway     sofia/gateway/<gateway>/<number>    a SIP trunk
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Literal

from controller.calls.sender import CommandRefused, CommandSender
from controller.freeswitch import commands as fc

__all__ = ["AGENT_VARIABLE", "Originate", "originate", "originate_command"]

AGENT_VARIABLE = "switchyard_agent"
"""Channel variable naming the agent an originated leg is streamed to once it parks."""

TargetKind = Literal["user", "extension", "gateway"]


@dataclass(frozen=True)
class Originate:
    """A validated outbound call (the API model checks every character that reaches the command)."""

    node: str
    target: TargetKind
    destination: str
    context: str  # of an extension: the request's, else calls.context
    gateway: str = ""
    agent: str = ""
    caller_id_number: str = ""
    caller_id_name: str = ""
    timeout_s: int = 30
    variables: dict[str, str] = field(default_factory=dict)


def originate_command(request: Originate, uuid: str, sip_domain: str | None) -> fc.Command:
    """The ``originate`` command of ``request`` (sent as bgapi) for the new leg ``uuid``.

    Raises:
        InvalidCommand: a field holds what FreeSWITCH would misparse, or ``variables`` sets one of the
            variables the builder sets itself (``origination_uuid``...).
    """
    return fc.originate(
        request.target,
        request.destination,
        uuid=uuid,
        timeout_s=request.timeout_s,
        variables=request.variables,
        caller_id_number=request.caller_id_number,
        caller_id_name=request.caller_id_name,
        tags={AGENT_VARIABLE: request.agent} if request.agent else {},
        context=request.context,
        gateway=request.gateway,
        domain=sip_domain,
    )


async def originate(
    sender: CommandSender, request: Originate, sip_domain: str | None, margin_s: float = 5.0
) -> str:
    """Place the call; return its uuid (= call id) once answered.

    Raises:
        CommandRefused: FreeSWITCH's ``-ERR <CAUSE>`` (busy, no answer, not registered...).
        NotConfirmed: no BACKGROUND_JOB within the ring timeout plus ``margin_s``.
        NodeUnavailable: the node is unknown or not connected.
        InvalidCommand: see ``originate_command``.
    """
    uuid = str(uuidlib.uuid4())
    command = originate_command(request, uuid, sip_domain)
    result = await sender.run(request.node, command, request.timeout_s + margin_s, check=False)
    result = result.strip()
    if not result.startswith("+OK"):
        cause = result.removeprefix("-ERR").strip() or result
        raise CommandRefused(f"originate failed: {cause}", "destination")
    return uuid
