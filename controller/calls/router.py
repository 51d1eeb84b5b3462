"""The router: decides what a parked call does, on CHANNEL_PARK, from the route table.

The rendered dialplan only parks calls the controller owns (ARCHITECTURE.md, main call flow step 1). On
``ChannelParked`` of a leg not yet routed to that destination, the router looks the destination up and acts:

    agent <name>        answer, then stream to a worker (``AgentStreams``: least loaded, failover); with no
                        worker left: the route's announcement, then its fallback action (default: reject
                        NORMAL_TEMPORARY_FAILURE)
    user <ext>          ``uuid_transfer <uuid> bridge:user/<ext>[@domain] inline`` (rings the phone)
    echo                ``uuid_transfer <uuid> answer,echo inline``
    conference <room>   ``uuid_transfer <uuid> answer,conference:<room>@default inline``
    reject <CAUSE>      ``uuid_kill <uuid> <CAUSE>``

Inbound legs are routed by destination; outbound legs (originated by the API) only when they carry the
``switchyard_agent`` variable or were transferred, and a leg parked again at the same destination
(``park`` via the API) is not routed twice. A blind transfer to another destination that parks is routed
again. The table is swapped whole on reload, so a call in progress keeps what it was given.

Restarts: before acting, the router writes its decision onto the leg (``uuid_setvar_multi``:
``switchyard_route``, ``switchyard_route_arg``; the stream adds ``switchyard_worker``,
``controller.calls.snapshot``). A restarted controller reads them back in its resync and reports the leg
``ChannelAdopted``: the router then takes it as routed, never routes it again, and hands an agent leg's
stream to ``AgentStreams.adopt`` (same worker). Only when the stream's media bug is gone (the stream failed
while no controller ran) does it start a stream again, for the same agent, without answering again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final, Literal

from controller.calls.changes import CallChange, ChannelAdopted, ChannelParked, ChannelRemoved
from controller.calls.channel import Channel
from controller.calls.control import CallControl
from controller.calls.originate import AGENT_VARIABLE
from controller.calls.routes import Action, RouteDecision, RouteTable
from controller.calls.sender import CallError
from controller.calls.snapshot import ROUTE_ARG_VARIABLE, ROUTE_VARIABLE
from controller.freeswitch import commands as fc
from controller.freeswitch.commands import InvalidCommand
from controller.workers.streams import AgentStreams, NoWorkerAvailable, StreamRequest
from switchyard.tasks import TaskSet
from switchyard.wire import StreamMetadata, encode_metadata

__all__ = ["CallRouter", "DecisionHook", "call_type_of", "stream_request"]

log = logging.getLogger("switchyard.router")

_NO_WORKER_FALLBACK: Final = Action("reject", "NORMAL_TEMPORARY_FAILURE")

DecisionHook = Callable[[Channel, RouteDecision, float], None]
"""Told of every decision: the leg, the decision, and the seconds from park to the action taken."""


def call_type_of(ch: Channel) -> Literal["sip", "webrtc"]:
    """``webrtc`` for legs from the Janus SIP plugin (its User-Agent: Janus's default ``Janus WebRTC
    Server SIP Plugin`` or the rendered ``Switchyard-Janus-SIP``), else ``sip``."""
    agent = ch.variables.get("sip_user_agent", "")
    return "webrtc" if agent.startswith(("Janus", "Switchyard-Janus")) else "sip"


def stream_rate(ch: Channel) -> int:
    """8000 for narrowband legs (mod_audio_stream's 16k drops audio on 30 ms 8 kHz legs), else 16000:
    G722 reads at 16 kHz, Opus at 48 kHz (WebRTC legs through Janus; mod_audio_stream resamples them down).
    """
    read_rate = ch.variables.get("read_rate", "")
    return 16000 if read_rate.isdigit() and int(read_rate) >= 16000 else 8000


def stream_request(ch: Channel, agent: str, language: str = "en", rate: int | None = None) -> StreamRequest:
    """What to stream for ``ch`` (at ``rate``, default :func:`stream_rate`) and the metadata the worker
    validates (``switchyard.wire.StreamMetadata``)."""
    rate = rate or stream_rate(ch)
    meta = StreamMetadata(
        call_id=ch.call_id,
        sample_rate=16000 if rate == 16000 else 8000,
        call_type=call_type_of(ch),
        caller=ch.caller_id_number,
        callee=ch.destination_number,
        agent=agent,
        language=language,
    )
    return StreamRequest(ch.node, ch.uuid, ch.call_id, meta.sample_rate, encode_metadata(meta))


class CallRouter:
    """Routes parked legs; feed it the call model's changes."""

    def __init__(
        self,
        table: RouteTable,
        control: CallControl,
        streams: AgentStreams,
        *,
        sip_domain: str | None = None,
        on_decision: DecisionHook | None = None,
        on_adopted: Callable[[str, str], None] | None = None,
    ) -> None:
        self.table = table
        self._control = control
        self._streams = streams
        self._sip_domain = sip_domain
        self._on_decision = on_decision
        self._on_adopted = on_adopted  # told (uuid, agent) of an adopted agent leg (playback's transfer rule)
        self._routed: dict[str, str] = {}  # uuid -> destination it was routed for
        self._tasks = TaskSet()

    def reload(self, table: RouteTable) -> None:
        """Use ``table`` for calls parked from now on."""
        self.table = table

    def apply(self, node: str, change: CallChange) -> None:
        """Route a leg that parked; forget removed legs."""
        if isinstance(change, ChannelRemoved):
            self._routed.pop(change.uuid, None)
            return
        if isinstance(change, ChannelAdopted):
            self._adopt(change)
            return
        if not isinstance(change, ChannelParked):
            return
        ch = self._control.model.channel(change.uuid)
        if ch is None or self._routed.get(ch.uuid) == ch.destination_number:
            return
        decision = self._decide(ch)
        if decision is None:
            return
        self._routed[ch.uuid] = ch.destination_number
        self._tasks.spawn(self._route(ch, decision, time.perf_counter()), f"route {ch.uuid}")

    def _adopt(self, change: ChannelAdopted) -> None:
        """A leg an earlier controller routed: routed already; an agent leg keeps (or regains) its stream."""
        ch = self._control.model.channel(change.uuid)
        if ch is None or (change.route != "agent" and ch.parked):
            return  # still parked: its transfer never happened, so it is routed (at its ChannelParked)
        self._routed[ch.uuid] = ch.destination_number
        if change.route != "agent":
            return
        if self._on_adopted is not None:
            self._on_adopted(ch.uuid, change.arg)
        current = self.table.decide(ch.destination_number, ch.caller_id_number, ch.context)
        same = current is not None and current.action == Action("agent", change.arg)
        if change.streaming:
            language = current.route.language if same and current and current.route else "en"
            log.info("%s: adopted, streaming to worker %s", ch.uuid, change.worker or "?")
            self._streams.adopt(stream_request(ch, change.arg, language), change.worker)
            return
        log.warning("%s: adopted without its stream (gone while no controller ran); streaming again", ch.uuid)
        decision = current if same and current else RouteDecision(Action("agent", change.arg), None, -1)
        self._tasks.spawn(self._route(ch, decision, time.perf_counter()), f"restream {ch.uuid}")

    def _decide(self, ch: Channel) -> RouteDecision | None:
        if ch.direction == "outbound" and not ch.headers.get("variable_transfer_source"):
            agent = ch.headers.get(f"variable_{AGENT_VARIABLE}")
            return RouteDecision(Action("agent", agent), None, -1) if agent else None
        # Inbound legs, and originated legs blind-transferred to a destination (switch_ivr_session_transfer
        # sets transfer_source), go by the table.
        return self.table.decide(ch.destination_number, ch.caller_id_number, ch.context)

    async def _route(self, ch: Channel, decision: RouteDecision, parked_at: float) -> None:
        action = decision.action
        log.info("%s: %s -> %s", ch.uuid, ch.destination_number, action)
        if decision.route is None and action.kind == "reject" and ch.direction != "outbound":
            log.warning("%s: no route for destination %r; rejecting", ch.uuid, ch.destination_number)
        try:
            await self._remember(ch, action)
            await self._act(ch, decision, action)
        except (CallError, InvalidCommand) as exc:
            log.warning("%s: %s failed: %s", ch.uuid, action, exc)
        if self._on_decision is not None:
            self._on_decision(ch, decision, time.perf_counter() - parked_at)

    async def _remember(self, ch: Channel, action: Action) -> None:
        """Write the decision onto the leg, so a restarted controller adopts it instead of routing it again
        (a reject needs none: the leg goes). A refusal is logged; the call is routed all the same."""
        if action.kind == "reject":
            return
        variables = {ROUTE_VARIABLE: action.kind, ROUTE_ARG_VARIABLE: action.arg}
        try:
            await self._control.run(ch.node, fc.setvars(ch.uuid, variables))
        except (CallError, InvalidCommand) as exc:
            log.warning("%s: the route is not kept on the channel: %s", ch.uuid, exc)

    async def _act(self, ch: Channel, decision: RouteDecision, action: Action) -> None:
        control = self._control
        if action.kind == "agent":
            await self._agent(ch, decision, action.arg)
        elif action.kind == "reject":
            await control.hangup(ch, action.arg)
        else:
            await control.transfer_inline(ch, self._inline(action))

    def _inline(self, action: Action) -> list[tuple[str, str]]:
        """The applications of a user, conference or echo route (``transfer_inline``)."""
        if action.kind == "user":
            domain = f"@{self._sip_domain}" if self._sip_domain else ""
            return [("bridge", f"user/{action.arg}{domain}")]
        if action.kind == "conference":
            return [("answer", ""), ("conference", f"{action.arg}@default")]
        return [("answer", ""), ("echo", "")]

    async def _agent(self, ch: Channel, decision: RouteDecision, agent: str) -> None:
        if not ch.answered:
            await self._control.answer(ch)
        language = decision.route.language if decision.route else "en"
        request = stream_request(ch, agent, language)
        try:
            await self._streams.start(request)
        except NoWorkerAvailable as exc:
            log.error("%s", exc)
            await self._fallback(ch, decision)

    async def _fallback(self, ch: Channel, decision: RouteDecision) -> None:
        route = decision.route
        if route is not None and route.announcement:
            await self._control.play_to_end(ch, route.announcement)
        action = decision.fallback or _NO_WORKER_FALLBACK
        if action.kind == "agent":
            action = _NO_WORKER_FALLBACK  # another agent would need the same workers
        log.info("%s: falling back to %s", ch.uuid, action)
        await self._act(ch, decision, action)

    async def aclose(self) -> None:
        """Cancel routing in progress (bounded wait)."""
        await self._tasks.aclose()
