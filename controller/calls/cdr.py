"""Call detail records from the call model's changes: an open row while the call is up, then the full one.

A record is written (``status=open``) when a call starts and rewritten while it is up whenever something the
final row needs changes (routed, answered, a leg added, the stream connected, a transcript turn, adopted
after a restart); every ``touch_every_s`` the open rows of each followed node get ``last_seen_at``. So a
controller killed mid-call leaves a row that holds all of it (``controller.calls.cdr_restart``). It is
rewritten (``closed``) at ``CallEnded``. Calls the model loses during a reconnect end with ``LOST_CAUSE`` and
are closed ``closed_while_down``, ended when the node was last known up, with a ``close_reason``.

After each resync of a node (a restart or a reconnect), in ``Controller.follow``: ``load_open(node)`` reads
the node's open rows first (their legs are what the resync must look for, ``controller.calls.snapshot``);
a call the resync re-creates takes its row back (``CallStarted`` of a call id with a stored row), and an
adopted leg's route, agent and worker come from its channel variables too (``ChannelAdopted``). Then
``reconcile(node)`` closes the rows of calls whose legs are gone (not in the model, and ``uuid_exists`` says
``false``: the core database behind ``show channels`` lags, tests/fixtures/live/show_json.txt), and says why
on a row that stays open. Writes go through one queue in order, retried until they land
(``controller.calls.cdr_writer``); ``aclose`` drains it.

Browser calls: each leg's SIP Call-ID (``variable_sip_call_id``) is kept; when the call closes, the Janus
handle that named one of them (``controller.janus.link.WebrtcLinks``) gives the record its ``webrtc`` media
statistics and makes it ``call_type: webrtc`` (besides the Janus User-Agent, ``call_type_of``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from pydantic import ValidationError

from controller.calls.cdr_restart import closed_unseen, kept_open, leg_uuids, restore
from controller.calls.cdr_writer import CdrWriter, RetryPolicy, WriteHealth
from controller.calls.changes import (
    AudioStreamChanged,
    AudioStreamMessage,
    CallChange,
    CallEnded,
    CallMerged,
    CallStarted,
    ChannelAdded,
    ChannelAdopted,
    ChannelAnswered,
    ChannelRemoved,
    DtmfReceived,
    RecordingChanged,
)
from controller.calls.channel import AudioStreamState, Call, Channel
from controller.calls.model import CallModel
from controller.calls.resync import LOST_CAUSE
from controller.calls.router import call_type_of
from controller.calls.routes import RouteDecision
from controller.calls.sender import CallError, CommandSender
from controller.freeswitch import commands as fc
from controller.janus.link import WebrtcLinks
from controller.store import (
    CdrLeg,
    CdrRecord,
    CdrStore,
    Disposition,
    StoreError,
    StreamStats,
    TranscriptTurn,
    from_epoch_us,
)
from switchyard.messages import BargeIn, TurnTranscript, WorkerMessage

__all__ = ["CdrRecorder", "Draft", "disposition_of"]

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
class Draft:
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
    """Keeps one record per call in ``store``; feed it the call model's changes.

    Args:
        store: where the records go.
        model: the call model (calls, legs, times).
        links: Janus handles by SIP Call-ID, for browser calls.
        sender: asks FreeSWITCH ``uuid_exists`` before a row is closed as ended unseen (None: not asked).
        retry: how failed writes are retried (``controller.calls.cdr_writer``).
        on_write_failure: told of each write that keeps failing (a metric).
        followed: the nodes followed now (their open rows are touched); None: none are touched.
        touch_every_s: how often the open rows of followed nodes get ``last_seen_at``.
        clock: wall clock in seconds.
    """

    def __init__(
        self, store: CdrStore, model: CallModel, links: WebrtcLinks | None = None, *,
        sender: CommandSender | None = None, retry: RetryPolicy | None = None,
        on_write_failure: Callable[[str], None] | None = None,
        followed: Callable[[], Iterable[str]] | None = None, touch_every_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self._store = store
        self._model = model
        self._links = links
        self._sender = sender
        self._followed = followed
        self._touch_every_s = touch_every_s
        self._clock = clock
        self._drafts: dict[str, Draft] = {}
        self._stored: dict[str, dict[str, CdrRecord]] = {}  # node -> call id -> open row read at its resync
        self._writer = CdrWriter(store, retry, on_failure=on_write_failure)
        self._toucher: asyncio.Task[None] | None = None

    @property
    def written(self) -> int:
        """Closed rows written so far."""
        return self._writer.finished

    def health(self) -> WriteHealth:
        """Whether CDR writes land (``/readyz``)."""
        return self._writer.health()

    def start(self) -> None:
        """Start the writer (and the toucher) tasks (needs a running loop)."""
        self._writer.start()
        if self._followed is not None and self._touch_every_s > 0:
            self._toucher = asyncio.create_task(self._touch_loop(), name="cdr toucher")

    # ---- changes ---------------------------------------------------------------------------------------

    def apply(self, node: str, change: CallChange) -> None:
        """Update the call's draft; queue the open row at the start (and when it changes), the closed row at
        the end."""
        if isinstance(change, CallStarted):
            self._started(node, change.call_id)
            return
        draft = self._drafts.get(change.call_id)
        if draft is None:
            return
        if isinstance(change, CallEnded):
            del self._drafts[change.call_id]
            self._writer.put("finish", self._record(change.call, draft))
        elif isinstance(change, CallMerged):
            self._merged(draft, change.merged_id)
        elif isinstance(change, ChannelRemoved):
            draft.legs[change.uuid] = _leg(change.channel)
            draft.saw(change.channel)
        elif isinstance(change, ChannelAdopted):
            self._adopted(draft, change)
        elif isinstance(change, ChannelAnswered | ChannelAdded):
            self._changed(change.call_id, draft)
        elif isinstance(change, AudioStreamChanged | AudioStreamMessage | DtmfReceived | RecordingChanged):
            self._media(draft, change)

    def _started(self, node: str, call_id: str) -> None:
        call = self._model.call(call_id)
        first = self._model.channel(call_id)
        draft = Draft(node, call.created_us if call else 0)
        if first is not None:
            draft.caller, draft.callee = first.caller_id_number, first.destination_number
            draft.call_type = call_type_of(first)
            draft.saw(first)
            draft.created_us = draft.created_us or first.created_us
        row = self._stored.get(node, {}).pop(call_id, None)
        if row is not None:
            restore(draft, row)  # a call up across the restart: its row goes on
        self._drafts[call_id] = draft
        self._changed(call_id, draft)

    def _changed(self, call_id: str, draft: Draft) -> None:
        """Queue the open row as the call now is."""
        self._writer.put("begin", self._open_record(call_id, draft))

    def _adopted(self, draft: Draft, change: ChannelAdopted) -> None:
        draft.route = f"{change.route} {change.arg}".strip()
        if change.route == "agent":
            draft.agent = change.arg
            draft.worker = change.worker or draft.worker
        self._changed(change.call_id, draft)

    def _merged(self, draft: Draft, merged_id: str) -> None:
        gone = self._drafts.pop(merged_id, None)
        if gone is not None:
            draft.legs.update(gone.legs)
            draft.route, draft.agent = draft.route or gone.route, draft.agent or gone.agent
            draft.recordings += gone.recordings
            draft.sip_call_ids += gone.sip_call_ids
            self._writer.put("discard", merged_id)

    def _media(self, draft: Draft, change: CallChange) -> None:
        if isinstance(change, AudioStreamChanged):
            if change.state is AudioStreamState.CONNECTED and not draft.connected_us:
                draft.connected_us = self._model.now_us()
                self._changed(change.call_id, draft)
            if change.state in (AudioStreamState.FAILED, AudioStreamState.DISCONNECTED):
                draft.failures += 1
        elif isinstance(change, AudioStreamMessage):
            if change.kind == "play":
                draft.playbacks += 1
            elif self._worker_message(draft, change.message):
                self._changed(change.call_id, draft)
        elif isinstance(change, DtmfReceived):
            draft.dtmf += change.digit
        elif isinstance(change, RecordingChanged):
            known = change.path in draft.recordings
            if change.recording and not known:
                draft.recordings.append(change.path)

    @staticmethod
    def _worker_message(draft: Draft, message: WorkerMessage | None) -> bool:
        """Count a barge-in, keep a transcript turn; True for a turn (the open row keeps the transcript)."""
        if isinstance(message, BargeIn):
            draft.barge_ins += 1
        elif isinstance(message, TurnTranscript):
            try:
                turn = TranscriptTurn.model_validate(dataclasses.asdict(message))
            except ValidationError as exc:
                log.warning("a transcript from the worker is malformed: %s", exc.errors()[0]["msg"])
                return False
            if turn not in draft.transcript:  # a turn sent again (transcript_request) is kept once
                draft.transcript.append(turn)
                return True
        return False

    def routed(self, ch: Channel, decision: RouteDecision, worker: str | None, attempts: int) -> None:
        """The router's decision for the call of ``ch`` (and the worker that took the stream)."""
        draft = self._drafts.get(ch.call_id)
        if draft is None:
            return
        draft.route = str(decision.action)
        if decision.action.kind == "agent":
            draft.agent = decision.action.arg
            draft.worker, draft.attempts = worker or "", attempts
        self._changed(ch.call_id, draft)

    def stream_moved(self, uuid: str, worker: str, attempts: int) -> None:
        """The stream of leg ``uuid`` moved to ``worker`` (``attempts`` starts in all so far)."""
        ch = self._model.channel(uuid)
        draft = self._drafts.get(ch.call_id) if ch is not None else None
        if ch is None or draft is None:
            return
        draft.worker, draft.attempts = worker, max(attempts, draft.attempts + 1)
        self._changed(ch.call_id, draft)

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

    def _open_record(self, call_id: str, draft: Draft) -> CdrRecord:
        call = self._model.call(call_id)
        legs: list[CdrLeg] = []
        for uuid in call.legs if call is not None else ():
            ch = self._model.channel(uuid)
            leg = draft.legs.get(uuid) or (_leg(ch) if ch is not None else None)
            if leg is not None:
                legs.append(leg)
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
            answered_at=from_epoch_us(call.answered_us) if call is not None else None,
            ended_at=None,
            disposition=None,
            legs=tuple(legs),
            stream=self._stream_stats(draft),
            recording_paths=tuple(draft.recordings),
            transcript=tuple(draft.transcript),
            last_seen_at=from_epoch_us(int(self._clock() * 1_000_000)),
            extra=dict(draft.extra),
        )

    @staticmethod
    def _stream_stats(draft: Draft) -> StreamStats:
        return StreamStats(
            worker=draft.worker,
            attempts=draft.attempts,
            connected_at=from_epoch_us(draft.connected_us),
            failures=draft.failures,
            playbacks=draft.playbacks,
            barge_ins=draft.barge_ins,
            dtmf=draft.dtmf,
        )

    def _record(self, call: Call, draft: Draft) -> CdrRecord:
        created = (
            min(t for t in (call.created_us, draft.created_us) if t)
            if call.created_us or draft.created_us
            else 0
        )
        ended, answered = call.ended_us, call.answered_us
        lost = call.hangup_cause == LOST_CAUSE
        legs = tuple(draft.legs[uuid] for uuid in call.legs if uuid in draft.legs)
        webrtc = self._links.take(draft.sip_call_ids) if self._links is not None else None
        if webrtc is not None:
            draft.call_type = "webrtc"
        reason = (
            f"the connection to node {draft.node} was down when the call ended; last known up then"
            if lost
            else ""
        )
        return self._open_record(call.id, draft).model_copy(
            update={
                "status": "closed",
                "created_at": from_epoch_us(created) or datetime.now(UTC),
                "answered_at": from_epoch_us(call.answered_us),
                "ended_at": from_epoch_us(ended),
                "hangup_cause": call.hangup_cause,
                "disposition": disposition_of(call.answered_us != 0, call.hangup_cause),
                "duration_s": max(0.0, (ended - created) / 1e6) if ended and created else 0.0,
                "billsec_s": max(0.0, (ended - answered) / 1e6) if ended and answered else 0.0,
                "legs": legs,
                "webrtc": webrtc,
                "closed_while_down": lost,
                "close_reason": reason,
                "last_seen_at": from_epoch_us(ended) if lost else None,
            }
        )

    # ---- restart -----------------------------------------------------------------------------------------

    async def load_open(self, node: str) -> list[str]:
        """Read ``node``'s open rows before its resync is applied; returns their legs' uuids (the resync
        looks for those the lagging ``show channels`` may not list yet)."""
        try:
            rows = await self._store.open_records(node)
        except StoreError as exc:
            log.error("node %s: open CDRs not read (not reconciled this time): %s", node, exc)
            return []
        self._stored[node] = {row.call_id: row for row in rows if row.call_id not in self._drafts}
        return [uuid for row in self._stored[node].values() for uuid in leg_uuids(row)]

    async def reconcile(self, node: str) -> int:
        """After the node's resync: close the rows whose legs are all gone, say why on those kept open.

        Returns how many rows were closed.
        """
        closed = 0
        now = datetime.now(UTC)
        for row in self._stored.pop(node, {}).values():
            if row.call_id in self._drafts or self._model.ended_call(row.call_id) is not None:
                continue
            reason = await self._why_open(node, row)
            if reason:
                self._writer.put("begin", kept_open(row, reason, now))
                continue
            self._writer.put("finish", closed_unseen(row, now))
            closed += 1
        if closed:
            log.warning("node %s: closed %d CDR(s) of calls that ended while we were down", node, closed)
        return closed

    async def _why_open(self, node: str, row: CdrRecord) -> str:
        """Why the row must stay open ('' when every leg is gone for sure)."""
        for uuid in leg_uuids(row):
            ch = self._model.channel(uuid)
            if ch is not None:
                return f"leg {uuid} is up, in call {ch.call_id}"
        if self._sender is None:
            return ""
        for uuid in leg_uuids(row):
            try:
                reply = await self._sender.run(node, fc.exists(uuid), check=False)
            except CallError as exc:
                return f"FreeSWITCH could not be asked about leg {uuid}: {exc}"
            if reply.strip() != "false":
                return f"FreeSWITCH still has leg {uuid} (uuid_exists {reply.strip()!r}) but did not list it"
        return ""

    async def _touch_loop(self) -> None:
        assert self._followed is not None
        while True:
            await asyncio.sleep(self._touch_every_s)
            seen = datetime.now(UTC)
            for node in self._followed():
                self._writer.put("touch", (node, seen))

    # ---- writing -----------------------------------------------------------------------------------------

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued write is done."""
        await self._writer.flush(timeout)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop touching, drain the queue (bounded), then stop the writer."""
        if self._toucher is not None:
            self._toucher.cancel()
            await asyncio.wait({self._toucher}, timeout=timeout)
            self._toucher = None
        await self._writer.aclose(timeout)


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
