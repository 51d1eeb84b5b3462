"""``/v1/calls``: list, get and originate calls, and act on them (answer, hangup, transfer, bridge, park,
hold/unhold, dtmf, play, record, stream). Each action returns once FreeSWITCH confirmed it
(``controller.calls.control``); a failed check answers before any command is sent.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from controller.api.models import (
    ActionResult,
    BridgeBody,
    CallCreated,
    CallList,
    CallView,
    DtmfBody,
    HangupBody,
    LegBody,
    LegView,
    OriginateBody,
    OriginateView,
    PlayBody,
    RecordBody,
    StreamBody,
    TransferBody,
)
from controller.api.ports import Calls, WorkerStreams
from controller.api.spec import ApiError, ApiSpec, Operation, Request
from controller.calls.channel import Call, Channel
from controller.calls.originate import Originate
from controller.calls.originations import OriginateStatus, Origination
from controller.calls.registry import CallRegistry
from controller.calls.router import stream_request
from controller.calls.sender import CallError, UnknownCall
from controller.calls.variables import allowed_variables, refused_variable
from controller.settings import CallSettings
from controller.store import from_epoch_us
from controller.workers.streams import NoWorkerAvailable

__all__ = ["add_call_routes"]

_COUNTER = itertools.count(1)


def _leg_view(ch: Channel) -> LegView:
    return LegView(
        uuid=ch.uuid,
        name=ch.name,
        direction=ch.direction,
        state=ch.state.name.lower(),
        caller_id_number=ch.caller_id_number,
        destination_number=ch.destination_number,
        parked=ch.parked,
        held=ch.held,
        bridged_to=ch.bridged_to,
        audio_stream=ch.audio_stream.value,
        playing=ch.playing,
        recordings=list(ch.recordings),
        created_at=from_epoch_us(ch.created_us),
        answered_at=from_epoch_us(ch.answered_us),
    )


def call_view(model: CallRegistry, call: Call) -> CallView:
    """The API view of a call (legs still in the model)."""
    legs = [ch for uuid in call.legs if (ch := model.channel(uuid)) is not None]
    return CallView(
        id=call.id,
        node=call.node,
        ended=call.ended,
        created_at=from_epoch_us(call.created_us),
        answered_at=from_epoch_us(call.answered_us),
        ended_at=from_epoch_us(call.ended_us),
        hangup_cause=call.hangup_cause,
        legs=[_leg_view(ch) for ch in legs],
    )


class _Calls:
    def __init__(self, control: Calls, streams: WorkerStreams, settings: CallSettings) -> None:
        self.control = control
        self.streams = streams
        self.settings = settings
        self.variables = allowed_variables(settings.api_variables)

    def _leg(self, req: Request) -> Channel:
        body: LegBody = req.body
        return self.control.leg(req.path["id"], body.leg)

    def _done(self, ch: Channel, result: str, files: list[str] | None = None) -> ActionResult:
        return ActionResult(call_id=ch.call_id, leg=ch.uuid, result=result, files=files or [])

    async def list(self, req: Request) -> CallList:
        model = self.control.model
        return CallList(items=[call_view(model, call) for call in list(model.calls.values())])

    async def get(self, req: Request) -> CallView:
        call_id = req.path["id"]
        call = self.control.model.call(call_id) or self.control.model.ended_call(call_id)
        placed = self.control.origination(call_id)
        if call is not None:
            view = call_view(self.control.model, call)
            return view if placed is None else view.model_copy(update={"originate": _originate_view(placed)})
        if placed is None:
            raise UnknownCall(f"no call {call_id}", "id")
        failed = placed.status is OriginateStatus.FAILED  # pending: FreeSWITCH has not shown the leg yet
        return CallView(
            id=call_id, node=placed.node, ended=failed, created_at=None, answered_at=None, ended_at=None,
            hangup_cause=placed.cause, legs=[], originate=_originate_view(placed),
        )  # fmt: skip

    async def originate(self, req: Request) -> CallCreated | web.Response:
        body: OriginateBody = req.body
        node = self._pick_node(body.node)
        if body.target == "gateway" and not body.gateway:
            raise ApiError(422, "gateway is required for target gateway", "gateway")
        check_variables(body.variables, self.variables)
        request = Originate(
            node=node,
            target=body.target,
            destination=body.destination,
            gateway=body.gateway or "",
            context=body.context or self.settings.context,
            agent=body.agent or "",
            caller_id_number=body.caller_id_number or "",
            caller_id_name=body.caller_id_name or "",
            timeout_s=body.timeout_s,
            variables=dict(body.variables),
        )
        placed = await self.control.originate(request)
        if placed.status is OriginateStatus.ANSWERED:
            return CallCreated(call_id=placed.uuid, node=node)
        pending = CallCreated(call_id=placed.uuid, node=node, status="pending")
        return web.Response(
            status=202,
            text=pending.model_dump_json(),
            content_type="application/json",
            headers={"Location": f"/v1/calls/{placed.uuid}"},
        )

    def _pick_node(self, name: str | None) -> str:
        nodes = self.control.nodes()
        if name is not None:
            if name not in nodes:
                raise ApiError(422, f"unknown node {name!r}", "node")
            return name
        for node, connected in nodes.items():
            if connected:
                return node
        raise ApiError(503, "no FreeSWITCH node is connected", "node")

    async def answer(self, req: Request) -> ActionResult:
        ch = self._leg(req)
        await self.control.answer(ch)
        return self._done(ch, "answered")

    async def hangup(self, req: Request) -> ActionResult:
        body: HangupBody = req.body
        ch = self._leg(req)
        await self.control.hangup(ch, body.cause)
        return self._done(ch, "hungup")

    async def park(self, req: Request) -> ActionResult:
        ch = self._leg(req)
        await self.control.park(ch)
        return self._done(ch, "parked")

    async def hold(self, req: Request) -> ActionResult:
        ch = self._leg(req)
        await self.control.hold(ch, True)
        return self._done(ch, "held")

    async def unhold(self, req: Request) -> ActionResult:
        ch = self._leg(req)
        await self.control.hold(ch, False)
        return self._done(ch, "unheld")

    async def transfer(self, req: Request) -> ActionResult:
        body: TransferBody = req.body
        ch = self._leg(req)
        context = body.context or self.settings.context
        await self.control.transfer(ch, body.destination, context)
        return self._done(ch, "transferred")

    async def bridge(self, req: Request) -> ActionResult:
        body: BridgeBody = req.body
        ch = self._leg(req)
        try:
            other = self.control.leg(body.other, body.other_leg)
        except CallError as exc:
            exc.field = "other" if exc.field in ("", "id") else "other_leg"
            raise
        await self.control.bridge(ch, other)
        return self._done(ch, "bridged")

    async def dtmf(self, req: Request) -> ActionResult:
        body: DtmfBody = req.body
        ch = self._leg(req)
        await self.control.send_dtmf(ch, body.digits)
        return self._done(ch, "sent")

    async def play(self, req: Request) -> ActionResult:
        body: PlayBody = req.body
        ch = self._leg(req)
        if body.file.startswith("/"):
            roots = (*self.settings.media_dirs, self.settings.recordings_dir)
            if not any(body.file.startswith(root.rstrip("/") + "/") for root in roots):
                raise ApiError(422, "not under calls.media_dirs or calls.recordings_dir", "file")
        started = await self.control.play(ch, body.file)
        return self._done(ch, "playing" if started else "queued")

    async def record(self, req: Request) -> ActionResult:
        body: RecordBody = req.body
        ch = self._leg(req)
        if body.action == "stop":
            return self._done(ch, "stopped", await self.control.record_stop(ch))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = f"{self.settings.recordings_dir}/{ch.call_id}/{ch.uuid}-{stamp}-{next(_COUNTER)}.wav"
        await self.control.record_start(ch, path)
        return self._done(ch, "recording", [path])

    async def stream(self, req: Request) -> ActionResult:
        body: StreamBody = req.body
        ch = self._leg(req)
        if body.action == "stop":
            await self.control.stream_stop(ch)
            return self._done(ch, "stopped")
        request = stream_request(ch, body.agent, rate=body.rate)
        if body.url is not None:
            await self.control.stream_start(ch, body.url, request.rate, request.metadata)
            return self._done(ch, "streaming")
        try:
            worker = await self.streams.start(request)
        except NoWorkerAvailable as exc:
            raise ApiError(409, str(exc), "url") from exc
        return self._done(ch, f"streaming to {worker.worker_id}")


def _originate_view(placed: Origination) -> OriginateView:
    return OriginateView(status=placed.status.value, cause=placed.cause)


def check_variables(variables: Mapping[str, str], allowed: Collection[str]) -> None:
    """Refuse a request setting a channel variable outside ``allowed`` (a token scope's set, or the safe
    set plus ``calls.api_variables``): 422 naming ``variables.<name>``.

    Raises:
        ApiError: 422, field ``variables.<name>``.
    """
    name = refused_variable(variables, allowed)
    if name is not None:
        raise ApiError(
            422,
            f"channel variable {name!r} may not be set through the API "
            "(allowed: controller.calls.variables.SAFE_VARIABLES and calls.api_variables)",
            f"variables.{name}",
        )


Handler = Callable[[Request], Coroutine[Any, Any, BaseModel | web.StreamResponse]]


def add_call_routes(
    app: web.Application, spec: ApiSpec, calls: Calls, streams: WorkerStreams, settings: CallSettings
) -> None:
    """Mount the call routes: ``calls`` acts, ``streams`` picks workers, ``settings`` give the defaults."""
    h = _Calls(calls, streams, settings)
    spec.add(
        app, Operation("GET", "/v1/calls", "List live calls", h.list, response=CallList, scope="calls:read")
    )
    spec.add(
        app,
        Operation(
            "POST",
            "/v1/calls",
            "Originate a call (201 when answered; 202 pending when FreeSWITCH's answer was lost)",
            h.originate,
            body=OriginateBody,
            response=CallCreated,
            status=201,
            statuses=(202,),
            errors=(409, 503),
            scope="originate",
            idempotent=True,
        ),
    )
    spec.add(
        app,
        Operation(
            "GET", "/v1/calls/{id}", "Get a call", h.get, response=CallView, errors=(404,), scope="calls:read"
        ),
    )
    actions: list[tuple[str, Handler, type[BaseModel], str]] = [
        ("answer", h.answer, LegBody, "Answer a leg"),
        ("hangup", h.hangup, HangupBody, "Hang up a leg with a cause"),
        ("park", h.park, LegBody, "Park a leg"),
        ("hold", h.hold, LegBody, "Put a leg on hold"),
        ("unhold", h.unhold, LegBody, "Take a leg off hold"),
        ("transfer", h.transfer, TransferBody, "Blind-transfer a leg to an extension"),
        ("bridge", h.bridge, BridgeBody, "Bridge a leg with a leg of another call"),
        ("dtmf", h.dtmf, DtmfBody, "Send DTMF"),
        ("play", h.play, PlayBody, "Play a file or tone"),
        ("record", h.record, RecordBody, "Start or stop recording"),
        ("stream", h.stream, StreamBody, "Start or stop the audio stream to a worker"),
    ]
    for name, handler, body, summary in actions:
        spec.add(
            app,
            Operation(
                "POST",
                f"/v1/calls/{{id}}/{name}",
                summary,
                handler,
                body=body,
                response=ActionResult,
                errors=(404, 409, 503, 504),
                scope="calls:write",
            ),
        )
