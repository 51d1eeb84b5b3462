"""The call model: channels keyed by uuid, grouped into calls, built only from FreeSWITCH events.

``CallModel.apply(node, event)`` is the only writer. It is pure and synchronous (no I/O, no clock except for
channels lost during a reconnect) and runs on the hot path of every event, so it reads headers from the
decoded dict directly and never copies them. It returns the list of ``CallChange`` records describing what
changed, for the router, playback, CDR store and the API event feed. API handlers never write the model: they
send commands, and the events those cause update it.

Event semantics relied upon (shared/fixtures/freeswitch, FreeSWITCH 1.10.12):

* ``Answer-State`` (ringing / early / answered / hangup) is the channel's state on every channel event;
  ``Channel-Call-State`` lags one event behind (CHANNEL_ANSWER still says EARLY), so it only tells NEW
  (``DOWN``) from RINGING.
* Events arrive for channels never announced by CHANNEL_CREATE (subscriptions without it, or opened
  mid-call: esl_dtmf_and_bridge.txt, esl_playback_queue.txt); the first event creates the channel.
* CHANNEL_UNPARK, PLAYBACK_STOP and CHANNEL_EXECUTE_COMPLETE arrive after CHANNEL_HANGUP; CHANNEL_DESTROY
  after CHANNEL_HANGUP_COMPLETE. Once a channel completed, later events for it are ignored.
* ``Event-Sequence`` is not monotonic in arrival order (different threads fire events), so it is recorded but
  never used to order or drop events.

Exception tree: none. ``apply`` does not raise on odd events; a malformed mod_audio_stream body is kept as
text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from controller.calls.changes import (
    AudioStreamChanged,
    AudioStreamMessage,
    CallChange,
    ChannelHeld,
    ChannelParked,
    ChannelUnparked,
    ChannelUpdated,
    DtmfReceived,
    PlaybackChanged,
    RecordingChanged,
)
from controller.calls.channel import AudioStreamState, Call, Channel, ChannelState, PlaybackResult
from controller.calls.headers import (
    close_info,
    derive_state,
    hangup_cause,
    header_int,
    header_str,
    raw_headers,
    read_profile,
    read_variables,
)
from controller.calls.registry import CallRegistry
from controller.calls.resync import apply_resync
from controller.freeswitch.events import (
    AudioStreamConnect,
    AudioStreamDisconnect,
    AudioStreamError,
    AudioStreamEvent,
    AudioStreamJson,
    AudioStreamPlay,
    ChannelAnswer,
    ChannelBridge,
    ChannelCreate,
    ChannelDestroy,
    ChannelEvent,
    ChannelExecute,
    ChannelExecuteComplete,
    ChannelHangup,
    ChannelHangupComplete,
    ChannelPark,
    ChannelProgress,
    ChannelProgressMedia,
    ChannelsResync,
    ChannelUnbridge,
    ChannelUnpark,
    Dtmf,
    Event,
    EventHeaders,
    OtherEvent,
    PlaybackStart,
    PlaybackStop,
)
from switchyard.messages import parse_worker_message

__all__ = ["AudioStreamState", "Call", "CallModel", "Channel", "ChannelState", "PlaybackResult"]

MAX_APPLICATIONS: Final = 8
"""Depth of the running-application stack kept per channel (uuid_bridge never reports completion)."""

MAX_DTMF: Final = 256
"""Digits kept per channel (the oldest are dropped)."""

_Handler = Callable[[Channel, Any, Mapping[str, Any], list[CallChange]], None]
_OtherHandler = Callable[[Channel, str, Mapping[str, Any], list[CallChange]], None]


class CallModel(CallRegistry):
    """Channels and calls of every FreeSWITCH node, driven only by events.

    Args:
        recent_capacity: How many ended calls to remember so late events cannot resurrect them.
        clock: Wall clock in seconds (injectable), used only for channels lost during a reconnect.
    """

    def __init__(self, *, recent_capacity: int = 1000, clock: Callable[[], float] = time.time) -> None:
        super().__init__(recent_capacity=recent_capacity, clock=clock)
        self._handlers: dict[type, _Handler] = {
            ChannelCreate: self._on_nothing,
            ChannelProgress: self._on_progress,
            ChannelProgressMedia: self._on_progress_media,
            ChannelAnswer: self._on_answer,
            ChannelPark: self._on_park,
            ChannelUnpark: self._on_unpark,
            ChannelBridge: self._on_bridge,
            ChannelUnbridge: self._on_unbridge,
            ChannelExecute: self._on_execute,
            ChannelExecuteComplete: self._on_execute_complete,
            Dtmf: self._on_dtmf,
            ChannelHangup: self._on_hangup,
            ChannelHangupComplete: self._on_hangup_complete,
            ChannelDestroy: self._on_hangup_complete,
            PlaybackStart: self._on_playback_start,
            PlaybackStop: self._on_playback_stop,
            AudioStreamConnect: self._on_stream_connect,
            AudioStreamDisconnect: self._on_stream_closed,
            AudioStreamError: self._on_stream_closed,
            AudioStreamJson: self._on_stream_json,
            AudioStreamPlay: self._on_stream_play,
        }
        self._other_handlers: dict[str, _OtherHandler] = {
            "MEDIA_BUG_STOP": self._on_bug_stop,
            "CHANNEL_HOLD": self._on_hold,
            "CHANNEL_UNHOLD": self._on_hold,
            "RECORD_START": self._on_record,
            "RECORD_STOP": self._on_record,
        }

    def apply(self, node: str, event: Event | ChannelsResync) -> list[CallChange]:
        """Apply one event from ``node`` and return what changed (empty when nothing did).

        Args:
            node: Name of the FreeSWITCH node the event came from.
            event: A decoded event, or the adapter's ``ChannelsResync`` after a (re)connect.

        Returns:
            The changes, in the order they happened.
        """
        handler = self._handlers.get(type(event))
        if handler is None:
            if type(event) is ChannelsResync:
                return apply_resync(self, event)
            if type(event) is OtherEvent:
                return self._on_other(event)
            return []
        ev = cast(ChannelEvent, event)
        uuid = ev.uuid
        changes: list[CallChange] = []
        headers = ev.headers
        # The dict behind EventHeaders: its Mapping.get costs ~16 dict lookups (see raw_headers).
        raw = headers._data if type(headers) is EventHeaders else headers
        ch = self._channels.get(uuid)
        if ch is None:
            if not uuid or uuid in self._gone:
                return changes
            ch = self._create(node, ev, raw, changes)
        else:
            self._refresh(ch, ev, raw, changes)
        handler(ch, ev, raw, changes)
        return changes

    # -- every channel event --------------------------------------------------------------------------------

    def _create(
        self, node: str, ev: ChannelEvent, raw: Mapping[str, Any], changes: list[CallChange]
    ) -> Channel:
        """A channel first seen in ``ev`` (CHANNEL_CREATE or any later event): build it from the headers."""
        ts = header_int(raw.get("Event-Date-Timestamp"))
        state = derive_state(ev.answer_state, ev.call_state)
        ch = Channel(
            uuid=ev.uuid, node=node, call_id="", name=ev.channel_name, direction=ev.direction, state=state,
            created_us=header_int(raw.get("Caller-Channel-Created-Time")) or ts,
            answered_us=header_int(raw.get("Caller-Channel-Answered-Time")), headers=ev.headers,
            answer_state=ev.answer_state, call_state=ev.call_state,
            loopback_peer=header_str(raw, "variable_other_loopback_leg_uuid"),
            sequence=header_int(raw.get("Event-Sequence")),
        )  # fmt: skip
        if state is ChannelState.ANSWERED and not ch.answered_us:
            ch.answered_us = ts
        if state is ChannelState.HANGUP:
            ch.hangup_us = ts
            ch.hangup_cause = hangup_cause(raw)
        read_profile(ch, raw)
        read_variables(ch, raw)
        other = header_str(raw, "Other-Leg-Unique-ID")
        self._add(ch, (ch.loopback_peer, header_str(raw, "variable_originator"), other), changes)
        peer = self._channels.get(other)
        if peer is not None and peer.bridged_to == ch.uuid:
            ch.bridged_to = other
        return ch

    def _refresh(
        self, ch: Channel, ev: ChannelEvent, raw: Mapping[str, Any], changes: list[CallChange]
    ) -> None:
        """What any event tells about a known channel: headers, sequence, state, variables, loopback peer."""
        ch.headers = ev.headers
        ch.sequence = header_int(raw.get("Event-Sequence"))
        if ev.answer_state != ch.answer_state or ev.call_state != ch.call_state:
            ch.answer_state = ev.answer_state
            ch.call_state = ev.call_state
            state = derive_state(ev.answer_state, ev.call_state)
            if state > ch.state:
                ts = header_int(raw.get("Event-Date-Timestamp"))
                answered = header_int(raw.get("Caller-Channel-Answered-Time"))
                self._advance(ch, state, changes, ts, cause=hangup_cause(raw), answered_us=answered)
        changed = read_variables(ch, raw)
        if changed is not None:
            changes.append(ChannelUpdated(ch.call_id, ch.uuid, tuple(changed)))
        if not ch.loopback_peer:
            peer_uuid = raw.get("variable_other_loopback_leg_uuid")
            if peer_uuid and type(peer_uuid) is str:
                self._link_loopback(ch, peer_uuid, changes)

    def _link_loopback(self, ch: Channel, peer_uuid: str, changes: list[CallChange]) -> None:
        """A loopback pair recognised late (e.g. legs added by a resync): one call, the older one."""
        ch.loopback_peer = peer_uuid
        peer = self._channels.get(peer_uuid)
        if peer is None or peer.call_id == ch.call_id:
            return
        mine, theirs = self._calls[ch.call_id], self._calls[peer.call_id]
        if not mine.created_us or 0 < theirs.created_us <= mine.created_us:
            self._merge(theirs, mine, changes)
        else:
            self._merge(mine, theirs, changes)

    # -- per event type -------------------------------------------------------------------------------------

    def _on_nothing(self, ch: Channel, ev: ChannelEvent, raw: Mapping[str, Any], out: list[Any]) -> None:
        """CHANNEL_CREATE: creation and refresh did everything."""

    def _on_progress(
        self, ch: Channel, ev: ChannelEvent, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        self._advance(ch, ChannelState.RINGING, out, header_int(raw.get("Event-Date-Timestamp")))

    def _on_progress_media(
        self, ch: Channel, ev: ChannelEvent, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        self._advance(ch, ChannelState.EARLY, out, header_int(raw.get("Event-Date-Timestamp")))

    def _on_answer(
        self, ch: Channel, ev: ChannelEvent, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        read_profile(ch, raw)
        ts = header_int(raw.get("Event-Date-Timestamp"))
        answered = header_int(raw.get("Caller-Channel-Answered-Time"))
        self._advance(ch, ChannelState.ANSWERED, out, ts, answered_us=answered)

    def _on_park(self, ch: Channel, ev: ChannelEvent, raw: Mapping[str, Any], out: list[CallChange]) -> None:
        if ch.state is ChannelState.HANGUP:
            return
        read_profile(ch, raw)
        if not ch.parked:
            ch.parked = True
            out.append(ChannelParked(ch.call_id, ch.uuid))

    def _on_unpark(
        self, ch: Channel, ev: ChannelEvent, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        if ch.parked:
            ch.parked = False
            out.append(ChannelUnparked(ch.call_id, ch.uuid))

    def _on_bridge(
        self, ch: Channel, ev: ChannelBridge, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        if ev.other_uuid and ch.state is not ChannelState.HANGUP:
            self._bridge(ch, ev.other_uuid, out)

    def _on_unbridge(
        self, ch: Channel, ev: ChannelUnbridge, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        self._unbridge(ch, ev.other_uuid, out)

    def _on_execute(
        self, ch: Channel, ev: ChannelExecute, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        apps = ch.applications
        apps.append((ev.application, ev.application_data))
        if len(apps) > MAX_APPLICATIONS:
            del apps[0]

    def _on_execute_complete(
        self, ch: Channel, ev: ChannelExecuteComplete, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        apps = ch.applications
        for i in range(len(apps) - 1, -1, -1):
            if apps[i][0] == ev.application:
                del apps[i]
                return

    def _on_dtmf(self, ch: Channel, ev: Dtmf, raw: Mapping[str, Any], out: list[CallChange]) -> None:
        digits = ch.dtmf
        digits.append(ev.digit)
        if len(digits) > MAX_DTMF:
            del digits[0]
        out.append(DtmfReceived(ch.call_id, ch.uuid, ev.digit, ev.source))

    def _on_hangup(
        self, ch: Channel, ev: ChannelHangup, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        self._advance(
            ch, ChannelState.HANGUP, out, header_int(raw.get("Event-Date-Timestamp")), cause=ev.cause
        )
        self._set_cause(ch, ev.cause)

    def _on_hangup_complete(
        self, ch: Channel, ev: ChannelEvent, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        """CHANNEL_HANGUP_COMPLETE (or CHANNEL_DESTROY when that was missed): the channel is done."""
        ts = header_int(raw.get("Caller-Channel-Hangup-Time")) or header_int(raw.get("Event-Date-Timestamp"))
        self._complete(ch, out, ts, hangup_cause(raw))

    def _on_playback_start(
        self, ch: Channel, ev: PlaybackStart, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        ch.playing = ev.file_path
        out.append(PlaybackChanged(ch.call_id, ch.uuid, ev.file_path, "playing", 0))

    def _on_playback_stop(
        self, ch: Channel, ev: PlaybackStop, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        if ch.playing == ev.file_path:
            ch.playing = ""
        ch.last_playback = PlaybackResult(ev.file_path, ev.status, ev.last_offset_pos)
        out.append(PlaybackChanged(ch.call_id, ch.uuid, ev.file_path, ev.status, ev.last_offset_pos))

    def _on_stream_connect(
        self, ch: Channel, ev: AudioStreamConnect, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        self._set_stream(ch, AudioStreamState.CONNECTED, 0, "", out)

    def _on_stream_closed(
        self, ch: Channel, ev: AudioStreamEvent, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        state = AudioStreamState.FAILED if type(ev) is AudioStreamError else AudioStreamState.DISCONNECTED
        code, reason = close_info(ev)
        self._set_stream(ch, state, code, reason, out)

    def _on_stream_json(
        self, ch: Channel, ev: AudioStreamJson, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        message, problem = parse_worker_message(ev.body or "")
        out.append(AudioStreamMessage(ch.call_id, ch.uuid, "json", ev.body or "", message, problem))

    def _on_stream_play(
        self, ch: Channel, ev: AudioStreamPlay, raw: Mapping[str, Any], out: list[CallChange]
    ) -> None:
        out.append(AudioStreamMessage(ch.call_id, ch.uuid, "play", ev.file))

    def _on_other(self, event: OtherEvent) -> list[CallChange]:
        """Hold, recordings, and MEDIA_BUG_STOP of the audio_stream bug (stopped locally or hung up)."""
        handler = self._other_handlers.get(event.name)
        if handler is None:
            return []
        raw = raw_headers(event.headers)
        ch = self._channels.get(header_str(raw, "Unique-ID"))
        changes: list[CallChange] = []
        if ch is not None:
            handler(ch, event.name, raw, changes)
        return changes

    def _on_hold(self, ch: Channel, name: str, raw: Mapping[str, Any], out: list[CallChange]) -> None:
        held = name == "CHANNEL_HOLD"
        if ch.held != held:
            ch.held = held
            out.append(ChannelHeld(ch.call_id, ch.uuid, held))

    def _on_record(self, ch: Channel, name: str, raw: Mapping[str, Any], out: list[CallChange]) -> None:
        path = header_str(raw, "Record-File-Path")
        recording = name == "RECORD_START"
        if recording and path not in ch.recordings:
            ch.recordings.append(path)
        elif not recording and path in ch.recordings:
            ch.recordings.remove(path)
        out.append(RecordingChanged(ch.call_id, ch.uuid, path, recording))

    def _on_bug_stop(self, ch: Channel, name: str, raw: Mapping[str, Any], out: list[CallChange]) -> None:
        if raw.get("Media-Bug-Function") == "audio_stream" and ch.audio_stream is not AudioStreamState.FAILED:
            self._set_stream(ch, AudioStreamState.STOPPED, ch.audio_stream_code, ch.audio_stream_reason, out)

    @staticmethod
    def _set_stream(
        ch: Channel, state: AudioStreamState, code: int, reason: str, out: list[CallChange]
    ) -> None:
        if state is ch.audio_stream and code == ch.audio_stream_code and reason == ch.audio_stream_reason:
            return
        ch.audio_stream = state
        ch.audio_stream_code = code
        ch.audio_stream_reason = reason
        out.append(AudioStreamChanged(ch.call_id, ch.uuid, state, code, reason))
