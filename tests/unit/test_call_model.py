"""Call model fed with the recorded FreeSWITCH events (shared/fixtures/freeswitch), resyncs, late events.

The events come from the captures through our real ``EslParser`` (odd chunk sizes) and ``decode_event``.
Values asserted (uuids, timestamps, causes, positions) are the ones in the captures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import pytest

from controller.calls.changes import (
    AudioStreamChanged,
    AudioStreamMessage,
    CallChange,
    CallEnded,
    CallMerged,
    CallStarted,
    ChannelAdded,
    ChannelAnswered,
    ChannelBridged,
    ChannelChange,
    ChannelHungUp,
    ChannelParked,
    ChannelRemoved,
    ChannelUnbridged,
    ChannelUnparked,
    ChannelUpdated,
    DtmfReceived,
    PlaybackChanged,
)
from controller.calls.model import (
    AudioStreamState,
    Call,
    CallModel,
    Channel,
    ChannelState,
    PlaybackResult,
)
from controller.calls.resync import LOST_CAUSE
from controller.freeswitch.events import ChannelsResync, Event
from tests.unit.fixture_events import fs_events

INBOUND = "esl_inbound_session.txt"
DTMF_BRIDGE = "esl_dtmf_and_bridge.txt"
PLAYBACK = "esl_playback_queue.txt"

# SESSION 1 (plain): loopback/7101 originated with origination_uuid A; B = its loopback peer.
S1_A = "d147f61e-ff37-4f52-b356-a0aeac470f8d"
S1_B = "7e06f27c-f90a-4111-8366-87a8f6649535"
# SESSION 2 (json): loopback/7104 originate + kill, then the sipp call parked on 7102.
S2_A = "33c94ed5-041a-4942-8e87-ac2e50de451c"
S2_B = "dc15bf7b-2713-45d7-8090-4ded77e84f4d"
SIPP = "53492097-844b-442f-858e-8cdf293730ee"
# esl_dtmf_and_bridge.txt: two loopback calls A1/B1 and A2/B2; uuid_bridge A1 A2; uuid_kill A2.
A1 = "0a7fd2b4-5a7c-42e5-9403-0e3e24da882f"
B1 = "9261a5ea-9933-46d6-be50-7baaf5d2fce9"
A2 = "07e371b9-70de-44c2-a69a-a6a2ace727c3"
B2 = "bf107706-82c0-425d-944c-f8cbed873a4c"
# esl_playback_queue.txt: A parked (uuid_broadcast target), B plays an endless tone.
PB_A = "ef41663c-4971-4050-ab7a-827e6aac59be"
PB_B = "4575b463-9f4e-43cd-856b-77f555d77927"

NODE = "fs1"

_T = TypeVar("_T")


class Run:
    """A model fed with a list of events, one step at a time, recording the changes of each event."""

    def __init__(self, events: Iterable[Event], model: CallModel | None = None) -> None:
        self.model = model if model is not None else CallModel()
        self.pending = list(events)
        self.changes: list[CallChange] = []
        self.by_sequence: dict[int, list[CallChange]] = {}

    def until(self, sequence: int | None = None) -> Run:
        """Apply events up to and including the one with ``Event-Sequence`` ``sequence`` (all when None)."""
        while self.pending:
            event = self.pending.pop(0)
            changes = self.model.apply(NODE, event)
            self.changes.extend(changes)
            self.by_sequence[event.sequence] = changes
            if event.sequence == sequence:
                return self
        assert sequence is None, f"no event with Event-Sequence {sequence}"
        return self

    def live(self, uuid: str) -> Channel:
        channel = self.model.channel(uuid)
        assert channel is not None, uuid
        return channel

    def removed(self, uuid: str) -> Channel:
        (change,) = [c for c in self.changes if isinstance(c, ChannelRemoved) and c.uuid == uuid]
        return change.channel

    def ended(self, call_id: str) -> Call:
        (change,) = [c for c in self.changes if isinstance(c, CallEnded) and c.call_id == call_id]
        assert self.model.ended_call(call_id) is change.call
        return change.call

    def kinds(self, uuid: str) -> list[str]:
        return [type(c).__name__ for c in self.changes if isinstance(c, ChannelChange) and c.uuid == uuid]

    def of_type(self, kind: type[_T]) -> list[_T]:
        return [c for c in self.changes if isinstance(c, kind)]


def session1() -> Run:
    return Run(fs_events(INBOUND, 0))


# -- SESSION 1: plain events, loopback pair, audio stream, playback, hangup ---------------------------------


def test_session1_loopback_pair_is_one_call_grouped_at_create() -> None:
    run = session1().until(438)  # CHANNEL_CREATE of the B leg
    assert run.changes == [CallStarted(S1_A), ChannelAdded(S1_A, S1_A), ChannelAdded(S1_A, S1_B)]
    a, b = run.live(S1_A), run.live(S1_B)
    assert (a.loopback_peer, b.loopback_peer) == (S1_B, S1_A)
    assert (a.direction, b.direction) == ("outbound", "inbound")
    assert (a.name, b.name) == ("loopback/7101-a", "loopback/7101-b")
    assert a.state is ChannelState.NEW
    assert a.created_us == 1795215622231897
    call = run.model.call_of(S1_B)
    assert call is not None
    assert call.id == S1_A
    assert call.legs == [S1_A, S1_B]
    assert run.model.call(S1_A) is call
    assert list(run.model.calls) == [S1_A]


def test_session1_parked_leg_with_stream_and_playback() -> None:
    run = session1().until(469)  # CHANNEL_EXECUTE_COMPLETE of the broadcast playback on A
    a = run.live(S1_A)
    assert a.state is ChannelState.ANSWERED
    assert a.parked
    assert a.answered_us == 1795215622231897
    assert a.application == "park"
    assert a.audio_stream is AudioStreamState.CONNECTED
    assert a.playing == ""
    play_file = f"/tmp/{S1_A}_0.tmp.r16"
    assert a.last_playback == PlaybackResult(play_file, "done", 8000)
    assert a.variables == {"read_codec": "L16", "read_rate": "8000"}
    assert run.by_sequence[462] == [
        AudioStreamMessage(S1_A, S1_A, "json", '{"type": "transcript", "text": "hello from ws server"}')
    ]
    assert run.by_sequence[463] == [AudioStreamMessage(S1_A, S1_A, "play", play_file)]
    assert run.by_sequence[467] == [PlaybackChanged(S1_A, S1_A, play_file, "playing", 0)]
    b = run.live(S1_B)
    assert b.application == "playback"
    assert b.playing == "tone_stream://%(1000,0,440);loops=-1"
    assert not b.parked


def test_session1_full_change_list_of_the_a_leg() -> None:
    run = session1().until()
    assert run.kinds(S1_A) == [
        "ChannelAdded", "ChannelAnswered", "ChannelParked", "AudioStreamChanged", "AudioStreamMessage",
        "AudioStreamMessage", "PlaybackChanged", "PlaybackChanged", "AudioStreamChanged", "ChannelHungUp",
        "ChannelUnparked", "ChannelRemoved",
    ]  # fmt: skip
    # MEDIA_BUG_STOP after "stop": no mod_audio_stream::disconnect fires on a local stop.
    assert run.by_sequence[473] == [AudioStreamChanged(S1_A, S1_A, AudioStreamState.STOPPED, 0, "")]
    assert run.by_sequence[475] == [ChannelHungUp(S1_A, S1_A, "NORMAL_CLEARING")]
    assert run.by_sequence[476] == [ChannelUnparked(S1_A, S1_A)]


def test_session1_hangup_ends_the_call_once_both_legs_complete() -> None:
    run = session1().until(482)  # HANGUP_COMPLETE of A; B is still up
    assert run.model.channel(S1_A) is None
    call = run.model.call(S1_A)
    assert call is not None
    assert call.live_legs == {S1_B}
    assert not run.of_type(CallEnded)
    run.until()
    a, b = run.removed(S1_A), run.removed(S1_B)
    assert a.state is b.state is ChannelState.HANGUP
    assert a.hangup_cause == b.hangup_cause == "NORMAL_CLEARING"
    assert a.hangup_us == b.hangup_us == 1795215626931880
    assert a.audio_stream is AudioStreamState.STOPPED
    assert b.last_playback == PlaybackResult("tone_stream://%(1000,0,440);loops=-1", "done", 37600)
    call = run.ended(S1_A)
    assert call.ended
    assert call.legs == [S1_A, S1_B]
    assert not call.live_legs
    assert (call.created_us, call.answered_us, call.ended_us) == (
        1795215622231897,
        1795215622231897,
        1795215626931880,
    )
    assert call.hangup_cause == "NORMAL_CLEARING"
    assert len(run.of_type(CallEnded)) == 1
    assert not run.model.channels
    assert not run.model.calls
    # CHANNEL_DESTROY of both legs came after HANGUP_COMPLETE: ignored.
    assert run.by_sequence[489] == run.by_sequence[490] == []


# -- SESSION 2: json; originate + kill; sipp call parked -> answered -> stream connect/disconnect/error ------


def test_session2_originate_and_kill() -> None:
    run = Run(fs_events(INBOUND, 1)).until(667)
    call = run.ended(S2_A)
    assert call.legs == [S2_A, S2_B]
    assert call.hangup_cause == "NORMAL_CLEARING"
    assert (
        run.removed(S2_A).parked is True
    )  # parked, then hung up; CHANNEL_UNPARK is not subscribed in SESSION 2
    assert run.kinds(S2_A) == [
        "ChannelAdded",
        "ChannelAnswered",
        "ChannelParked",
        "ChannelHungUp",
        "ChannelRemoved",
    ]


def test_session2_sipp_call_parked_before_answer() -> None:
    run = Run(fs_events(INBOUND, 1)).until(697)  # CHANNEL_PARK, still ringing
    ch = run.live(SIPP)
    assert ch.parked
    assert ch.state is ChannelState.RINGING
    assert run.by_sequence[697] == [ChannelParked(SIPP, SIPP)]
    assert (ch.caller_id_number, ch.caller_id_name, ch.destination_number, ch.context) == (
        "1000", "1000", "7102", "default",
    )  # fmt: skip
    assert ch.variables == {
        "sip_user_agent": "SIPp", "sip_from_host": "127.0.0.1", "sip_from_user": "1000",
        "sip_to_user": "7102",
        "sip_req_host": "127.0.0.1", "sip_network_ip": "127.0.0.1", "sip_call_id": "1-17711@127.0.0.1",
        "sip_auth_username": "1000",
    }  # fmt: skip
    assert ch.headers["variable_sip_call_id"] == "1-17711@127.0.0.1"
    run.until(701)  # CHANNEL_PROGRESS_MEDIA
    assert run.live(SIPP).state is ChannelState.EARLY
    assert run.by_sequence[701] == [
        ChannelUpdated(SIPP, SIPP, ("state",)),
        ChannelUpdated(SIPP, SIPP, ("read_codec", "read_rate", "ptime")),
    ]
    assert (ch.variables["read_codec"], ch.variables["ptime"]) == ("PCMA", "20")
    run.until(703)
    assert run.by_sequence[703] == [ChannelAnswered(SIPP, SIPP)]
    assert run.live(SIPP).state is ChannelState.ANSWERED
    assert ch.answered_us == 1795215675591878


def test_session2_audio_stream_states() -> None:
    run = Run(fs_events(INBOUND, 1)).until(709)
    ch = run.live(SIPP)
    assert run.by_sequence[709] == [
        ChannelUpdated(SIPP, SIPP, ("ptime",)),  # the leg's ptime moved from 20 to 30 ms
        AudioStreamChanged(SIPP, SIPP, AudioStreamState.CONNECTED, 0, ""),
    ]
    run.until(719)
    assert (ch.audio_stream, ch.audio_stream_code, ch.audio_stream_reason) == (
        AudioStreamState.DISCONNECTED, 1000, "server done",
    )  # fmt: skip
    run.until(725)
    assert run.by_sequence[725] == [
        AudioStreamChanged(SIPP, SIPP, AudioStreamState.FAILED, 6, "Connection refused (system error 111)")
    ]
    run.until()
    final = run.removed(SIPP)
    assert final.hangup_cause == "NORMAL_CLEARING"
    assert final.hangup_us == 1795215684611877
    call = run.ended(SIPP)
    assert call.legs == [SIPP]
    assert call.answered_us == 1795215675591878
    assert call.ended_us == 1795215684611877
    assert run.by_sequence[736] == []  # CHANNEL_DESTROY after completion


def test_byte_by_byte_framing_gives_the_same_changes() -> None:
    chunked = Run(fs_events(INBOUND, 1)).until()
    bytewise = Run(fs_events(INBOUND, 1, chunks=(1,))).until()
    assert [type(c) for c in bytewise.changes] == [type(c) for c in chunked.changes]
    assert [c for c in bytewise.changes if not isinstance(c, (ChannelRemoved, CallEnded))] == [
        c for c in chunked.changes if not isinstance(c, (ChannelRemoved, CallEnded))
    ]


# -- DTMF and bridge: no CHANNEL_CREATE subscribed; channels appear from their first event -------------------


def test_dtmf_channels_created_from_first_event() -> None:
    run = Run(fs_events(DTMF_BRIDGE)).until(770)  # first event of A1: CHANNEL_EXECUTE park()
    assert run.changes[:2] == [CallStarted(B1), ChannelAdded(B1, B1)]
    assert run.by_sequence[770] == [ChannelAdded(B1, A1)]  # joins its loopback peer's call
    a1 = run.live(A1)
    assert a1.state is ChannelState.ANSWERED
    assert a1.answered_us == 1795216835067758
    assert a1.created_us == 1795216835067758
    assert a1.application == "park"
    b1 = run.live(B1)
    assert run.by_sequence[765] == [
        ChannelAnswered(B1, B1)
    ]  # from Answer-State; CHANNEL_ANSWER not subscribed
    assert b1.application == "playback"


def test_dtmf_digits_land_on_the_right_legs() -> None:
    run = Run(fs_events(DTMF_BRIDGE)).until(777)
    assert run.of_type(DtmfReceived) == [
        DtmfReceived(B1, B1, "1", "UNKNOWN"),  # uuid_send_dtmf A1 -> fires on the loopback peer B1
        DtmfReceived(B1, B1, "#", "UNKNOWN"),
        DtmfReceived(B1, A1, "5", "APP"),  # uuid_recv_dtmf A1 -> on A1 itself
    ]
    assert run.live(B1).dtmf == ["1", "#"]
    assert run.live(A1).dtmf == ["5"]


def test_uuid_bridge_merges_calls_and_kill_ends_everything() -> None:
    run = Run(fs_events(DTMF_BRIDGE)).until(807)
    assert set(run.model.calls) == {B1, B2}
    run.until(822)  # the one CHANNEL_BRIDGE, on A1
    assert run.by_sequence[822] == [CallMerged(B1, B2), ChannelBridged(B1, A1, A2)]
    a1, a2 = run.live(A1), run.live(A2)
    assert (a1.bridged_to, a2.bridged_to) == (A2, A1)
    assert not a1.parked
    assert not a2.parked
    assert a1.application == a2.application == "uuid_bridge"
    call = run.model.call_of(A2)
    assert call is not None
    assert call.id == B1
    assert list(run.model.calls) == [B1]
    assert call.legs == [B1, A1, B2, A2]
    assert call.bridges == [(A1, A2)]
    assert {ch.call_id for ch in run.model.channels.values()} == {B1}
    run.until(827)
    assert run.live(A1).dtmf == ["5", "7"]
    assert run.live(B2).dtmf == ["7"]
    assert run.live(A2).dtmf == []
    run.until(830)  # uuid_kill A2: HANGUP(A2), then UNBRIDGE on A1
    assert run.by_sequence[829] == [ChannelHungUp(B1, A2, "NORMAL_CLEARING")]
    assert run.by_sequence[830] == [ChannelUnbridged(B1, A1, A2)]
    assert (a1.bridged_to, a2.bridged_to) == ("", "")
    assert call.bridges == []
    run.until()
    assert run.of_type(CallEnded) == [CallEnded(B1, call)]
    assert call.ended
    assert call.hangup_cause == "NORMAL_CLEARING"
    assert call.ended_us == 1795216841107755
    assert [c.uuid for c in run.of_type(ChannelHungUp)] == [A2, A1, B1, B2]
    assert run.removed(A1).hangup_us == 1795216841087757


# -- playback queue: done vs break, last_offset_pos ----------------------------------------------------------


def test_playback_statuses_and_positions() -> None:
    run = Run(fs_events(PLAYBACK)).until()
    a = "/srv/tone_a_440hz_1500msxxxx.wav"
    b = "/srv/tone_b_880hz_1500msxxxx.wav"
    c = "/srv/tone_c_660hz_4000msxxxx.r16"
    got = [(p.file_path, p.status, p.last_offset_pos) for p in run.of_type(PlaybackChanged) if p.uuid == PB_A]
    assert got == [
        (a, "playing", 0), (a, "done", 12000), (b, "playing", 0), (b, "done", 12000),  # EXP1: queued in order
        (c, "playing", 0), (c, "break", 8160), (a, "playing", 0), (a, "done", 12000),  # EXP2: uuid_break
        (c, "playing", 0), (c, "break", 8160),  # EXP3: uuid_break all flushes the queue silently
    ]  # fmt: skip
    final = run.removed(PB_A)
    assert final.last_playback == PlaybackResult(c, "break", 8160)
    assert final.playing == ""
    assert final.parked is False  # CHANNEL_PARK was not subscribed: park() alone does not mark it parked
    assert run.removed(PB_B).last_playback == PlaybackResult(
        "tone_stream://%(1000,0,440);loops=-1", "done", 129600
    )
    assert run.ended(PB_B).legs == [PB_B, PB_A]


def test_playing_file_while_a_broadcast_runs() -> None:
    run = Run(fs_events(PLAYBACK)).until(918)
    ch = run.live(PB_A)
    assert ch.playing == "/srv/tone_c_660hz_4000msxxxx.r16"
    assert [app for app, _ in ch.applications] == ["park", "playback"]
    run.until(921)
    assert ch.playing == ""
    assert ch.application == "park"


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
