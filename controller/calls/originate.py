"""Outbound calls: ``bgapi originate {vars}<target> &park()``.

The new leg gets a uuid we choose (``origination_uuid``), so the call id is known before FreeSWITCH answers;
the bgapi's Job-UUID is that uuid too, so the result names the call wherever it arrives
(``controller.calls.originations`` settles an originate whose result was lost with the ESL connection).
``originate`` returns (as BACKGROUND_JOB) ``+OK <uuid>`` once the far end answered, or ``-ERR <CAUSE>``
(mod_commands.c). The answered leg parks; with ``agent`` set, the router streams it to that agent (the
``switchyard_agent`` channel variable), otherwise it waits parked for call-control commands.

Targets::

    user        user/<ext>[@<calls.sip_domain>]     a registered SIP user of the directory
    extension   loopback/<ext>/<context>            an extension of the dialplan
    gateway     sofia/gateway/<gateway>/<number>    a SIP trunk
"""

from __future__ import annotations

import logging
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Literal

from controller.calls.originations import OriginateStatus, Origination, Originations, job_outcome
from controller.calls.sender import CommandRefused, CommandSender, NodeUnavailable, NotConfirmed
from controller.freeswitch import commands as fc

__all__ = ["AGENT_VARIABLE", "Originate", "originate", "originate_command"]

log = logging.getLogger(__name__)

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
    sender: CommandSender,
    originations: Originations,
    request: Originate,
    sip_domain: str | None,
    margin_s: float = 5.0,
) -> Origination:
    """Place the call; return its record once answered, or still pending at the deadline (ring timeout
    plus ``margin_s``) when FreeSWITCH's answer was lost or is late: ``originations`` settles it later.

    Nothing fails blind once the command may have reached FreeSWITCH: a dropped connection or a missed
    deadline only means the answer must come another way (``controller.calls.originations``).

    Raises:
        CommandRefused: FreeSWITCH's ``-ERR <CAUSE>`` (busy, no answer, not registered...), however learnt.
        NodeUnavailable: the node is unknown or not connected; nothing was sent.
        InvalidCommand: see ``originate_command``.
    """
    node = request.node
    if not sender.connected().get(node, False):
        raise NodeUnavailable(f"node {node} is not connected", "node")
    uuid = str(uuidlib.uuid4())
    command = originate_command(request, uuid, sip_domain)
    record = originations.track(uuid, node)
    deadline = request.timeout_s + margin_s
    started = time.monotonic()
    # No await between the connected check and the write (sender -> node -> connection): once the check
    # passed, the command is on its way, so every later failure leaves its outcome open, not failed.
    try:
        result = await sender.run(node, command, deadline, check=False, job_uuid=uuid)
    except CommandRefused as exc:  # the bgapi itself was refused: nothing placed
        originations.finish(record, OriginateStatus.FAILED, exc.reason)
        raise
    except (NotConfirmed, NodeUnavailable) as exc:
        log.warning("originate %s: %s; settling it from FreeSWITCH's events", uuid, exc.reason)
        originations.settle(record)
        await originations.wait(record, deadline - (time.monotonic() - started))
    except BaseException:
        originations.settle(record)
        raise
    else:
        originations.finish(record, *job_outcome(result))
    if record.status is OriginateStatus.FAILED:
        raise CommandRefused(f"originate failed: {record.cause}", "destination")
    return record
