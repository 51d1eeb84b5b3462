"""Call model fed with the recorded FreeSWITCH events (shared/fixtures/freeswitch): the plain and json
sessions, DTMF and ``uuid_bridge``, and the playback queue.

The events come from the captures through our real ``EslParser`` (odd chunk sizes) and ``decode_event``.
Values asserted (uuids, timestamps, causes, positions) are the ones in the captures.
"""

from __future__ import annotations

from controller.calls.changes import (
    AudioStreamChanged,
    AudioStreamMessage,
    CallEnded,
    CallMerged,
    CallStarted,
    ChannelAdded,
    ChannelAnswered,
    ChannelBridged,
    ChannelHungUp,
    ChannelParked,
    ChannelRemoved,
    ChannelUnbridged,
    ChannelUnparked,
    ChannelUpdated,
    DtmfReceived,
    PlaybackChanged,
)
from controller.calls.model import AudioStreamState, ChannelState, PlaybackResult
from tests.unit.callmodelkit import (
    A1,
    A2,
    B1,
    B2,
    DTMF_BRIDGE,
    INBOUND,
    PB_A,
    PB_B,
    PLAYBACK,
    S1_A,
    S1_B,
    S2_A,
    S2_B,
    SIPP,
    Run,
)
from tests.unit.fixture_events import fs_events


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
        AudioStreamMessage(  # the capture's server sent a transcript of another shape: refused, kept
            S1_A, S1_A, "json", '{"type": "transcript", "text": "hello from ws server"}', None,
            "transcript.turn: a whole number from 0",
        )
    ]  # fmt: skip
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
