"""Call model given late and duplicate events, and the resync after a reconnect (``ChannelsResync``).

Late and duplicate events are taken from the recorded FreeSWITCH captures (shared/fixtures/freeswitch)
through our real ``EslParser`` and ``decode_event``; the resync snapshots are built by the tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from controller.calls.changes import (
    CallEnded,
    CallStarted,
    ChannelAdded,
    ChannelAnswered,
    ChannelBridged,
    ChannelHungUp,
    ChannelParked,
    ChannelRemoved,
    ChannelUnbridged,
)
from controller.calls.model import CallModel, ChannelState
from controller.calls.resync import LOST_CAUSE
from controller.freeswitch.events import ChannelsResync
from tests.unit.callmodelkit import INBOUND, NODE, S1_A, S2_A, SIPP, Run
from tests.unit.fixture_events import fs_events

# -- late and duplicate events -------------------------------------------------------------------------------


def test_late_events_do_not_resurrect_an_ended_call() -> None:
    events = list(fs_events(INBOUND, 0))
    run = Run(events).until()
    assert not run.model.channels
    for event in events:  # the whole session again, as if duplicated
        assert run.model.apply(NODE, event) == []
    assert not run.model.channels
    assert not run.model.calls


def test_duplicate_events_on_a_live_channel_change_nothing_twice() -> None:
    events = list(fs_events(INBOUND, 1))
    run = Run(events).until(703)
    again = [e for e in events if e.sequence in (681, 697, 703)]
    assert [run.model.apply(NODE, e) for e in again] == [[], [], []]


def test_recently_ended_memory_is_bounded() -> None:
    model = CallModel(recent_capacity=1)
    Run(fs_events(INBOUND, 0), model).until()
    Run(fs_events(INBOUND, 1), model).until()
    assert model.ended_call(S1_A) is None
    assert model.ended_call(S2_A) is None
    assert model.ended_call(SIPP) is not None


# -- resync after a reconnect --------------------------------------------------------------------------------


def _row(uuid: str, **columns: str) -> dict[str, str]:
    row = {
        "uuid": uuid, "direction": "inbound", "created_epoch": "1795215000", "name": f"sofia/{uuid[:4]}",
        "state": "CS_EXECUTE", "cid_name": "Alice", "cid_num": "1001", "dest": "7100", "application": "park",
        "application_data": "", "context": "default", "read_codec": "PCMU", "read_rate": "8000",
        "callstate": "ACTIVE", "call_uuid": "",
    }  # fmt: skip
    row.update(columns)
    return row


def _resync(
    node: str, channels: Sequence[dict[str, str]], calls: Sequence[dict[str, str]] = ()
) -> ChannelsResync:
    return ChannelsResync(node, tuple(channels), tuple(calls))


def _clock() -> float:
    return 1795216000.5


def test_resync_drops_channels_lost_while_away() -> None:
    model = CallModel(clock=_clock)
    run = Run(fs_events(INBOUND, 1), model).until(709)  # sipp call answered, stream connected
    changes = model.apply(NODE, _resync(NODE, []))
    assert model.channel(SIPP) is None
    kinds = [type(c) for c in changes]
    assert kinds == [ChannelHungUp, ChannelRemoved, CallEnded]
    assert changes[0] == ChannelHungUp(SIPP, SIPP, LOST_CAUSE)
    removed = changes[1]
    assert isinstance(removed, ChannelRemoved)
    assert removed.channel.hangup_us == 1795216000500000
    ended = changes[2]
    assert isinstance(ended, CallEnded)
    assert ended.call.hangup_cause == LOST_CAUSE
    assert ended.call.ended_us == 1795216000500000
    # The real HANGUP_COMPLETE arriving later is ignored.
    run.until()
    assert not run.by_sequence[735]
    assert not model.channels


def test_resync_adds_parked_channel_that_appeared() -> None:
    model = CallModel()
    changes = model.apply(NODE, _resync(NODE, [_row("new-1")]))
    assert changes == [CallStarted("new-1"), ChannelAdded("new-1", "new-1"), ChannelParked("new-1", "new-1")]
    ch = model.channel("new-1")
    assert ch is not None
    assert (ch.state, ch.parked, ch.created_us, ch.caller_id_number, ch.destination_number) == (
        ChannelState.ANSWERED, True, 1795215000_000000, "1001", "7100",
    )  # fmt: skip
    assert ch.variables == {"read_codec": "PCMU", "read_rate": "8000"}
    assert ch.application == "park"
    # Events then continue on the channel normally; a second identical resync changes nothing.
    assert model.apply(NODE, _resync(NODE, [_row("new-1")])) == []


def test_resync_bridged_pair_from_show_calls() -> None:
    model = CallModel()
    rows = [_row("leg-b", created_epoch="1795215001", application=""), _row("leg-a", application="")]
    calls = [{"uuid": "leg-a", "b_uuid": "leg-b", "b_callstate": "ACTIVE"}]
    changes = model.apply(NODE, _resync(NODE, rows, calls))
    assert changes == [
        CallStarted("leg-a"), ChannelAdded("leg-a", "leg-a"), ChannelAdded("leg-a", "leg-b"),
        ChannelBridged("leg-a", "leg-a", "leg-b"),
    ]  # fmt: skip
    a, b = model.channel("leg-a"), model.channel("leg-b")
    assert a is not None
    assert b is not None
    assert (a.bridged_to, b.bridged_to, a.parked) == ("leg-b", "leg-a", False)
    # Unbridged while we were away: the next snapshot has no pair.
    assert model.apply(NODE, _resync(NODE, rows)) == [ChannelUnbridged("leg-a", "leg-a", "leg-b")]


def test_resync_touches_only_its_node() -> None:
    model = CallModel(clock=_clock)
    model.apply("fs2", _resync("fs2", [_row("other-node")]))
    Run(fs_events(INBOUND, 1), model).until(703)
    changes = model.apply(NODE, _resync(NODE, [_row(SIPP, callstate="ACTIVE")]))
    assert changes == []  # known, same state, already parked
    changes = model.apply("fs2", _resync("fs2", []))
    assert [type(c) for c in changes] == [ChannelHungUp, ChannelRemoved, CallEnded]
    assert model.channel(SIPP) is not None
    assert model.channel("other-node") is None


def test_resync_moves_known_channels_forward_and_skips_recently_gone() -> None:
    model = CallModel()
    run = Run(fs_events(INBOUND, 1), model).until(697)  # sipp call parked, ringing
    changes = model.apply(
        NODE, _resync(NODE, [_row(SIPP, callstate="ACTIVE"), _row(S2_A, callstate="ACTIVE")])
    )
    assert changes == [ChannelAnswered(SIPP, SIPP)]  # S2_A completed before: the core db lags, not re-added
    assert run.live(SIPP).state is ChannelState.ANSWERED
    assert model.channel(S2_A) is None


@pytest.mark.parametrize("callstate", ["RINGING", "EARLY", "HELD"])
def test_resync_state_mapping(callstate: str) -> None:
    model = CallModel()
    model.apply(NODE, _resync(NODE, [_row("x", callstate=callstate, application="")]))
    ch = model.channel("x")
    assert ch is not None
    expected = {"RINGING": ChannelState.RINGING, "EARLY": ChannelState.EARLY, "HELD": ChannelState.ANSWERED}
    assert ch.state is expected[callstate]
    assert not ch.parked
