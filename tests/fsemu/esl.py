"""One inbound Event Socket connection, following mod_event_socket.c (listener_run / parse_command).

Replies and events share one writer. As in FreeSWITCH, ``api`` runs inside the listener loop (events queue
meanwhile), ``bgapi`` runs aside and fires BACKGROUND_JOB. Each listener has a bounded event queue
(MAX_QUEUE_LEN 100000); when a push fails the lost counter grows and beyond MAX_MISSED (500) the listener
is killed (socket closed, no notice). Writes await ``drain()`` so a client that stops reading falls behind.
"""

from __future__ import annotations

import asyncio
import collections
import re
from typing import TYPE_CHECKING

from tests.fsemu.core import new_uuid
from tests.fsemu.wire import (
    Command,
    CommandReader,
    CommandTooLong,
    Event,
    api_response,
    command_reply,
    disconnect_notice,
)

if TYPE_CHECKING:
    from tests.fsemu.server import FreeSwitchEmulator

GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
LOG_LEVELS = {"console": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "notice": 5, "info": 6}
LOG_LEVELS["debug"] = 7
# switch_event.c EVENT_NAMES (the ones a client can subscribe to by name).
EVENT_NAMES = frozenset(
    {
        "CUSTOM", "CLONE", "CHANNEL_CREATE", "CHANNEL_DESTROY", "CHANNEL_STATE", "CHANNEL_CALLSTATE",
        "CHANNEL_ANSWER", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE",
        "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_OUTGOING", "CHANNEL_PARK", "CHANNEL_UNPARK",
        "CHANNEL_APPLICATION", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "API", "LOG", "INBOUND_CHAN",
        "OUTBOUND_CHAN", "STARTUP", "SHUTDOWN", "PUBLISH", "UNPUBLISH", "TALK", "NOTALK", "SESSION_CRASH",
        "MODULE_LOAD", "MODULE_UNLOAD", "DTMF", "MESSAGE", "PRESENCE_IN", "NOTIFY_IN", "PRESENCE_OUT",
        "PRESENCE_PROBE", "MESSAGE_WAITING", "MESSAGE_QUERY", "ROSTER", "CODEC", "BACKGROUND_JOB",
        "DETECTED_SPEECH", "DETECTED_TONE", "PRIVATE_COMMAND", "HEARTBEAT", "TRAP", "ADD_SCHEDULE",
        "DEL_SCHEDULE", "EXE_SCHEDULE", "RE_SCHEDULE", "RELOADXML", "NOTIFY", "PHONE_FEATURE",
        "PHONE_FEATURE_SUBSCRIBE", "SEND_MESSAGE", "RECV_MESSAGE", "REQUEST_PARAMS", "CHANNEL_DATA",
        "GENERAL", "COMMAND", "SESSION_HEARTBEAT", "CLIENT_DISCONNECTED", "SERVER_DISCONNECTED", "SEND_INFO",
        "RECV_INFO", "RECV_RTCP_MESSAGE", "SEND_RTCP_MESSAGE", "CALL_SECURE", "NAT", "RECORD_START",
        "RECORD_STOP", "PLAYBACK_START", "PLAYBACK_STOP", "CALL_UPDATE", "FAILURE", "SOCKET_DATA",
        "MEDIA_BUG_START", "MEDIA_BUG_STOP", "CONFERENCE_DATA_QUERY", "CONFERENCE_DATA", "CALL_SETUP_REQ",
        "CALL_SETUP_RESULT", "CALL_DETAIL", "DEVICE_STATE", "TEXT", "SHUTDOWN_REQUESTED", "ALL",
    }
)  # fmt: skip


class EslListener:
    """Serves one client connection until it exits, fails auth, is killed or the emulator stops."""

    def __init__(
        self, emulator: FreeSwitchEmulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        self.emu = emulator
        self.reader, self.writer = reader, writer
        self.authed = False
        self.running = True
        self.killed = False
        self.format = "plain"
        self.events_enabled = False
        self.event_list: set[str] = set()
        self.custom: set[str] = set()
        self.filters: list[tuple[str, str]] = []
        self.queue: collections.deque[Event] = collections.deque()
        self.lost_events = 0
        self.wake = asyncio.Event()
        self.commands: collections.deque[Command] = collections.deque()
        self.eof = False

    # -- event delivery (called by the core for every fired event) -------------------------------
    def deliver(self, event: Event) -> None:
        """event_handler(): subscription + filters, then a bounded push (lost events kill the listener)."""
        if (
            not self.events_enabled
            or not self.running
            or not self._subscribed(event)
            or not self._passes(event)
        ):
            return
        if len(self.queue) >= self.emu.config.listener_queue_max:
            self.lost_events += 1
            if self.lost_events > self.emu.config.max_missed:
                self.kill()
            return
        self.lost_events = 0
        self.queue.append(event)
        self.wake.set()

    def _subscribed(self, event: Event) -> bool:
        if "ALL" in self.event_list:
            return True
        if event.name not in self.event_list:
            return False
        return event.name != "CUSTOM" or not event.subclass or event.subclass in self.custom

    def _passes(self, event: Event) -> bool:
        if not self.filters:
            return True
        send = False
        for name, value in self.filters:
            hval = event.get(name)
            if hval is None:
                continue
            pos, comp = True, value
            while comp and comp[0] in "+- ":
                pos = comp[0] != "-" if comp[0] != " " else pos
                comp = comp[1:]
            if send and pos:
                continue
            matched = (
                bool(re.search(comp.strip("/"), hval))
                if value.startswith("/")
                else hval.lower() == comp.lower()
            )
            if matched and not pos:
                return False
            send = send or matched
        return send

    def kill(self) -> None:
        """kill_listener(): stop running and close the socket at once (no disconnect notice)."""
        self.running = False
        self.killed = True
        self.queue.clear()
        self.writer.transport.abort()
        self.wake.set()

    # -- main loop -----------------------------------------------------------------------------
    async def serve(self) -> None:
        """Run the connection: auth/request, then commands and events until done."""
        reader_task = asyncio.create_task(self._read_loop(), name="esl-reader")
        try:
            await self._send(b"Content-Type: auth/request\n\n")
            await self._loop()
            if not self.killed and not self.writer.is_closing():
                await self._send(disconnect_notice(GOODBYE))
        except (ConnectionError, OSError):
            pass
        finally:
            self.running = False
            reader_task.cancel()
            await asyncio.gather(reader_task, return_exceptions=True)
            self.writer.transport.abort() if self.killed else self.writer.close()

    async def _loop(self) -> None:
        while self.running:
            await self.wake.wait()
            self.wake.clear()
            while self.running and (self.commands or (self.queue and self.events_enabled)):
                await self._flush_events()
                if self.commands and self.running:
                    await self._handle(self.commands.popleft())
            if self.eof and not self.commands:
                self.killed = True  # peer went away: nothing more to say
                return

    async def _flush_events(self) -> None:
        while self.queue and self.events_enabled and self.running:
            event = self.queue.popleft()
            frame = event.json_frame() if self.format == "json" else event.plain_frame()
            await self._send(frame)

    async def _read_loop(self) -> None:
        parser = CommandReader()
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                parser.feed(data)
                self.commands.extend(parser.commands())
                self.wake.set()
        except (ConnectionError, OSError, CommandTooLong):
            pass
        self.eof = True
        self.wake.set()

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    # -- commands ------------------------------------------------------------------------------
    async def _handle(self, cmd: Command) -> None:
        line = cmd.line
        low = line.lower()
        if low.startswith(("exit", "...")):
            self.running = False
            await self._send(command_reply("+OK bye"))
            return
        if not self.authed:
            await self._send(command_reply(self._auth(line)))
            return
        stall = self.emu.faults.take(line)  # tests/fsemu/faults.py
        if stall is not None and stall.mode == "busy":
            await asyncio.sleep(stall.seconds)
            if self.eof:
                return  # the client reset the connection: the unread command is gone with it
        reply = await self._execute(cmd, low)
        if stall is not None and stall.mode == "hold":
            await asyncio.sleep(stall.seconds)
        await self._send(reply)

    async def _execute(self, cmd: Command, low: str) -> bytes:
        line = cmd.line
        if low.startswith("api "):
            api_cmd, _, arg = line[4:].partition(" ")
            body = await self.emu.api.execute(api_cmd, arg if _ else None)
            return api_response(body or "-ERR no reply\n")
        if low.startswith("bgapi "):
            return self._bgapi(cmd)
        return command_reply(self._simple(cmd))

    def _auth(self, line: str) -> str:
        if not line.lower().startswith("auth "):
            return "-ERR command not found"
        if line[5:] == self.emu.config.password:
            self.authed = True
            return "+OK accepted"
        self.running = False
        return "-ERR invalid"

    def _bgapi(self, cmd: Command) -> bytes:
        api_cmd, sep, arg = cmd.line[6:].partition(" ")
        job = cmd.header("Job-UUID") or new_uuid()
        self.emu.core.spawn(self._job(job, api_cmd, arg if sep else None), name=f"bgapi-{job}")
        return f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n".encode()

    async def _job(self, job: str, api_cmd: str, arg: str | None) -> None:
        body = await self.emu.api.execute(api_cmd, arg)
        headers = [("Job-UUID", job), ("Job-Command", api_cmd)]
        if arg is not None:
            headers.append(("Job-Command-Arg", arg))
        self.emu.core.fire("BACKGROUND_JOB", headers, body=body or "Command returned no output!")

    def _simple(self, cmd: Command) -> str:
        low = cmd.line.lower()
        if low.startswith("filter "):
            return self._filter(cmd.line[7:].strip(" "))
        if low.startswith("sendmsg"):
            return self._sendmsg(cmd)
        if low.startswith("log"):
            level = cmd.line[4:] if len(cmd.line) > 3 else ""
            number = LOG_LEVELS.get(level.lower(), 7) if level else 7
            return (
                f"+OK log level {level} [{number}]"
                if not level or level.lower() in LOG_LEVELS
                else "-ERR invalid log level"
            )
        if low.startswith(("linger", "nolinger")):
            return "-ERR not controlling a session"
        if low.startswith("nolog"):
            return "-ERR not loging"
        if low.startswith("event"):
            return self._event(cmd.line.split(" ")[1:])
        if low.startswith("nixevent"):
            return self._nixevent(cmd.line.split(" ")[1:])
        if low.startswith("noevents"):
            return self._noevents()
        if low.startswith("divert_events"):
            return "-ERR not controlling a session."
        return "-ERR command not found"

    def _event(self, words: list[str]) -> str:
        keys, custom = 0, False
        for i, word in enumerate(words):
            if i == 0 and word.lower() in ("plain", "json", "xml"):
                self.format = word.lower()
                continue
            if custom:
                self.custom.add(word)
            elif word in EVENT_NAMES:
                keys += 1
                self.event_list.add(word)
                custom = custom or word == "CUSTOM"
        if not keys:
            return "-ERR no keywords supplied"
        self.events_enabled = True
        return f"+OK event listener enabled {self.format}"

    def _nixevent(self, words: list[str]) -> str:
        keys, custom = 0, False
        for word in words:
            if custom:
                self.custom.discard(word)
            elif word in EVENT_NAMES:
                keys += 1
                if word == "CUSTOM":
                    custom = True
                elif word == "ALL":
                    self.event_list.clear()
                else:
                    if "ALL" in self.event_list:
                        self.event_list = set(EVENT_NAMES) - {"ALL"}
                    self.event_list.discard(word)
        if not keys:
            return "-ERR no keywords supplied"
        self.events_enabled = True
        return "+OK events nixed"

    def _noevents(self) -> str:
        self.queue.clear()
        if not self.events_enabled:
            return "-ERR not listening for events"
        self.events_enabled = False
        self.event_list.clear()
        self.custom.clear()
        return "+OK no longer listening for events"

    def _filter(self, rest: str) -> str:
        name, sep, value = rest.partition(" ")
        if name.lower() == "delete" and sep:
            name, _, val = value.partition(" ")
            if name.lower() == "all":
                self.filters.clear()
            else:
                self.filters = [(k, v) for k, v in self.filters if not (k == name and (not val or v == val))]
            return f"+OK filter deleted. [{name}][{val}]"
        if not sep:
            return "-ERR invalid syntax"
        if name.lower() == "add":
            name, _, value = value.partition(" ")
        self.filters.append((name, value))
        return f"+OK filter added. [{name}]=[{value}]"

    def _sendmsg(self, cmd: Command) -> str:
        uuid = cmd.line[7:].strip() or (cmd.header("session-id") or "")
        ch = self.emu.core.channels.get(uuid)
        if ch is None or not ch.alive:
            return f"-ERR invalid session id [{uuid}]"
        self.emu.run_message(ch, cmd)
        return "+OK"
