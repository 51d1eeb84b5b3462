"""The emulated switch core: event firing (core headers, sequence), channels and owned tasks."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid as uuidlib
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.wire import Event, HeaderValue

logger = logging.getLogger(__name__)

# Event-Calling-File / -Function / -Line-Number per event, as in the captures (FreeSWITCH 1.10.12).
CALLING: dict[str, tuple[str, str, int]] = {
    "CODEC_READ": ("switch_core_codec.c", "switch_core_session_set_read_codec", 279),
    "CODEC_WRITE": ("switch_core_codec.c", "switch_core_session_set_write_codec", 450),
    "CHANNEL_UUID": ("switch_core_session.c", "switch_core_session_set_uuid", 2051),
    "CHANNEL_OUTGOING": ("switch_core_session.c", "switch_core_session_outgoing_channel", 768),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", 2408),
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", 626),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", 301),
    "CHANNEL_ORIGINATE": ("switch_core_state_machine.c", "switch_core_session_run", 632),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", 2944),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", 2967),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", 3846),
    "CHANNEL_PROGRESS_MEDIA": ("switch_channel.c", "switch_channel_perform_mark_pre_answered", 3560),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", 1646),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", 2020),
    "CALL_UPDATE": ("switch_channel.c", "switch_channel_flip_cid", 3277),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", 1572),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", 1002),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", 1213),
    "MEDIA_BUG_START": ("switch_core_media_bug.c", "switch_core_media_bug_add", 1014),
    "MEDIA_BUG_STOP": ("switch_core_media_bug.c", "switch_core_media_bug_destroy", 84),
    "CUSTOM": ("mod_audio_stream.c", "responseHandler", 16),
    "COMMAND": ("switch_ivr_async.c", "switch_ivr_broadcast", 5731),
    "PRIVATE_COMMAND": ("switch_ivr.c", "switch_ivr_parse_next_event", 804),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", 3445),
    "CHANNEL_HANGUP_COMPLETE": ("switch_core_state_machine.c", "switch_core_session_reporting_state", 943),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", 1584),
    "API": ("switch_loadable_module.c", "switch_api_execute", 2954),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", 677),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1689),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1879),
    "UUID_BRIDGE_EXECUTE": ("switch_ivr_bridge.c", "uuid_bridge_on_soft_execute", 1236),
    "SOFIA_REGISTER": ("sofia_reg.c", "sofia_reg_handle_register_token", 2059),
    # Not captured: file/function/line of the switch_event_create call in the v1.10.12 sources.
    "SOFIA_UNREGISTER": ("sofia_reg.c", "sofia_reg_handle_register_token", 2213),
    "SOFIA_EXPIRE": ("sofia_reg.c", "sofia_reg_del_callback", 726),
    "CHANNEL_PROGRESS": ("switch_channel.c", "switch_channel_perform_mark_ring_ready_value", 3505),
    "CHANNEL_HOLD": ("switch_ivr.c", "switch_ivr_hold", 1558),
    "CHANNEL_UNHOLD": ("switch_ivr.c", "switch_ivr_unhold", 1638),
    "RECORD_START": ("switch_ivr_async.c", "record_callback", 1481),
    "RECORD_STOP": ("switch_ivr_async.c", "send_record_stop_event", 1240),
    "CONF_CREATE": ("mod_conference.c", "conference_new", 3848),
    "CONF_DESTROY": ("mod_conference.c", "conference_thread_run", 863),
    "CONF_ADD_MEMBER": ("conference_member.c", "conference_member_add", 962),
    "CONF_DEL_MEMBER": ("conference_member.c", "conference_member_del", 1355),
    "CONF_FLOOR_CHANGE": ("conference_member.c", "conference_member_set_floor_holder", 1158),
}


class EventSink(Protocol):
    """Something that receives every fired event (an ESL listener)."""

    def deliver(self, event: Event) -> None:
        """Take one event (must not block)."""


@dataclass
class SwitchIdentity:
    """The node identity that every event carries."""

    core_uuid: str
    hostname: str
    switchname: str
    ipv4: str
    ipv6: str


def new_uuid() -> str:
    """A random UUID in FreeSWITCH's text form."""
    return str(uuidlib.uuid4())


def now_us() -> int:
    """Wall clock in microseconds (Event-Date-Timestamp)."""
    return time.time_ns() // 1000


@dataclass
class SwitchCore:
    """Event bus, channel table and task owner shared by the ESL server, the API and the dialplan."""

    identity: SwitchIdentity
    temp_dir: Path
    sequence: int = 400
    started: float = field(default_factory=time.monotonic)
    sinks: set[EventSink] = field(default_factory=set)
    channels: dict[str, EmulatedChannel] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    session_count: int = 0
    session_peak: int = 0
    fired: list[Event] | None = None
    errors: list[BaseException] = field(default_factory=list)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Start a task owned by the core (cancelled and awaited on shutdown)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(task.exception())  # type: ignore[arg-type]
            logger.error("emulator task %s failed", task.get_name(), exc_info=task.exception())

    async def cancel_tasks(self, timeout: float = 5.0) -> None:
        """Cancel every owned task and wait (bounded) for them to finish."""
        pending = [t for t in self.tasks if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*pending, return_exceptions=True)

    def core_headers(
        self, name: str, calling: tuple[str, str, int], subclass: str | None
    ) -> list[tuple[str, HeaderValue]]:
        """The headers ``switch_event_prep_for_delivery`` adds, with the next Event-Sequence."""
        self.sequence += 1
        stamp = now_us()
        secs = stamp // 1_000_000
        out: list[tuple[str, HeaderValue]] = [("Event-Subclass", subclass)] if subclass else []
        ident = self.identity
        out += [
            ("Event-Name", name),
            ("Core-UUID", ident.core_uuid),
            ("FreeSWITCH-Hostname", ident.hostname),
            ("FreeSWITCH-Switchname", ident.switchname),
            ("FreeSWITCH-IPv4", ident.ipv4),
            ("FreeSWITCH-IPv6", ident.ipv6),
            ("Event-Date-Local", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(secs))),
            ("Event-Date-GMT", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(secs))),
            ("Event-Date-Timestamp", str(stamp)),
            ("Event-Calling-File", calling[0]),
            ("Event-Calling-Function", calling[1]),
            ("Event-Calling-Line-Number", str(calling[2])),
            ("Event-Sequence", str(self.sequence)),
        ]
        return out

    def fire(
        self,
        name: str,
        headers: Iterable[tuple[str, HeaderValue]],
        *,
        calling: str | None = None,
        body: str | None = None,
        subclass: str | None = None,
    ) -> Event:
        """Build an event (core headers first) and deliver it to every sink."""
        site = CALLING[calling or name]
        event = Event(self.core_headers(name, site, subclass) + list(headers), body)
        self.publish(event)
        return event

    def publish(self, event: Event) -> None:
        """Deliver a finished event to every sink (and the optional recorder)."""
        if self.fired is not None:
            self.fired.append(event)
        for sink in list(self.sinks):
            sink.deliver(event)

    def fire_channel(
        self,
        channel: EmulatedChannel,
        name: str,
        *,
        pre: Iterable[tuple[str, HeaderValue]] = (),
        post: Iterable[tuple[str, HeaderValue]] = (),
        calling: str | None = None,
        body: str | None = None,
        subclass: str | None = None,
    ) -> Event:
        """Fire a channel event: core headers, ``pre``, channel data, variables if verbose, ``post``."""
        headers = channel.event_headers(name, pre, post)
        return self.fire(name, headers, calling=calling, body=body, subclass=subclass)

    def add_channel(self, channel: EmulatedChannel) -> None:
        """Register a live channel and count the session."""
        self.channels[channel.uuid] = channel
        self.session_count += 1
        self.session_peak = max(self.session_peak, len(self.channels))

    def uptime(self) -> float:
        """Seconds since the emulator first started."""
        return time.monotonic() - self.started
