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

Exceptions::

    CallError              base
    ├── UnknownCall        no such call or leg (HTTP 404)
    ├── CallConflict       the call is in a state that forbids the operation, e.g. already ended (409)
    ├── CommandRefused     FreeSWITCH answered -ERR (409, with its text)
    ├── NotConfirmed       no confirmation before the deadline (504)
    └── NodeUnavailable    the node's ESL connection is down (503)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

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
from controller.calls.waiters import ChangeWaiters, ChannelGone, Predicate
from controller.freeswitch.connection import CommandError
from controller.freeswitch.protocol import EslError

__all__ = [
    "CallConflict",
    "CallControl",
    "CallError",
    "CommandRefused",
    "EslNode",
    "NodeUnavailable",
    "NotConfirmed",
    "UnknownCall",
]


class CallError(Exception):
    """Base of call-control errors; ``field`` names the request field at fault ('' for none)."""

    def __init__(self, reason: str, field: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class UnknownCall(CallError):
    """No such call or leg."""


class CallConflict(CallError):
    """The call's state forbids the operation."""


class CommandRefused(CallError):
    """FreeSWITCH refused the command."""


class NotConfirmed(CallError):
    """FreeSWITCH did not confirm in time."""


class NodeUnavailable(CallError):
    """The node is not connected."""


class EslNode(Protocol):
    """What control needs of a FreeSWITCH node (``FreeSwitchNode``)."""

    name: str

    async def api(self, command: str, timeout: float | None = None, *, check: bool = True) -> str: ...

    async def bgapi(self, command: str, timeout: float | None = None, *, check: bool = True) -> str: ...


class CallControl:
    """Call-control operations on the calls of the model, through the nodes' ESL connections."""

    def __init__(
        self,
        model: CallModel,
        nodes: Mapping[str, EslNode],
        waiters: ChangeWaiters,
        confirm_timeout: float = 5.0,
    ) -> None:
        self.model = model
        self.nodes = nodes
        self.waiters = waiters
        self.confirm_timeout = confirm_timeout

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

    async def run(self, node: str, command: str, timeout: float | None = None) -> str:
        """One api command; -ERR becomes ``CommandRefused``, a lost connection ``NodeUnavailable``."""
        esl = self.nodes.get(node)
        if esl is None:
            raise NodeUnavailable(f"unknown node {node}", "node")
        try:
            return await esl.api(command, timeout or self.confirm_timeout)
        except CommandError as exc:
            name = command.split(" ", 1)[0]
            raise CommandRefused(f"FreeSWITCH refused {name}: {exc.reply.strip()}") from exc
        except EslError as exc:
            raise NodeUnavailable(f"node {node}: {exc}") from exc

    async def confirmed(
        self, ch: Channel, command: str, predicate: Predicate, legs: tuple[str, ...] = ()
    ) -> ChannelChange:
        """Send ``command`` on ``ch``'s node and wait for the change ``predicate`` accepts."""
        async with self._expect(legs or (ch.uuid,), predicate) as change:
            await self.run(ch.node, command)
            return await change

    @contextlib.asynccontextmanager
    async def _expect(
        self, legs: tuple[str, ...], predicate: Predicate
    ) -> AsyncIterator[asyncio.Future[ChannelChange]]:
        future = self.waiters.expect(legs, predicate)
        try:
            async with asyncio.timeout(self.confirm_timeout):
                yield future
        except TimeoutError as exc:
            raise NotConfirmed(f"FreeSWITCH did not confirm within {self.confirm_timeout}s") from exc
        except ChannelGone as exc:
            raise CallConflict(str(exc)) from exc
        finally:
            future.cancel()

    # ---- operations ------------------------------------------------------------------------------------

    async def answer(self, ch: Channel) -> None:
        """``uuid_answer``; confirmed by CHANNEL_ANSWER."""
        if ch.answered:
            raise CallConflict(f"leg {ch.uuid} is already answered")
        await self.confirmed(ch, f"uuid_answer {ch.uuid}", lambda c: isinstance(c, ChannelAnswered))

    async def hangup(self, ch: Channel, cause: str = "NORMAL_CLEARING") -> None:
        """``uuid_kill <uuid> <cause>``; confirmed by CHANNEL_HANGUP."""
        self._alive(ch)
        await self.confirmed(
            ch, f"uuid_kill {ch.uuid} {cause}", lambda c: isinstance(c, ChannelHungUp | ChannelRemoved)
        )

    async def park(self, ch: Channel) -> None:
        """``uuid_park``; confirmed by CHANNEL_PARK."""
        if ch.parked:
            raise CallConflict(f"leg {ch.uuid} is already parked")
        await self.confirmed(self._alive(ch), f"uuid_park {ch.uuid}", lambda c: isinstance(c, ChannelParked))

    async def hold(self, ch: Channel, held: bool) -> None:
        """``uuid_hold [off] <uuid>``; confirmed by CHANNEL_HOLD / CHANNEL_UNHOLD."""
        if ch.held == held:
            raise CallConflict(f"leg {ch.uuid} is {'already' if held else 'not'} on hold")
        if not ch.answered:
            raise CallConflict(f"leg {ch.uuid} is not answered")
        command = f"uuid_hold {ch.uuid}" if held else f"uuid_hold off {ch.uuid}"
        await self.confirmed(ch, command, lambda c: isinstance(c, ChannelHeld) and c.held == held)

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

        await self.confirmed(a, f"uuid_bridge {a.uuid} {b.uuid}", bridged, (a.uuid, b.uuid))

    async def transfer(self, ch: Channel, destination: str, context: str) -> None:
        """Blind transfer: ``uuid_transfer <uuid> <dest> XML <context>``; the dialplan runs again."""
        self._alive(ch)
        command = f"uuid_transfer {ch.uuid} {destination} XML {context}"
        if not (ch.parked or ch.bridged_to):
            await self.run(ch.node, command)
            return
        left = ChannelUnparked if ch.parked else ChannelUnbridged
        await self.confirmed(ch, command, lambda c: isinstance(c, left))

    async def send_dtmf(self, ch: Channel, digits: str) -> None:
        """``uuid_send_dtmf <uuid> <digits>``; confirmed by the reply (no event on the sending leg)."""
        await self.run(self._alive(ch).node, f"uuid_send_dtmf {ch.uuid} {digits}")

    async def play(self, ch: Channel, file: str) -> bool:
        """``uuid_broadcast <uuid> <file> aleg``; True once PLAYBACK_START came, False if queued."""
        self._alive(ch)
        command = f"uuid_broadcast {ch.uuid} {file} aleg"
        if ch.playing:
            await self.run(ch.node, command)  # FreeSWITCH queues it behind the current file
            return False
        await self.confirmed(ch, command, lambda c: _playback(c, file, started=True))
        return True

    async def play_to_end(self, ch: Channel, file: str, timeout: float = 60.0) -> None:
        """Play ``file`` and wait (up to ``timeout`` s) until it stopped, played out or broken."""
        ended = self.waiters.expect(ch.uuid, lambda c: _playback(c, file, started=False))
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
            ch, f"uuid_record {ch.uuid} start {path}", lambda c: _record_event(c, path, recording=True)
        )

    async def record_stop(self, ch: Channel) -> list[str]:
        """``uuid_record <uuid> stop all``; confirmed by RECORD_STOP of the last file. Returns the files."""
        paths = list(ch.recordings)
        if not paths:
            raise CallConflict(f"leg {ch.uuid} is not recording")
        await self.confirmed(
            ch, f"uuid_record {ch.uuid} stop all", lambda c: _record_event(c, paths[-1], recording=False)
        )
        return paths

    async def stream_start(self, ch: Channel, url: str, rate: int, metadata: str) -> None:
        """``uuid_audio_stream <uuid> start <url> mono <8k|16k> <metadata>``; confirmed by ``::connect``."""
        if ch.audio_stream in (AudioStreamState.CONNECTED, AudioStreamState.DISCONNECTED):
            raise CallConflict(f"leg {ch.uuid} already has an audio stream; stop it first")
        rate_arg = "16k" if rate == 16000 else "8k"
        change = await self.confirmed(
            self._alive(ch),
            f"uuid_audio_stream {ch.uuid} start {url} mono {rate_arg} {metadata}",
            lambda c: (
                isinstance(c, AudioStreamChanged)
                and c.state in (AudioStreamState.CONNECTED, AudioStreamState.FAILED)
            ),
        )
        if isinstance(change, AudioStreamChanged) and change.state is AudioStreamState.FAILED:
            raise CommandRefused(f"the stream did not connect: {change.code} {change.reason}", "url")

    async def stream_stop(self, ch: Channel) -> None:
        """``uuid_audio_stream <uuid> stop``; confirmed by MEDIA_BUG_STOP of the audio_stream bug."""
        if ch.audio_stream not in (AudioStreamState.CONNECTED, AudioStreamState.DISCONNECTED):
            raise CallConflict(f"leg {ch.uuid} has no audio stream")
        await self.confirmed(
            ch,
            f"uuid_audio_stream {ch.uuid} stop",
            lambda c: isinstance(c, AudioStreamChanged) and c.state is AudioStreamState.STOPPED,
        )


def _record_event(change: ChannelChange, path: str, *, recording: bool) -> bool:
    return isinstance(change, RecordingChanged) and change.path == path and change.recording == recording


def _playback(change: ChannelChange, file: str, *, started: bool) -> bool:
    return (
        isinstance(change, PlaybackChanged)
        and change.file_path == file
        and (change.status == "playing") == started
    )
