"""Call detail records from the call model's changes: an open row at the start, the full row at the end.

A record is written (``status=open``) when a call starts, so a controller killed mid-call leaves a trace; it
is rewritten (``closed``) at ``CallEnded``. Calls the model loses during a reconnect end with
``LOST_CAUSE`` and are closed ``closed_while_down``. After a restart, ``reconcile(node)`` (run after each
resync) closes the open rows of that node whose legs are no longer up, with what is known, also marked
``closed_while_down``. Writes go through one queue in order; ``aclose`` drains it.

Browser calls: each leg's SIP Call-ID (``variable_sip_call_id``) is kept; when the call closes, the Janus
handle that named one of them (``controller.janus.link.WebrtcLinks``) gives the record its ``webrtc`` media
statistics and makes it ``call_type: webrtc`` (besides the Janus User-Agent, ``call_type_of``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from pydantic import ValidationError

from controller.calls.changes import (
    AudioStreamChanged,
    AudioStreamMessage,
    CallChange,
    CallEnded,
    CallMerged,
    CallStarted,
    ChannelRemoved,
    DtmfReceived,
    RecordingChanged,
)
from controller.calls.channel import AudioStreamState, Call, Channel
from controller.calls.model import CallModel
from controller.calls.resync import LOST_CAUSE
from controller.calls.router import call_type_of
from controller.calls.routes import RouteDecision
from controller.janus.link import WebrtcLinks
from controller.store import (
    CdrLeg,
    CdrRecord,
    CdrStore,
    Disposition,
    StoreError,
    StreamStats,
    TranscriptTurn,
    epoch_us,
    from_epoch_us,
)
from switchyard.messages import BargeIn, TurnTranscript, WorkerMessage

__all__ = ["CdrRecorder", "disposition_of"]

log = logging.getLogger("switchyard.cdr")

_CAUSE_DISPOSITION: Final[dict[str, Disposition]] = {
    "USER_BUSY": "busy",
    "NO_ANSWER": "no_answer",
    "NO_USER_RESPONSE": "no_answer",
    "ALLOTTED_TIMEOUT": "no_answer",
    "ORIGINATOR_CANCEL": "cancelled",
    "CALL_REJECTED": "rejected",
    "UNALLOCATED_NUMBER": "rejected",
    "NO_ROUTE_DESTINATION": "rejected",
    "USER_NOT_REGISTERED": "rejected",
    "SUBSCRIBER_ABSENT": "rejected",
    LOST_CAUSE: "lost",
}


def disposition_of(answered: bool, cause: str) -> Disposition:
    """``answered`` for answered calls, else from the hangup cause (``failed`` for the rest)."""
    if cause == LOST_CAUSE:
        return "lost"
    return "answered" if answered else _CAUSE_DISPOSITION.get(cause, "failed")


@dataclass
class _Draft:
    """What the changes taught about one call, beyond the model's final ``Call``."""

    node: str
    created_us: int
    caller: str = ""
    callee: str = ""
    call_type: str = "sip"
    route: str = ""
    agent: str = ""
    legs: dict[str, CdrLeg] = field(default_factory=dict)
    worker: str = ""
    attempts: int = 0
    failures: int = 0
    playbacks: int = 0
    barge_ins: int = 0
    connected_us: int = 0
    dtmf: str = ""
    recordings: list[str] = field(default_factory=list)
    transcript: list[TranscriptTurn] = field(default_factory=list)
    sip_call_ids: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    def saw(self, ch: Channel) -> None:
        """Keep the SIP Call-ID of a leg of the call."""
        call_id = ch.variables.get("sip_call_id")
        if call_id and call_id not in self.sip_call_ids:
            self.sip_call_ids.append(call_id)


class CdrRecorder:
    """Keeps one record per call in ``store``; feed it the call model's changes."""

    def __init__(self, store: CdrStore, model: CallModel, links: WebrtcLinks | None = None) -> None:
        self._store = store
        self._model = model
        self._links = links
        self._drafts: dict[str, _Draft] = {}
        self._writes: asyncio.Queue[tuple[str, CdrRecord | str]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.written = 0

    def start(self) -> None:
        """Start the writer task (needs a running loop)."""
        self._writer = asyncio.create_task(self._write_loop(), name="cdr writer")

    # ---- changes ---------------------------------------------------------------------------------------

    def apply(self, node: str, change: CallChange) -> None:
        """Update the call's draft; queue the open row at the start and the closed row at the end."""
        if isinstance(change, CallStarted):
            self._started(node, change.call_id)
            return
        draft = self._drafts.get(change.call_id)
        if draft is None:
            return
        if isinstance(change, CallEnded):
            del self._drafts[change.call_id]
            self._writes.put_nowait(("finish", self._record(change.call, draft)))
        elif isinstance(change, CallMerged):
            self._merged(draft, change.merged_id)
        elif isinstance(change, ChannelRemoved):
            draft.legs[change.uuid] = _leg(change.channel)
            draft.saw(change.channel)
        elif isinstance(change, AudioStreamChanged | AudioStreamMessage | DtmfReceived | RecordingChanged):
            self._media(draft, change)

    def _started(self, node: str, call_id: str) -> None:
        call = self._model.call(call_id)
        first = self._model.channel(call_id)
        draft = _Draft(node, call.created_us if call else 0)
        if first is not None:
            draft.caller, draft.callee = first.caller_id_number, first.destination_number
            draft.call_type = call_type_of(first)
            draft.saw(first)
            draft.created_us = draft.created_us or first.created_us
        self._drafts[call_id] = draft
        self._writes.put_nowait(("begin", self._open_record(call_id, draft)))

    def _merged(self, draft: _Draft, merged_id: str) -> None:
        gone = self._drafts.pop(merged_id, None)
        if gone is not None:
            draft.legs.update(gone.legs)
            draft.route, draft.agent = draft.route or gone.route, draft.agent or gone.agent
            draft.recordings += gone.recordings
            draft.sip_call_ids += gone.sip_call_ids
            self._writes.put_nowait(("discard", merged_id))

    def _media(self, draft: _Draft, change: CallChange) -> None:
        if isinstance(change, AudioStreamChanged):
            if change.state is AudioStreamState.CONNECTED and not draft.connected_us:
                draft.connected_us = self._model.now_us()
            if change.state in (AudioStreamState.FAILED, AudioStreamState.DISCONNECTED):
                draft.failures += 1
        elif isinstance(change, AudioStreamMessage):
            if change.kind == "play":
                draft.playbacks += 1
            else:
                self._worker_message(draft, change.message)
        elif isinstance(change, DtmfReceived):
            draft.dtmf += change.digit
        elif isinstance(change, RecordingChanged):
            known = change.path in draft.recordings
            if change.recording and not known:
                draft.recordings.append(change.path)

    @staticmethod
    def _worker_message(draft: _Draft, message: WorkerMessage | None) -> None:
        if isinstance(message, BargeIn):
            draft.barge_ins += 1
        elif isinstance(message, TurnTranscript):
            try:
                fields = dataclasses.asdict(message)
                draft.transcript.append(TranscriptTurn.model_validate(fields))
            except ValidationError as exc:
                log.warning("a transcript from the worker is malformed: %s", exc.errors()[0]["msg"])

    def routed(self, ch: Channel, decision: RouteDecision, worker: str | None, attempts: int) -> None:
        """The router's decision for the call of ``ch`` (and the worker that took the stream)."""
        draft = self._drafts.get(ch.call_id)
        if draft is None:
            return
        draft.route = str(decision.action)
        if decision.action.kind == "agent":
            draft.agent = decision.action.arg
            draft.worker, draft.attempts = worker or "", attempts

    def note(self, uuid: str, name: str, value: str) -> None:
        """Keep ``name: value`` in the record of the call of leg ``uuid`` (``extra``), e.g. a refused
        transfer; a later value of the same name is appended after a space."""
        ch = self._model.channel(uuid)
        draft = self._drafts.get(ch.call_id) if ch is not None else None
        if draft is None:
            return
        old = draft.extra.get(name)
        draft.extra[name] = f"{old} {value}" if old else value

    # ---- records ---------------------------------------------------------------------------------------

    def _open_record(self, call_id: str, draft: _Draft) -> CdrRecord:
        return CdrRecord(
            call_id=call_id,
            node=draft.node,
            status="open",
            caller=draft.caller,
            callee=draft.callee,
            call_type="webrtc" if draft.call_type == "webrtc" else "sip",
            route=draft.route,
            agent=draft.agent,
            created_at=from_epoch_us(draft.created_us) or datetime.now(UTC),
            answered_at=None,
            ended_at=None,
            disposition=None,
        )

    def _record(self, call: Call, draft: _Draft) -> CdrRecord:
        created = call.created_us or draft.created_us
        ended, answered = call.ended_us, call.answered_us
        lost = call.hangup_cause == LOST_CAUSE
        legs = tuple(draft.legs[uuid] for uuid in call.legs if uuid in draft.legs)
        webrtc = self._links.take(draft.sip_call_ids) if self._links is not None else None
        if webrtc is not None:
            draft.call_type = "webrtc"
        return self._open_record(call.id, draft).model_copy(
            update={
                "status": "closed",
                "answered_at": from_epoch_us(call.answered_us),
                "ended_at": from_epoch_us(ended),
                "hangup_cause": call.hangup_cause,
                "disposition": disposition_of(call.answered_us != 0, call.hangup_cause),
                "duration_s": max(0.0, (ended - created) / 1e6) if ended and created else 0.0,
                "billsec_s": max(0.0, (ended - answered) / 1e6) if ended and answered else 0.0,
                "legs": legs,
                "stream": StreamStats(
                    worker=draft.worker,
                    attempts=draft.attempts,
                    connected_at=from_epoch_us(draft.connected_us),
                    failures=draft.failures,
                    playbacks=draft.playbacks,
                    barge_ins=draft.barge_ins,
                    dtmf=draft.dtmf,
                ),
                "recording_paths": tuple(draft.recordings),
                "transcript": tuple(draft.transcript),
                "webrtc": webrtc,
                "closed_while_down": lost,
                "extra": dict(draft.extra),
            }
        )

    # ---- restart -----------------------------------------------------------------------------------------

    async def reconcile(self, node: str) -> int:
        """Close the open rows of ``node`` whose legs are all gone (the call ended while we were down).

        Run after the node's resync. Rows of calls still up are kept (their draft takes the stored route).
        Returns how many rows were closed.
        """
        closed = 0
        for row in await self._store.open_records(node):
            if row.call_id in self._drafts:
                self._adopt(row)
                continue
            if any(self._model.channel(leg.uuid) is not None for leg in row.legs):
                continue
            await self._store.finish(
                row.model_copy(update={"status": "closed", "disposition": "lost", "closed_while_down": True})
            )
            closed += 1
        if closed:
            log.warning("node %s: closed %d CDR(s) of calls that ended while we were down", node, closed)
        return closed

    def _adopt(self, row: CdrRecord) -> None:
        draft = self._drafts[row.call_id]
        draft.route, draft.agent = draft.route or row.route, draft.agent or row.agent
        draft.created_us = min(draft.created_us or 2**62, epoch_us(row.created_at))

    # ---- writing -----------------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            op, item = await self._writes.get()
            try:
                await self._write(op, item)
            except StoreError as exc:
                log.error("CDR %s failed: %s", op, exc)
            finally:
                self._writes.task_done()

    async def _write(self, op: str, item: CdrRecord | str) -> None:
        if isinstance(item, str):
            await self._store.discard(item)
        elif op == "begin":
            await self._store.begin(item)
        else:
            await self._store.finish(item)
            self.written += 1

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued write is done."""
        async with asyncio.timeout(timeout):
            await self._writes.join()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Drain the queue (bounded), then stop the writer."""
        if self._writer is None:
            return
        try:
            await self.flush(timeout)
        except TimeoutError:
            log.error("CDR writer: %d write(s) not done at shutdown", self._writes.qsize())
        self._writer.cancel()
        await asyncio.wait({self._writer}, timeout=timeout)
        self._writer = None


def _leg(ch: Channel) -> CdrLeg:
    return CdrLeg(
        uuid=ch.uuid,
        name=ch.name,
        direction=ch.direction,
        caller_id_number=ch.caller_id_number,
        caller_id_name=ch.caller_id_name,
        destination_number=ch.destination_number,
        created_at=from_epoch_us(ch.created_us),
        answered_at=from_epoch_us(ch.answered_us),
        ended_at=from_epoch_us(ch.hangup_us),
        hangup_cause=ch.hangup_cause,
    )
