"""The api commands the emulator implements, with FreeSWITCH 1.10.12's reply bodies (mod_commands.c)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.fsemu.apps import Apps
from tests.fsemu.audio_stream import AudioStreams
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore
from tests.fsemu.features import Features
from tests.fsemu.hangup import Hangups
from tests.fsemu.loopback import Loopback
from tests.fsemu.playback import Player
from tests.fsemu.sofia import Sofia
from tests.fsemu.wire import Event, HeaderValue, serialize_json, serialize_plain

NO_CHANNEL = "-ERR No such channel!\n"
Handler = Callable[[str], Awaitable[str]]


class Api:
    """Dispatches ``api``/``bgapi`` commands and fires the API event after each one."""

    def __init__(
        self,
        *,
        core: SwitchCore,
        apps: Apps,
        loopback: Loopback,
        sofia: Sofia,
        hangups: Hangups,
        player: Player,
        features: Features,
        streams: AudioStreams,
    ) -> None:
        self.core, self.apps, self.loopback, self.sofia = core, apps, loopback, sofia
        self.hangups, self.player, self.features, self.streams = hangups, player, features, streams
        self.max_sessions = 1000
        self.handlers: dict[str, Handler] = {
            "status": self._status, "originate": self.loopback.originate, "uuid_answer": self._answer,
            "uuid_kill": self._kill, "uuid_park": self._park, "uuid_broadcast": self._broadcast,
            "uuid_break": self._break, "uuid_send_dtmf": self._send_dtmf, "uuid_recv_dtmf": self._recv_dtmf,
            "uuid_bridge": self._bridge, "uuid_getvar": self._getvar, "uuid_setvar": self._setvar,
            "msleep": self._msleep, "show": self._show, "hupall": self._hupall,
            "uuid_audio_stream": self.streams.command, "uuid_exists": self._exists,
            "uuid_setvar_multi": self._setvar_multi, "uuid_dump": self._dump, "uuid_buglist": self._buglist,
        }  # fmt: skip
        # ``show <table> ...`` renderers added by other parts of the emulator (e.g. registrations).
        self.show_tables: dict[str, Callable[[list[str]], str]] = {}

    async def execute(self, command: str, arg: str | None) -> str:
        """Run one api command; returns the reply body (``-ERR <cmd> Command not found!`` if unknown)."""
        handler = self.handlers.get(command)
        reply = await handler(arg or "") if handler else f"-ERR {command} Command not found!\n"
        headers: list[tuple[str, HeaderValue]] = [("API-Command", command)]
        if arg is not None:
            headers.append(("API-Command-Argument", arg))
        self.core.fire("API", headers)
        return reply

    def _channel(self, arg: str) -> tuple[EmulatedChannel | None, list[str]]:
        parts = arg.split()
        ch = self.core.channels.get(parts[0]) if parts else None
        return (ch if ch is not None and ch.alive else None), parts[1:]

    async def _status(self, _arg: str) -> str:
        up = self.core.uptime()
        secs, frac = int(up), up - int(up)
        days, rem = divmod(secs, 86400)
        hours, rem = divmod(rem, 3600)
        minutes, seconds = divmod(rem, 60)
        ms, us = int(frac * 1000), int(frac * 1_000_000) % 1000
        minute_word = "minute" if minutes == 1 else "minutes"
        live, total, peak = len(self.core.channels), self.core.session_count, self.core.session_peak
        return (
            f"UP 0 years, {days} days, {hours} hours, {minutes} {minute_word}, {seconds} seconds, "
            f"{ms} milliseconds, {us} microseconds\n"
            "FreeSWITCH (Version 1.10.12-release  64bit) is ready\n"
            f"{total} session(s) since startup\n"
            f"{live} session(s) - peak {peak}, last 5min {peak} \n"
            "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
            f"{self.max_sessions} session(s) max\n"
            "min idle cpu 0.00/99.00\n"
            "Current Stack Size/Max 240K/8192K\n"
        )

    async def _answer(self, arg: str) -> str:
        ch, _ = self._channel(arg)
        if ch is None:
            return NO_CHANNEL
        if ch.kind == "sofia":
            self.sofia.answer(ch)
        elif ch.loopback_peer is not None and ch.direction == "inbound" and not ch.answered:
            self.apps.answer_loopback(ch)  # mod_loopback answers the A-leg on the B-leg's answer
        elif not ch.answered:
            self.apps.mark_answered(ch)
        return "+OK\n"

    async def _kill(self, arg: str) -> str:
        ch, rest = self._channel(arg)
        if ch is None:
            return NO_CHANNEL
        # switch_channel_str2cause matches the cause name case-insensitively.
        self.hangups.hangup(ch, rest[0].upper() if rest else "NORMAL_CLEARING")
        return "+OK\n"

    async def _park(self, arg: str) -> str:
        ch, _ = self._channel(arg)
        if ch is None:
            return NO_CHANNEL
        if not ch.parked:
            self.apps.park(ch)
        return "+OK\n"

    async def _broadcast(self, arg: str) -> str:
        ch, rest = self._channel(arg)
        if ch is None or not rest:
            return (
                "-ERR Cannot locate session!\n" if ch is None else "-USAGE: <uuid> <path> [aleg|bleg|both]\n"
            )
        self.player.broadcast(ch, rest[0])
        return "+OK Message sent\n"

    async def _break(self, arg: str) -> str:
        ch, rest = self._channel(arg)
        if ch is None:
            return NO_CHANNEL
        self.player.break_playback(ch, bool(rest) and rest[0] == "all")
        return "+OK\n"

    async def _send_dtmf(self, arg: str) -> str:
        # mod_commands.c uuid_send_dtmf_function: usage first, then "Cannot locate session".
        if len(arg.split()) < 2:
            return "-USAGE: <uuid> <dtmf_data>\n"
        ch, rest = self._channel(arg)
        if ch is None:
            return "-ERR Cannot locate session!\n"
        self.features.send_dtmf(ch, rest[0])
        return f"+OK {ch.uuid} sent DTMF {rest[0]}.\n"

    async def _recv_dtmf(self, arg: str) -> str:
        ch, rest = self._channel(arg)
        if ch is None or not rest:
            return NO_CHANNEL
        self.features.recv_dtmf(ch, rest[0])
        return f"+OK {ch.uuid} received DTMF {rest[0]}.\n"

    async def _bridge(self, arg: str) -> str:
        parts = arg.split()
        if len(parts) < 2:
            return "-USAGE: <uuid> <other_uuid>\n"
        a, b = self.core.channels.get(parts[0]), self.core.channels.get(parts[1])
        if a is None or b is None:
            return "-ERR Invalid uuid\n"
        self.core.spawn(self.features.bridge(a, b), name=f"bridge-{a.uuid}")
        return f"+OK {b.uuid}\n"

    async def _getvar(self, arg: str) -> str:
        ch, rest = self._channel(arg)
        if ch is None:
            return NO_CHANNEL
        if not rest:
            return "-USAGE: <uuid> <var>\n"
        # uuid_getvar answers without a trailing newline (esl_dtmf_and_bridge.txt finding 6).
        return ch.get_var(rest[0]) or "_undef_"

    async def _setvar(self, arg: str) -> str:
        ch, rest = self._channel(arg)
        if ch is None:
            return NO_CHANNEL
        if not rest:
            return "-USAGE: <uuid> <var> [value]\n"
        value = arg.split(" ", 2)[2] if len(arg.split(" ", 2)) > 2 else None
        ch.set_var(rest[0], value)
        return "+OK\n"

    async def _setvar_multi(self, arg: str) -> str:
        # mod_commands.c uuid_setvar_multi_function: "<uuid> <var>=<value>;<var>=<value>..."
        parts = arg.split(" ", 1)
        if len(parts) < 2 or not parts[1]:
            return "-USAGE: <uuid> <var>=<value>;<var>=<value>...\n"
        ch, _ = self._channel(parts[0])
        if ch is None:
            return NO_CHANNEL
        for item in parts[1].split(";"):
            name, _, value = item.partition("=")
            if not name:
                return "-ERR No variable specified\n"
            ch.set_var(name, value or None)
        return "+OK\n"

    async def _dump(self, arg: str) -> str:
        """``uuid_dump <uuid> [json]``: a CHANNEL_DATA event of the channel (caller profile, times,
        Answer-State, every variable), serialised, never fired (mod_commands.c uuid_dump_function)."""
        ch, rest = self._channel(arg)
        if ch is None:
            return NO_CHANNEL
        site = ("mod_commands.c", "uuid_dump_function", 0)
        event = Event(self.core.core_headers("CHANNEL_DATA", site, None) + ch.event_headers("CHANNEL_DATA"))
        if rest and rest[0] == "json":
            return serialize_json(event).decode()
        return serialize_plain(event).decode()

    async def _buglist(self, arg: str) -> str:
        """``uuid_buglist <uuid>``: switch_core_media_bug_enumerate's list (mod_audio_stream's bug only)."""
        ch, _ = self._channel(arg)
        if ch is None:
            return NO_CHANNEL
        out = "<media-bugs>\n"
        if ch.uuid in self.streams.sessions:
            out += (
                " <media-bug>\n  <function>audio_stream</function>\n  <target>N/A</target>\n"
                "  <thread-locked>0</thread-locked>\n </media-bug>\n"
            )
        return out + "</media-bugs>\n"

    async def _exists(self, arg: str) -> str:
        ch, _ = self._channel(arg)
        return "true" if ch is not None else "false"

    async def _msleep(self, arg: str) -> str:
        millis = int(arg) if arg.strip().isdigit() else 0
        await asyncio.sleep(millis / 1000)
        return "+OK"

    async def _show(self, arg: str) -> str:
        words = arg.split()
        table = self.show_tables.get(words[0].lower()) if words else None
        if table is not None:
            return table(words)
        if words[:3] == ["channels", "as", "json"]:
            return self.features.show_channels_json()
        if words[:3] == ["calls", "as", "json"]:
            return self.features.show_calls_json()
        return (
            "-USAGE: codec|endpoint|application|api|dialplan|file|timer|calls [count]|"
            "channels [count|like <match string>]\n"
        )

    async def _hupall(self, arg: str) -> str:
        cause = arg.split(maxsplit=1)[0] if arg.split() else "MANAGER_REQUEST"
        for ch in list(self.core.channels.values()):
            if ch.alive:
                self.hangups.hangup(ch, cause)
        return f"+OK hangup all channels with cause {cause}\n"
