"""Per-call playback of the worker's speech, barge-in, and the relay of playback/DTMF back to the worker.

mod_audio_stream writes each ``streamAudio`` the worker sends to a file and fires ``::play``; it does not
play it (audio_stream_wire.txt, section 5). So, per channel and in order:

* ``::play <file>``  → ``uuid_broadcast <uuid> <file> aleg``; FreeSWITCH queues broadcasts and plays them
  one after the other (esl_playback_queue.txt). Only a file mod_audio_stream wrote for that channel in the
  node's temp directory (controller.calls.speechfiles); any other is refused (logged, CDR
  ``extra.play_refused``) and not played: the event may be forged;
* PLAYBACK_START/STOP of such a file → ``uuid_audio_stream <uuid> send_text
  {"type":"playback","event":"start|stop","file":…,"status":…}`` (JSON without spaces: send_text takes
  only the first space-separated word);
* ``::json {"type":"barge_in"}`` → ``uuid_break <uuid> all`` (plain ``uuid_break`` stops only the current
  file and the next queued one plays; ``all`` drops the queue too, silently) and the queue is forgotten;
* DTMF on the leg → ``send_text {"type":"dtmf","digit":"5"}``;
* a streaming agent leg adopted after a restart → ``send_text {"type":"transcript_request"}``: the worker
  sends its turns again, and the CDR keeps those it lacks (the turns that ended while no controller ran);
* ``::json {"type":"action",…}`` (the agent asks for it) waits until everything queued before it has
  played, then: ``transfer`` → if the agent may send the call there (controller.calls.transfers; a
  refusal is logged and noted in the CDR, and nothing runs), the stream is stopped and ``uuid_transfer
  <uuid> <ext> XML <calls.context>-agent`` sends the call through the agent dialing class (routes only:
  it parks, and the router decides by the new destination; no trunk rule is there); ``hangup`` →
  ``uuid_kill <uuid> NORMAL_CLEARING``; ``dtmf`` → ``uuid_send_dtmf <uuid> <digits>``. The command builders
  (``controller.freeswitch.commands``) check the arguments; an action they refuse is not run;
* ``::json {"type":"refused",…}`` (the worker did not send a transfer outside the agent's patterns) is
  noted like the controller's own refusals, ``extra.transfer_refused_by`` telling whose (``worker`` or
  ``controller``); nothing else is done with it. At most MAX_NOTED refusals per channel are logged and
  noted: a flood of forged ones cannot fill the log or the CDR.

Commands of one channel run one at a time in arrival order (a per-channel queue) so broadcasts keep the
worker's order; a failed command is logged and the next one still runs. mod_audio_stream deletes its files
when the stream stops or the channel hangs up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from controller.calls.changes import (
    AudioStreamMessage,
    CallChange,
    ChannelAdopted,
    ChannelRemoved,
    DtmfReceived,
    PlaybackChanged,
)
from controller.calls.contexts import DialingContexts
from controller.calls.routes import RouteTable
from controller.calls.sender import CallError, CommandSender
from controller.calls.speechfiles import SpeechFiles, shown_path
from controller.calls.transfers import AgentTransfers
from controller.freeswitch import commands as fc
from controller.freeswitch.commands import Command, InvalidCommand
from switchyard.messages import (
    ActionRefused,
    AgentAction,
    BargeIn,
    ControlMessage,
    Dtmf,
    PlaybackEvent,
    TranscriptRequest,
    encode,
    printable_argument,
)
from switchyard.tasks import cancel_all

__all__ = ["AgentPlayback", "action_commands"]

log = logging.getLogger("switchyard.playback")


Refused = Callable[[str, str, str], None]
"""Told ``(uuid, what, value)`` of an action refused, e.g. ``(uuid, "transfer_refused", "19005550100")``
then ``(uuid, "transfer_refused_by", "worker")``."""
MAX_NOTED: Final = 16  # refusals logged and noted per channel


def action_commands(uuid: str, message: AgentAction, context: str) -> list[Command] | None:
    """The commands of an agent's action (None when the builders refuse its argument); a transfer goes to
    ``context`` (the agent dialing class)."""
    action, argument = message.action, message.argument
    try:
        if action == "hangup":
            return [fc.kill(uuid, "NORMAL_CLEARING")]
        if action == "transfer":
            return [fc.stream_stop(uuid), fc.transfer(uuid, argument, context)]
        if action == "dtmf":
            return [fc.send_dtmf(uuid, argument)]
    except InvalidCommand:
        pass
    return None


@dataclass
class _Channel:
    node: str
    uuid: str
    queued: deque[str] = field(default_factory=deque)  # broadcast, not yet started
    playing: str | None = None
    commands: asyncio.Queue[Command] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    actions: list[list[Command]] = field(default_factory=list)  # waiting for the queue to play out
    refusals: int = 0


class AgentPlayback:
    """Drives playback for every channel that streams to a worker; feed it the call model's changes.

    Args:
        sender: runs the commands.
        transfers: where each agent may transfer its call (default: nowhere; no routes, no users).
        on_refused: told of each refused action or file (the CDR keeps it).
        files: the nodes' temp directories, where ``::play`` files must be (default: /tmp everywhere).
    """

    def __init__(
        self,
        sender: CommandSender,
        transfers: AgentTransfers | None = None,
        on_refused: Refused | None = None,
        files: SpeechFiles | None = None,
    ) -> None:
        self._sender = sender
        self._transfers = transfers or AgentTransfers(DialingContexts("switchyard").agent, {}, RouteTable, ())
        self._on_refused = on_refused
        self._files = files or SpeechFiles()
        self._channels: dict[str, _Channel] = {}
        self._agents: dict[str, str] = {}

    def serving(self, uuid: str, agent: str) -> None:
        """``uuid`` streams to ``agent`` (the router's decision): its transfers follow that agent's rule."""
        self._agents[uuid] = agent

    def queued(self, uuid: str) -> tuple[str | None, list[str]]:
        """What plays on ``uuid`` now and what is queued behind it."""
        ch = self._channels.get(uuid)
        return (None, []) if ch is None else (ch.playing, list(ch.queued))

    def apply(self, node: str, change: CallChange) -> None:
        """React to one change (never blocks: commands go to the channel's queue)."""
        if isinstance(change, AudioStreamMessage):
            self._on_stream_message(node, change)
        elif isinstance(change, PlaybackChanged):
            self._on_playback(change)
        elif isinstance(change, DtmfReceived):
            ch = self._channels.get(change.uuid)
            if ch is not None:
                self._send_text(ch, Dtmf(change.digit))
        elif isinstance(change, ChannelAdopted) and change.route == "agent" and change.streaming:
            # The worker's turns that ended while no controller listened reach the CDR only this way.
            self._send_text(self._channel(node, change.uuid), TranscriptRequest())
        elif isinstance(change, ChannelRemoved):
            self._agents.pop(change.uuid, None)
            ch = self._channels.pop(change.uuid, None)
            if ch is not None and ch.task is not None:
                ch.task.cancel()

    def _channel(self, node: str, uuid: str) -> _Channel:
        ch = self._channels.get(uuid)
        if ch is None:
            ch = self._channels[uuid] = _Channel(node, uuid)
        return ch

    def _on_stream_message(self, node: str, change: AudioStreamMessage) -> None:
        ch = self._channel(node, change.uuid)
        if change.kind == "play":
            refusal = self._files.refusal(node, ch.uuid, change.data)
            if refusal is not None:
                self._refuse(ch, "play", shown_path(change.data), refusal)
                return
            try:
                command = fc.broadcast(ch.uuid, change.data)
            except InvalidCommand as exc:
                log.warning("%s: not played: %s", ch.uuid, exc)
                return
            ch.queued.append(change.data)
            self._command(ch, command)
            return
        message = change.message
        if change.problem:
            log.warning(
                "%s: the worker sent a malformed message (%s): %s", ch.uuid, change.problem, change.data[:200]
            )
        if isinstance(message, BargeIn):
            log.info("%s: barge-in, dropping %d queued file(s)", ch.uuid, len(ch.queued))
            ch.queued.clear()
            self._command(ch, fc.break_all(ch.uuid))
        elif isinstance(message, AgentAction):
            if message.action == "transfer" and not self._may_transfer(ch, message.argument):
                return
            commands = action_commands(ch.uuid, message, self._transfers.context)
            if commands is None:
                log.warning("%s: the worker asked for an invalid action: %s", ch.uuid, change.data[:200])
                return
            log.info("%s: agent action %s (after %d queued file(s))", ch.uuid, message.action, len(ch.queued))
            ch.actions.append(commands)
            self._act_when_quiet(ch)
        elif isinstance(message, ActionRefused):  # untrusted: noted, never acted on
            why = f"the worker refused it ({message.reason})"
            self._refuse(ch, message.action, message.argument, why, by="worker")

    def _may_transfer(self, ch: _Channel, destination: str) -> bool:
        agent = self._agents.get(ch.uuid, "")
        reason = self._transfers.refusal(agent, destination)
        if reason is None:
            return True
        self._refuse(ch, "transfer", printable_argument(destination), reason, by="controller")
        return False

    def _refuse(self, ch: _Channel, what: str, value: str, reason: str, by: str = "") -> None:
        """Log and note (``<what>_refused``, and ``<what>_refused_by`` when ``by``) a refusal on ``ch``:
        the first MAX_NOTED of the channel, then one line saying the rest are not kept."""
        ch.refusals += 1
        if ch.refusals > MAX_NOTED:
            if ch.refusals == MAX_NOTED + 1:
                log.warning("%s: over %d refusals; the next are neither logged nor noted", ch.uuid, MAX_NOTED)
            return
        log.warning("%s: %s %r refused: %s", ch.uuid, what, value, reason)
        if self._on_refused is not None:
            self._on_refused(ch.uuid, f"{what}_refused", value)
            if by:
                self._on_refused(ch.uuid, f"{what}_refused_by", by)

    def _act_when_quiet(self, ch: _Channel) -> None:
        """Run the agent's pending actions once nothing of its speech is queued or playing."""
        if ch.queued or ch.playing is not None:
            return
        for commands in ch.actions:
            for command in commands:
                self._command(ch, command)
        ch.actions.clear()

    def _on_playback(self, change: PlaybackChanged) -> None:
        ch = self._channels.get(change.uuid)
        if ch is None:
            return
        path = change.file_path
        if change.status == "playing":
            if path in ch.queued:
                ch.queued.remove(path)
            ch.playing = path
            self._send_text(ch, PlaybackEvent(True, path, None))
            return
        if ch.playing == path:
            ch.playing = None
        self._send_text(ch, PlaybackEvent(False, path, None, change.status))
        self._act_when_quiet(ch)

    def _send_text(self, ch: _Channel, message: ControlMessage) -> None:
        text = encode(message)
        try:
            command = fc.stream_send_text(ch.uuid, text)
        except InvalidCommand:
            log.warning("%s: not relayed to the worker (send_text cannot carry spaces): %s", ch.uuid, text)
            return
        self._command(ch, command)

    def _command(self, ch: _Channel, command: Command) -> None:
        ch.commands.put_nowait(command)
        if ch.task is None or ch.task.done():
            ch.task = asyncio.create_task(self._drain(ch), name=f"playback {ch.uuid}")

    async def _drain(self, ch: _Channel) -> None:
        while not ch.commands.empty():
            command = ch.commands.get_nowait()
            try:
                await self._sender.run(ch.node, command)
            except CallError as exc:
                log.warning("%s: %s failed: %s", ch.uuid, command.verb, exc)

    async def aclose(self) -> None:
        """Cancel the command queues (bounded wait)."""
        await cancel_all(ch.task for ch in self._channels.values() if ch.task is not None)
        self._channels.clear()
