"""The FreeSWITCH emulator: loopback ESL server (inbound mode), emulated channels, mod_audio_stream."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.fsemu.api import Api
from tests.fsemu.apps import Apps
from tests.fsemu.audio_stream import AudioStreams, StreamSession
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.conference import Conferences
from tests.fsemu.core import SwitchCore, SwitchIdentity, new_uuid
from tests.fsemu.coredb import CoreDb
from tests.fsemu.dialplan import Dialplan
from tests.fsemu.esl import EslListener
from tests.fsemu.faults import Faults
from tests.fsemu.features import Features
from tests.fsemu.hangup import Hangups
from tests.fsemu.hold import Holds
from tests.fsemu.loopback import DEFAULT_DIALPLAN, Loopback
from tests.fsemu.outbound import Outbound
from tests.fsemu.playback import Player
from tests.fsemu.record import Recorder
from tests.fsemu.registry import Gateway, Registry, SipUser
from tests.fsemu.sofia import InboundCall, Sofia
from tests.fsemu.transfer import Transfers
from tests.fsemu.wire import Command, Event, HeaderValue

REAL_TABLE_LAG = 0.1  # coredb.py: one SQL batch this long after the first statement queued

# The default dialplan's global extensions run these before the destination's own actions (capture S2).
GLOBAL_APPS = (
    ("hash", "insert/{domain}-spymap/{caller}/{uuid}"),
    ("hash", "insert/{domain}-last_dial/{caller}/{dest}"),
    ("hash", "insert/{domain}-last_dial/global/{uuid}"),
    ("export", "RFC2822_DATE={date}"),
)


@dataclass
class EmulatorConfig:
    """Emulator settings (defaults mirror the capture rig; mod_event_socket's MAX_QUEUE_LEN / MAX_MISSED)."""

    password: str = "ClueCon"
    host: str = "127.0.0.1"
    port: int = 0
    listener_queue_max: int = 100_000
    max_missed: int = 500
    temp_dir: Path | None = None
    core_uuid: str = field(default_factory=new_uuid)
    hostname: str = "fs-host"
    switchname: str = "fs-host"
    ipv4: str = "198.51.100.10"
    ipv6: str = "2001:db8::10"
    dialplan: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: dict(DEFAULT_DIALPLAN))
    # The core database's rows (show channels|calls) follow the events this late (coredb.py). A real
    # FreeSWITCH lags 0.1-0.3 s (tests/fixtures/live/show_json.txt; REAL_TABLE_LAG). The controller copes
    # (it reads each channel from its session after a resync and looks again 0.5 s later:
    # controller/calls/snapshot.py; test_restart_adopt.py runs with the lag), but the default stays 0: with
    # REAL_TABLE_LAG the suite passed except test_voice_agent_e2e's barge-in test, which then often lands its
    # barge-in in the ~100 ms gap between two queued files (nothing playing: no PLAYBACK_STOP "break").
    channel_table_lag: float = 0.0
    # mod_audio_stream's race: this many audio frames go out before the metadata text (audio_stream.py).
    audio_before_metadata: int = 0


class FreeSwitchEmulator:
    """A FreeSWITCH stand-in for tests: ``async with FreeSwitchEmulator(cfg) as fs: ... fs.port``."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.config.temp_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fsemu-")
            self.config.temp_dir = Path(self._tmp.name)
        cfg = self.config
        ident = SwitchIdentity(cfg.core_uuid, cfg.hostname, cfg.switchname, cfg.ipv4, cfg.ipv6)
        self.core = SwitchCore(ident, Path(cfg.temp_dir or "/tmp"))
        self.apps = Apps(self.core)
        self.player = Player(self.core, self.apps)
        self.loopback = Loopback(self.core, self.apps, self.player, cfg.dialplan)
        self.sofia = Sofia(self.core, self.apps)
        self.hangups = Hangups(self.core, self.apps)
        self.coredb = CoreDb(lambda uuid: uuid in self.core.channels, cfg.switchname, cfg.channel_table_lag)
        self.core.sinks.add(self.coredb)
        self.features = Features(self.core, self.apps, self.coredb)
        self.streams = AudioStreams(
            self.core, self.core.temp_dir, self._pre_answer, cfg.audio_before_metadata
        )
        self.hangups.on_hangup_state.append(self.streams.on_hangup)
        self.loopback.hangup = self.hangups.hangup
        self.api = Api(
            core=self.core, apps=self.apps, loopback=self.loopback, sofia=self.sofia, hangups=self.hangups,
            player=self.player, features=self.features, streams=self.streams,
        )  # fmt: skip
        self._install_call_control()
        self.faults = Faults()  # stalls a test asks for (tests/fsemu/faults.py)
        self._server: asyncio.Server | None = None
        self._listeners: set[EslListener] = set()
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self.port = cfg.port

    def _install_call_control(self) -> None:
        """Transfers, conferences, SIP originate/bridge, hold, recording and registrations."""
        core, apps, cfg = self.core, self.apps, self.config
        self.registry = Registry(core)
        self.dialplan = Dialplan(
            core, apps, sofia=self.sofia, loopback=self.loopback, hangups=self.hangups, features=self.features
        )
        self.conferences = Conferences(core, apps, self.dialplan.pre_answer, self.dialplan.answer)
        self.dialplan.install("conference", self.conferences.run)
        self.transfers = Transfers(core, apps, self.hangups, self.dialplan, cfg.dialplan)
        self.holds = Holds(core, apps)
        self.transfers.unhold = self.holds.check_hold
        self.recorder = Recorder(core, self.dialplan.pre_answer)
        self.hangups.on_hangup_state.append(self.recorder.on_hangup)
        self.outbound = Outbound(
            core, apps, sofia=self.sofia, hangups=self.hangups, registry=self.registry,
            loopback=self.loopback, dialplan=self.dialplan, transfers=self.transfers,
        )  # fmt: skip
        self.dialplan.outbound = self.outbound
        self.api.handlers.update(
            {
                "uuid_transfer": self.transfers.command,
                "uuid_hold": self.holds.command,
                "uuid_record": self.recorder.command,
                "originate": self.outbound.originate,
                "sofia": self.registry.sofia,
            }
        )
        self.api.show_tables["registrations"] = self.registry.show

    # -- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        await self.core.cancel_tasks()
        for session in list(self.streams.sessions.values()):
            await self.streams.detach(session)
        await self.core.cancel_tasks()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def start(self) -> None:
        """Listen (again) on the configured port; after a stop, on the same port. Channels are kept."""
        self._server = await asyncio.start_server(
            self._on_connect, self.config.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Crash-like stop: close the listening socket and drop every ESL connection (no notice)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for listener in list(self._listeners):
            listener.kill()
        tasks = list(self._conn_tasks)
        if tasks:
            async with asyncio.timeout(5):
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener = EslListener(self, reader, writer)
        self._listeners.add(listener)
        self.core.sinks.add(listener)
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        try:
            await listener.serve()
        finally:
            self.core.sinks.discard(listener)
            self._listeners.discard(listener)
            if task is not None:
                self._conn_tasks.discard(task)

    # -- inspection ----------------------------------------------------------------------------
    @property
    def connections(self) -> int:
        """Number of live ESL connections."""
        return len(self._listeners)

    @property
    def channels(self) -> Mapping[str, EmulatedChannel]:
        """Live channels by UUID."""
        return self.core.channels

    @property
    def audio_stream_sessions(self) -> Mapping[str, StreamSession]:
        """Attached mod_audio_stream sessions by channel UUID."""
        return self.streams.sessions

    def record_events(self) -> list[Event]:
        """Start keeping every fired event (for assertions); returns the live list."""
        if self.core.fired is None:
            self.core.fired = []
        return self.core.fired

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01
    ) -> None:
        """Poll ``predicate`` until true; raises TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110 - polls emulator state that has no Event to wait on
                await asyncio.sleep(interval)

    # -- calls ---------------------------------------------------------------------------------
    async def inject_inbound_call(
        self,
        *,
        caller: str = "1000",
        destination: str = "7102",
        codec: str = "PCMA",
        rate: int = 8000,
        ptime_ms: int = 20,
        audio: Path | None = None,
        user_agent: str = "SIPp",
        sip_domain: str = "127.0.0.1",
        variables: Mapping[str, str] | None = None,
        echo_db: float | None = None,
    ) -> str:
        """A SIP INVITE on sofia/internal: CHANNEL_CREATE, the dialplan's EXECUTEs, then the extension.

        ``audio`` is what the caller says (a WAV); ``echo_db`` adds line echo of what the channel plays.
        """
        call = InboundCall(
            caller,
            destination,
            codec,
            rate,
            ptime_ms,
            audio,
            user_agent,
            sip_domain,
            dict(variables or {}),
            echo_db,
        )
        self.loopback.session_ids += 1
        ch = self.sofia.create(call, self.loopback.session_ids)
        ch.app_task = self.core.spawn(self._inbound_dialplan(ch, call), name=f"dialplan-{ch.uuid}")
        await asyncio.sleep(0)
        return ch.uuid

    async def _inbound_dialplan(self, ch: EmulatedChannel, call: InboundCall) -> None:
        self.apps.set_state(ch, "CS_ROUTING", 2)
        self.apps.set_callstate(ch, "RINGING")
        ch.state, ch.state_number = "CS_EXECUTE", 4
        self.apps.set_state(ch, "CS_EXECUTE")
        ch.set_var("DP_MATCH", ["DELAYED NEGOTIATION", "DELAYED NEGOTIATION"])
        fmt = {"domain": call.sip_domain, "caller": call.caller, "uuid": ch.uuid, "dest": call.destination}
        fmt["date"] = _rfc2822_now()
        for i, (app, data) in enumerate(GLOBAL_APPS):
            text = data.format(**fmt)
            app_uuid = self.apps.execute(ch, app, text, first=i == 0)
            if app == "export":
                key, _, value = text.partition("=")
                ch.set_vars([(key, value), ("export_vars", key)])
            self.apps.complete(ch, app, text, app_uuid)
        gen = ch.dialplan_gen
        for app, data in self.config.dialplan.get(call.destination, [("park", "")]):
            if not ch.alive or ch.dialplan_gen != gen:
                return
            if app == "answer":
                self.sofia.answer(ch)
                continue
            await self.loopback.run_app(ch, app, data)

    async def caller_hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        """The SIP caller sends BYE."""
        ch = self.core.channels.get(uuid)
        if ch is None or not ch.alive:
            raise KeyError(uuid)
        ch.remote_bye = True
        self.hangups.hangup(ch, cause, delay=0.001)
        await asyncio.sleep(0)

    def fire_custom(self, uuid: str, subclass: str, body: str) -> None:
        """Fire CUSTOM ``subclass`` with the channel headers of ``uuid`` and ``body``, as anyone with ESL
        access may (a forged ``mod_audio_stream::play``, for the security tests).

        Raises:
            KeyError: no live channel ``uuid``.
        """
        ch = self.core.channels.get(uuid)
        if ch is None or not ch.alive:
            raise KeyError(uuid)
        self.core.fire_channel(ch, "CUSTOM", subclass=subclass, body=body)

    # -- SIP endpoints -------------------------------------------------------------------------
    def register_user(
        self,
        user: str,
        *,
        domain: str = "127.0.0.1",
        contact_host: str = "127.0.0.1",
        contact_port: int = 5070,
        user_agent: str = "SIPp",
        answer_after: float | None = 0.05,
        expires: int = 3600,
        reject: str | None = None,
        codec: str = "PCMA",
        audio: Path | None = None,
        call_id: str | None = None,
    ) -> None:
        """A SIP phone registers ``user`` (CUSTOM sofia::register); calls to it ring, then answer after
        ``answer_after`` s (None: never), or are refused with the cause ``reject`` (e.g. "USER_BUSY").

        A phone refreshing its registration sends the same ``call_id`` again (RFC 3261 section 10.2.4);
        without one, a new Call-ID (a phone that restarted).
        """
        entry = SipUser(
            user, domain, contact_host, contact_port, user_agent, answer_after, expires, reject, codec, audio
        )
        if call_id is not None:
            entry.call_id = call_id
        self.registry.register(entry)

    def unregister_user(self, user: str) -> None:
        """The phone sends REGISTER with Expires: 0 (CUSTOM sofia::unregister); KeyError if not registered."""
        self.registry.unregister(user)

    def expire_user(self, user: str) -> None:
        """The phone stopped refreshing and its registration expired (CUSTOM sofia::expire); KeyError if not
        registered."""
        self.registry.expire(user)

    def add_gateway(
        self,
        name: str,
        *,
        answer_after: float | None = 0.05,
        reject: str | None = None,
        profile: str = "external",
        up: bool = True,
        codec: str = "PCMA",
        audio: Path | None = None,
    ) -> None:
        """A sofia gateway ``name`` whose far end answers after ``answer_after`` s (None: never)."""
        gateway = Gateway(name, answer_after, reject, profile, up=up, codec=codec, audio=audio)
        self.registry.gateways[name] = gateway

    def set_ptime(self, uuid: str, ptime_ms: int) -> None:
        """The caller switches packetisation mid-call; media-bug reads (stream frames) follow."""
        ch = self.core.channels[uuid]
        if ch.kind == "sofia":
            self.sofia.set_ptime(ch, ptime_ms)

    def _pre_answer(self, ch: EmulatedChannel) -> None:
        if ch.kind == "sofia":
            self.sofia.pre_answer(ch)

    def run_message(self, ch: EmulatedChannel, cmd: Command) -> None:
        """sendmsg: execute an application or hang up."""
        command = (cmd.header("call-command") or "").lower()
        if command == "hangup":
            self.hangups.hangup(ch, cmd.header("hangup-cause") or "NORMAL_CLEARING")
        elif command == "execute":
            app, arg = cmd.header("execute-app-name") or "", cmd.header("execute-app-arg") or cmd.body or ""
            if app == "playback":
                self.player.broadcast(ch, arg)
            else:
                self.core.spawn(self.loopback.run_app(ch, app, arg), name=f"sendmsg-{ch.uuid}")

    # -- floods --------------------------------------------------------------------------------
    async def emit_burst(self, events: Sequence[Event], *, repeat: int = 1, yield_every: int = 1000) -> None:
        """Push pre-built events to every listener as fast as possible (sequence/date left as built)."""
        sent = 0
        for _ in range(repeat):
            for event in events:
                self.core.publish(event)
                sent += 1
                if sent % yield_every == 0:
                    await asyncio.sleep(0)

    def send_raw(self, data: bytes) -> None:
        """Fault: write ``data`` as is to every ESL connection, between two frames (bytes that are not
        FreeSWITCH's: an oversized or broken frame)."""
        for listener in self._listeners:
            listener.writer.write(data)

    def build_event(
        self, name: str, headers: Sequence[tuple[str, HeaderValue]] = (), body: str | None = None
    ) -> Event:
        """A complete event with core headers (for emit_burst templates)."""
        site = ("switch_event.c", "switch_event_fire_detailed", 2000)
        return Event(self.core.core_headers(name, site, None) + list(headers), body)


def _rfc2822_now() -> str:
    import email.utils

    return email.utils.formatdate(localtime=False, usegmt=False).replace("-0000", "+0000")
