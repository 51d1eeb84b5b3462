"""Call control: one method per operation, each returning only once FreeSWITCH confirmed it.

The commands are mod_commands' ``uuid_*`` api commands. A method first checks the call model (unknown leg,
conflicting state), registers the waiter for the confirming change, sends the command, then waits for the
reply and the change under one deadline (``calls.deadlines.confirm``). The model is never written here: the
events the command causes update it.

Confirmation per operation (reply = the api reply was ``+OK``; event = the change named)::

    answer      event ChannelAnswered            hangup   event ChannelHungUp
    park        event ChannelParked              hold     event ChannelHeld(held)
    bridge      event ChannelBridged (either leg) transfer reply, then ChannelUnparked/Unbridged if it was
    dtmf        reply                                      parked/bridged
    play        reply, then PlaybackChanged(playing) of the file unless the leg is playing something else
    record      event RecordingChanged of the file   stream  event AudioStreamChanged connected / stopped
    originate   the background job's ``+OK <uuid>`` (the far end answered); when that is lost with the ESL
                connection or late, the leg's events (``controller.calls.originations``)

Every command comes from ``controller.freeswitch.commands`` and goes through ``CommandSender``; its
exceptions (``controller.calls.sender``: ``CallError`` and its subclasses) are the ones raised here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from controller.calls.changes import (
    AudioStreamChanged,
    ChannelAnswered,
    ChannelBridged,
    ChannelChange,
    ChannelHeld,
    ChannelHungUp,
    ChannelParked,
    ChannelRemoved,
    ChannelUnbridged,
    ChannelUnparked,
    PlaybackChanged,
    RecordingChanged,
)
from controller.calls.channel import AudioStreamState, Call, Channel, ChannelState
from controller.calls.model import CallModel
from controller.calls.originate import Originate, originate
from controller.calls.originations import Origination, Originations
from controller.calls.sender import CallConflict, CommandRefused, CommandSender, UnknownCall
from controller.calls.waiters import ChannelGone, Predicate
from controller.freeswitch import commands as fc
from controller.freeswitch.commands import Command

__all__ = ["CallControl", "stream_answered"]


class CallControl:
    """Call-control operations on the calls of the model, through the nodes' ESL connections."""

    def __init__(
        self,
        model: CallModel,
        sender: CommandSender,
        confirm_timeout: float = 5.0,
        *,
        sip_domain: str | None = None,
        originate_margin: float = 5.0,
        originations: Originations | None = None,
    ) -> None:
        self.model = model
        self.sender = sender
        self.originations = originations if originations is not None else Originations(sender, model.channel)
        self.confirm_timeout = confirm_timeout
        self.sip_domain = sip_domain
        self.originate_margin = originate_margin

    def nodes(self) -> dict[str, bool]:
        """Every configured node and whether it is connected."""
        return self.sender.connected()

    # ---- lookups ---------------------------------------------------------------------------------------

    def call(self, call_id: str) -> Call:
        """The live call ``call_id``.

        Raises:
            CallConflict: the call has ended.
            UnknownCall: no such call.
        """
        call = self.model.call(call_id)
        if call is not None:
            return call
        if self.model.ended_call(call_id) is not None:
            raise CallConflict(f"call {call_id} has ended")
        raise UnknownCall(f"no call {call_id}", "id")

    def leg(self, call_id: str, uuid: str | None = None) -> Channel:
        """A live leg of the call: ``uuid``, else the first leg still up.

        Raises:
            UnknownCall, CallConflict: see ``call``; also for a ``uuid`` that is not a live leg of the call.
        """
        call = self.call(call_id)
        if uuid is not None:
            ch = self.model.channel(uuid)
            if ch is None or ch.call_id != call.id:
                raise UnknownCall(f"call {call_id} has no live leg {uuid}", "leg")
            return self._alive(ch)
        for leg in call.legs:
            ch = self.model.channel(leg)
            if ch is not None and ch.state is not ChannelState.HANGUP:
                return ch
        raise CallConflict(f"call {call_id} is hanging up")

    @staticmethod
    def _alive(ch: Channel) -> Channel:
        if ch.state is ChannelState.HANGUP:
            raise CallConflict(f"leg {ch.uuid} is hanging up")
        return ch

    # ---- the mechanism ---------------------------------------------------------------------------------

    async def run(self, node: str, command: Command) -> str:
        """One command, its reply within the confirmation deadline (see ``CommandSender.run``)."""
        return await self.sender.run(node, command, self.confirm_timeout)

    async def confirmed(
        self, ch: Channel, command: Command, predicate: Predicate, legs: tuple[str, ...] = ()
    ) -> ChannelChange:
        """Send ``command`` on ``ch``'s node and wait for the change ``predicate`` accepts."""
        legs = legs or (ch.uuid,)
        return await self.sender.confirmed(ch.node, command, legs, predicate, self.confirm_timeout)

    # ---- operations ------------------------------------------------------------------------------------

    async def originate(self, request: Originate) -> Origination:
        """Place an outbound call (``controller.calls.originate``): answered, or pending when FreeSWITCH's
        answer was lost; its ``uuid`` is the call id."""
        return await originate(
            self.sender, self.originations, request, self.sip_domain, self.originate_margin
        )

    def origination(self, call_id: str) -> Origination | None:
        """The originate that placed ``call_id``, while remembered."""
        return self.originations.get(call_id)

    async def answer(self, ch: Channel) -> None:
        """``uuid_answer``; confirmed by CHANNEL_ANSWER."""
        if ch.answered:
            raise CallConflict(f"leg {ch.uuid} is already answered")
        await self.confirmed(ch, fc.answer(ch.uuid), lambda c: isinstance(c, ChannelAnswered))

    async def hangup(self, ch: Channel, cause: str = "NORMAL_CLEARING") -> None:
        """``uuid_kill <uuid> <cause>``; confirmed by CHANNEL_HANGUP."""
        self._alive(ch)
        await self.confirmed(
            ch, fc.kill(ch.uuid, cause), lambda c: isinstance(c, ChannelHungUp | ChannelRemoved)
        )

    async def park(self, ch: Channel) -> None:
        """``uuid_park``; confirmed by CHANNEL_PARK."""
        if ch.parked:
            raise CallConflict(f"leg {ch.uuid} is already parked")
        await self.confirmed(self._alive(ch), fc.park(ch.uuid), lambda c: isinstance(c, ChannelParked))

    async def hold(self, ch: Channel, held: bool) -> None:
        """``uuid_hold [off] <uuid>``; confirmed by CHANNEL_HOLD / CHANNEL_UNHOLD."""
        if ch.held == held:
            raise CallConflict(f"leg {ch.uuid} is {'already' if held else 'not'} on hold")
        if not ch.answered:
            raise CallConflict(f"leg {ch.uuid} is not answered")
        await self.confirmed(
            ch, fc.hold(ch.uuid, held), lambda c: isinstance(c, ChannelHeld) and c.held == held
        )

    async def bridge(self, a: Channel, b: Channel) -> None:
        """``uuid_bridge <a> <b>``; confirmed by CHANNEL_BRIDGE (FreeSWITCH fires it on one leg only)."""
        if a.uuid == b.uuid:
            raise CallConflict("cannot bridge a leg with itself", "other")
        for ch in (a, b):
            if self._alive(ch).bridged_to:
                raise CallConflict(f"leg {ch.uuid} is already bridged")
        pair = {a.uuid, b.uuid}

        def bridged(c: ChannelChange) -> bool:
            return isinstance(c, ChannelBridged) and {c.uuid, c.other_uuid} == pair

        await self.confirmed(a, fc.bridge(a.uuid, b.uuid), bridged, (a.uuid, b.uuid))

    async def transfer(self, ch: Channel, destination: str, context: str) -> None:
        """Blind transfer: ``uuid_transfer <uuid> <dest> XML <context>``; the dialplan runs again."""
        self._alive(ch)
        command = fc.transfer(ch.uuid, destination, context)
        if not (ch.parked or ch.bridged_to):
            await self.run(ch.node, command)
            return
        left = ChannelUnparked if ch.parked else ChannelUnbridged
        await self.confirmed(ch, command, lambda c: isinstance(c, left))

    async def transfer_inline(self, ch: Channel, apps: Sequence[tuple[str, str]]) -> None:
        """``uuid_transfer <uuid> <app[:arg],...> inline``: the leg runs ``apps``; confirmed by the reply."""
        await self.run(ch.node, fc.transfer_inline(ch.uuid, apps))

    async def send_dtmf(self, ch: Channel, digits: str) -> None:
        """``uuid_send_dtmf <uuid> <digits>``; confirmed by the reply (no event on the sending leg)."""
        await self.run(self._alive(ch).node, fc.send_dtmf(ch.uuid, digits))

    async def play(self, ch: Channel, file: str) -> bool:
        """``uuid_broadcast <uuid> <file> aleg``; True once PLAYBACK_START came, False if queued."""
        self._alive(ch)
        command = fc.broadcast(ch.uuid, file)
        if ch.playing:
            await self.run(ch.node, command)  # FreeSWITCH queues it behind the current file
            return False
        await self.confirmed(ch, command, lambda c: _playback(c, file, started=True))
        return True

    async def play_to_end(self, ch: Channel, file: str, timeout: float = 60.0) -> None:
        """Play ``file`` and wait (up to ``timeout`` s) until it stopped, played out or broken."""
        ended = self.sender.expect(ch.uuid, lambda c: _playback(c, file, started=False))
        try:
            await self.play(ch, file)
            async with asyncio.timeout(timeout):
                await ended
        except (TimeoutError, ChannelGone):
            pass  # hung up or too long: the caller goes on either way
        finally:
            ended.cancel()

    async def record_start(self, ch: Channel, path: str) -> None:
        """``uuid_record <uuid> start <path>``; confirmed by RECORD_START."""
        if path in self._alive(ch).recordings:
            raise CallConflict(f"leg {ch.uuid} is already recording {path}")
        await self.confirmed(
            ch, fc.record_start(ch.uuid, path), lambda c: _record_event(c, path, recording=True)
        )

    async def record_stop(self, ch: Channel) -> list[str]:
        """``uuid_record <uuid> stop all``; confirmed by RECORD_STOP of the last file. Returns the files."""
        paths = list(ch.recordings)
        if not paths:
            raise CallConflict(f"leg {ch.uuid} is not recording")
        await self.confirmed(
            ch, fc.record_stop_all(ch.uuid), lambda c: _record_event(c, paths[-1], recording=False)
        )
        return paths

    async def stream_start(self, ch: Channel, url: str, rate: int, metadata: str) -> None:
        """``uuid_audio_stream <uuid> start <url> mono <8k|16k> <metadata>``; confirmed by ``::connect``."""
        if ch.audio_stream in (AudioStreamState.CONNECTED, AudioStreamState.DISCONNECTED):
            raise CallConflict(f"leg {ch.uuid} already has an audio stream; stop it first")
        change = await self.confirmed(
            self._alive(ch), fc.stream_start(ch.uuid, url, rate, metadata), stream_answered
        )
        if isinstance(change, AudioStreamChanged) and change.state is AudioStreamState.FAILED:
            raise CommandRefused(f"the stream did not connect: {change.code} {change.reason}", "url")

    async def stream_stop(self, ch: Channel) -> None:
        """``uuid_audio_stream <uuid> stop``; confirmed by MEDIA_BUG_STOP of the audio_stream bug."""
        if ch.audio_stream not in (AudioStreamState.CONNECTED, AudioStreamState.DISCONNECTED):
            raise CallConflict(f"leg {ch.uuid} has no audio stream")
        await self.confirmed(
            ch,
            fc.stream_stop(ch.uuid),
            lambda c: isinstance(c, AudioStreamChanged) and c.state is AudioStreamState.STOPPED,
        )


def stream_answered(change: ChannelChange) -> bool:
    """A start's answer: ``::connect`` or ``::error`` (MEDIA_BUG_STOP of an earlier stop is none)."""
    return isinstance(change, AudioStreamChanged) and change.state in (
        AudioStreamState.CONNECTED,
        AudioStreamState.FAILED,
    )


def _record_event(change: ChannelChange, path: str, *, recording: bool) -> bool:
    return isinstance(change, RecordingChanged) and change.path == path and change.recording == recording


def _playback(change: ChannelChange, file: str, *, started: bool) -> bool:
    return (
        isinstance(change, PlaybackChanged)
        and change.file_path == file
        and (change.status == "playing") == started
    )
