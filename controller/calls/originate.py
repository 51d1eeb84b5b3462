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

from controller.calls.control import CallControl, CommandRefused, NodeUnavailable, NotConfirmed
from controller.freeswitch.connection import JobTimeout
from controller.freeswitch.protocol import EslError

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


def _dial_string(request: Originate, sip_domain: str | None) -> str:
    if request.target == "user":
        return f"user/{request.destination}@{sip_domain}" if sip_domain else f"user/{request.destination}"
    if request.target == "gateway":
        return f"sofia/gateway/{request.gateway}/{request.destination}"
    return f"loopback/{request.destination}/{request.context}"


def originate_command(request: Originate, uuid: str, sip_domain: str | None) -> str:
    """The ``originate`` argument line (without ``bgapi``)."""
    variables = {
        "origination_uuid": uuid,
        "originate_timeout": str(request.timeout_s),
        **request.variables,
    }
    if request.caller_id_number:
        variables["origination_caller_id_number"] = request.caller_id_number
    if request.caller_id_name:
        # {} values end at ',' and the argument at a space: the API allows neither; quote-free underscores.
        variables["origination_caller_id_name"] = request.caller_id_name
    if request.agent:
        variables[AGENT_VARIABLE] = request.agent
    pairs = ",".join(f"{key}={value}" for key, value in variables.items())
    return f"originate {{{pairs}}}{_dial_string(request, sip_domain)} &park()"


async def originate(
    control: CallControl, request: Originate, sip_domain: str | None, margin_s: float = 5.0
) -> str:
    """Place the call; return its uuid (= call id) once answered.

    Raises:
        CommandRefused: FreeSWITCH's ``-ERR <CAUSE>`` (busy, no answer, not registered...).
        NotConfirmed: no BACKGROUND_JOB within the ring timeout plus ``margin_s``.
        NodeUnavailable: the node is not connected.
    """
    node = control.nodes.get(request.node)
    if node is None:
        raise NodeUnavailable(f"unknown node {request.node}", "node")
    uuid = str(uuidlib.uuid4())
    command = originate_command(request, uuid, sip_domain)
    try:
        result = await node.bgapi(command, request.timeout_s + margin_s, check=False)
    except JobTimeout as exc:
        raise NotConfirmed(f"originate: no result within {request.timeout_s + margin_s}s") from exc
    except EslError as exc:
        raise NodeUnavailable(f"node {request.node}: {exc}") from exc
    result = result.strip()
    if not result.startswith("+OK"):
        cause = result.removeprefix("-ERR").strip() or result
        raise CommandRefused(f"originate failed: {cause}", "destination")
    return uuid
