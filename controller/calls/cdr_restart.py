"""CDRs across a controller restart: what an open row hands to the new controller, and how a row whose call
ended unseen is closed.

An open row is rewritten whenever the call changes while up (routed, answered, a leg added, the stream
connected, a transcript turn, merged) and touched (``last_seen_at``) while the controller follows its node,
so it holds everything the closed row needs: route, agent, worker, answer time, legs, transcript, counters.

* A call still up after the restart takes its row back (:func:`restore`) when the call model re-creates it
  from the resync; its final row is then complete, with the times of FreeSWITCH's own records.
* A row none of whose legs is up any more (the model does not hold them and ``uuid_exists`` says
  ``false``) is closed by :func:`closed_unseen`: disposition ``lost``, ``closed_while_down``, ended at the
  last time the call was known up (``last_seen_at``, else its last change), and ``close_reason`` says so,
  with the moment it was found gone.
* A row that has to stay open (a leg is up in another call, or FreeSWITCH could not be asked) gets its
  ``close_reason`` saying why (:func:`kept_open`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from controller.calls.resync import LOST_CAUSE
from controller.store import CdrLeg, CdrRecord, epoch_us

if TYPE_CHECKING:
    from controller.calls.cdr import Draft

__all__ = ["closed_unseen", "kept_open", "leg_uuids", "restore"]


def leg_uuids(row: CdrRecord) -> list[str]:
    """The call's first leg (its id) and every leg the row lists."""
    return list(dict.fromkeys([row.call_id, *(leg.uuid for leg in row.legs)]))


def restore(draft: Draft, row: CdrRecord) -> None:
    """Give ``draft`` (a call re-created by the resync) what the earlier controller had recorded."""
    stream = row.stream
    draft.route, draft.agent = draft.route or row.route, draft.agent or row.agent
    draft.worker = draft.worker or stream.worker
    draft.attempts = max(draft.attempts, stream.attempts)
    draft.failures += stream.failures
    draft.playbacks += stream.playbacks
    draft.barge_ins += stream.barge_ins
    draft.dtmf = stream.dtmf + draft.dtmf
    draft.connected_us = draft.connected_us or (epoch_us(stream.connected_at) if stream.connected_at else 0)
    draft.recordings = list(dict.fromkeys([*row.recording_paths, *draft.recordings]))
    draft.transcript = [*row.transcript, *(turn for turn in draft.transcript if turn not in row.transcript)]
    draft.extra = {k: str(v) for k, v in row.extra.items()} | draft.extra
    stored = epoch_us(row.created_at)
    draft.created_us = min(draft.created_us, stored) if draft.created_us else stored
    draft.legs = {leg.uuid: leg for leg in row.legs if leg.ended_at is not None} | draft.legs


def closed_unseen(row: CdrRecord, found_gone: datetime) -> CdrRecord:
    """The closed row of a call that ended while no controller followed it."""
    ended = _last_known(row)
    created, answered = row.created_at, row.answered_at
    legs = tuple(_ended_leg(leg, ended) for leg in row.legs)
    reason = (
        f"ended while the controller was not following it: last known up at {ended.isoformat()}, "
        f"found gone at {found_gone.isoformat()} (uuid_exists false)"
    )
    return row.model_copy(
        update={
            "status": "closed",
            "disposition": "lost",
            "closed_while_down": True,
            "ended_at": ended,
            "hangup_cause": row.hangup_cause or LOST_CAUSE,
            "duration_s": max(0.0, (ended - created).total_seconds()),
            "billsec_s": max(0.0, (ended - answered).total_seconds()) if answered else 0.0,
            "legs": legs,
            "close_reason": reason,
        }
    )


def kept_open(row: CdrRecord, reason: str, now: datetime) -> CdrRecord:
    """The open row, saying why reconciliation left it open."""
    return row.model_copy(
        update={"close_reason": f"open after reconciliation at {now.isoformat()}: {reason}"}
    )


def _last_known(row: CdrRecord) -> datetime:
    """When the call was last known up: the last touch, else the latest time the row holds."""
    if row.last_seen_at is not None:
        return row.last_seen_at
    times = [row.created_at, row.answered_at, row.stream.connected_at]
    times += [t for leg in row.legs for t in (leg.created_at, leg.answered_at, leg.ended_at)]
    return max(t for t in times if t is not None)


def _ended_leg(leg: CdrLeg, ended: datetime) -> CdrLeg:
    if leg.ended_at is not None:
        return leg
    return leg.model_copy(update={"ended_at": ended, "hangup_cause": leg.hangup_cause or LOST_CAUSE})
