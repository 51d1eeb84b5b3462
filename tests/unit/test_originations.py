"""``controller.calls.originations``: what settles an originate, fed the recorded capture of a real one
(esl_inbound_session.txt, session 2: ``bgapi originate {origination_uuid=S2_A}loopback/7104``) through the
call model, the way the controller feeds it."""

from __future__ import annotations

import dataclasses

import pytest

from controller.calls.changes import ChannelRemoved
from controller.calls.model import CallModel
from controller.calls.originations import OriginateStatus, Originations, job_outcome
from controller.calls.sender import CommandSender
from controller.calls.waiters import ChangeWaiters
from controller.freeswitch.events import BackgroundJob, ChannelEvent, EventHeaders
from tests.unit.callmodelkit import INBOUND, NODE, S2_A
from tests.unit.fixture_events import fs_events

JOB = "b7183ad0-bac1-4d58-ae60-924e2eeb3b76"  # the capture's Job-UUID of that originate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _tracker(model: CallModel, **kw: object) -> Originations:
    return Originations(CommandSender({}, ChangeWaiters()), model.channel, **kw)  # type: ignore[arg-type]


def _job(job_uuid: str, body: str) -> BackgroundJob:
    headers = EventHeaders({"Event-Name": "BACKGROUND_JOB", "Job-UUID": job_uuid, "Job-Command": "originate"})
    return BackgroundJob(
        name="BACKGROUND_JOB", headers=headers, body=body, job_uuid=job_uuid, command="originate"
    )


@pytest.mark.parametrize(
    ("text", "status", "cause"),
    [
        (f"+OK {S2_A}\n", OriginateStatus.ANSWERED, ""),
        ("-ERR USER_BUSY\n", OriginateStatus.FAILED, "USER_BUSY"),
        ("-ERR NO_ANSWER", OriginateStatus.FAILED, "NO_ANSWER"),
        ("Command returned no output!", OriginateStatus.FAILED, "Command returned no output!"),
        ("", OriginateStatus.FAILED, "NO_RESULT"),
    ],
)
def test_job_outcome(text: str, status: OriginateStatus, cause: str) -> None:
    assert job_outcome(text) == (status, cause)


def test_the_legs_answer_settles_it_without_its_background_job() -> None:
    model = CallModel()
    tracker = _tracker(model)
    record = tracker.track(S2_A, NODE)
    settled_by = None
    for event in fs_events(INBOUND, 1):
        tracker.on_event(NODE, event)  # the capture's BACKGROUND_JOB names another job: not this one's
        for change in model.apply(NODE, event):
            tracker.apply(NODE, change)
        if settled_by is None and record.done.is_set():
            settled_by = event
    assert record.status is OriginateStatus.ANSWERED  # and the later hangup does not undo it
    assert isinstance(settled_by, ChannelEvent)
    assert (settled_by.name, settled_by.uuid) == ("CHANNEL_ANSWER", S2_A)


def test_a_late_background_job_settles_it_by_its_job_uuid() -> None:
    tracker = _tracker(CallModel())
    answered, busy = tracker.track(JOB, NODE), tracker.track("c0ffee00-0000-4000-8000-000000000001", NODE)
    (job,) = [e for e in fs_events(INBOUND, 1) if isinstance(e, BackgroundJob) and e.job_uuid == JOB]
    tracker.on_event(NODE, job)
    tracker.on_event(NODE, _job(busy.uuid, "-ERR USER_BUSY\n"))
    tracker.on_event(NODE, _job("another-job", "-ERR NO_ANSWER\n"))
    assert (answered.status, busy.status, busy.cause) == (
        OriginateStatus.ANSWERED,
        OriginateStatus.FAILED,
        "USER_BUSY",
    )


def test_a_leg_removed_unanswered_fails_it_with_its_cause() -> None:
    model = CallModel()
    tracker = _tracker(model)
    record = tracker.track(S2_A, NODE)
    for event in fs_events(INBOUND, 1):
        model.apply(NODE, event)
        if model.channel(S2_A) is not None:
            break  # CHANNEL_CREATE: ringing, not answered
    ch = model.channel(S2_A)
    assert ch is not None
    assert not ch.answered
    tracker.apply(NODE, ChannelRemoved(S2_A, S2_A, dataclasses.replace(ch, hangup_cause="USER_BUSY")))
    assert (record.status, record.cause) == (OriginateStatus.FAILED, "USER_BUSY")


def test_the_first_outcome_stands() -> None:
    tracker = _tracker(CallModel())
    record = tracker.track(S2_A, NODE)
    tracker.finish(record, OriginateStatus.ANSWERED)
    tracker.on_event(NODE, _job(S2_A, "-ERR NORMAL_CLEARING\n"))
    assert record.status is OriginateStatus.ANSWERED


def test_records_are_bounded_in_count_and_age() -> None:
    clock = Clock()
    tracker = _tracker(CallModel(), capacity=2, retain_s=60.0, clock=clock)
    a = tracker.track("a", NODE)
    clock.now += 30
    tracker.track("b", NODE)
    clock.now += 20
    tracker.track("c", NODE)  # over the cap: a goes
    assert (tracker.get("a"), len(tracker)) == (None, 2)
    clock.now += 41  # b is 61 s old, c 41 s
    assert tracker.get("b") is None
    assert tracker.get("c") is not None
    assert a.status is OriginateStatus.PENDING  # forgetting is not failing
