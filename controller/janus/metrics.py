"""Prometheus metrics of the Janus instances, fed the events their event handlers post (``events.py``).

Sessions and handles are tracked by id, keyed by the event's ``emitter`` (Janus's ``server_name``; several
Janus instances may post here), so duplicates (the sample handler retransmits after a failed POST) and
events for ids never seen (the controller started after them) cannot push a gauge wrong or below zero.
A session that ends takes its handles with it; a core ``started``/``shutdown`` event (a restarted Janus
sends no ``destroyed`` for the sessions it lost) forgets everything of that emitter.

Janus's media statistics are cumulative per handle and medium (src/ice.c,
``janus_ice_outgoing_stats_handle``), so the packet counters add the difference from the previous report
of the same (emitter, session, handle, mid, media); a value lower than the previous one means the medium
restarted and counts in full. A stream's last values are forgotten when its handle detaches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.janus.events import (
    DTLS_STATES,
    ICE_STATES,
    PC_STATES,
    CoreEvent,
    HandleEvent,
    JanusEvent,
    JanusEventType,
    MediaStats,
    MediaStatsEvent,
    SessionEvent,
    WebrtcStateEvent,
    type_label,
)

__all__ = ["JanusMetrics"]

_STATES: Final = {"ice": ICE_STATES, "dtls": DTLS_STATES, "connection": PC_STATES}
_PLUGIN: Final = re.compile(r"janus\.plugin\.[a-z0-9_.]{1,40}")
_LOST_SIGN_BIT: Final = 0x800000
"""RTCP's cumulative lost is a signed 24-bit field (RFC 3550 §6.4.1); Janus passes the raw 24 bits
(src/rtcp.c, ``janus_rtcp_incoming_rr``), so values from here up are negative: none lost."""
_RTT_BUCKETS: Final = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)
_JITTER_BUCKETS: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)

_Session = tuple[str, int]  # (emitter, session_id)
_Medium = tuple[str, str]  # (mid, media)


@dataclass(slots=True)
class _Last:
    """The last cumulative counts reported for one medium."""

    values: dict[str, int] = field(default_factory=dict)

    def delta(self, name: str, value: int) -> int:
        """How much ``name`` grew since the last report (all of it after a restart or on first sight)."""
        previous = self.values.get(name)
        self.values[name] = value
        return value if previous is None or value < previous else value - previous


class JanusMetrics:
    """The ``switchyard_janus_*`` metrics; feed it every parsed event with ``apply``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.events = counter("switchyard_janus_events", "Janus events received, by type", "type")
        self.rejected = counter(
            "switchyard_janus_events_rejected", "Janus event-handler posts or events that could not be parsed"
        )
        self.sessions = Gauge("switchyard_janus_sessions", "Janus sessions alive", registry=registry)
        self.handles = Gauge(
            "switchyard_janus_handles", "Janus handles attached, by plugin", ["plugin"], registry=registry
        )
        self.ice_failures = counter("switchyard_janus_ice_failures", "ICE state changes to failed")
        self.webrtc_states = counter(
            "switchyard_janus_webrtc_states", "ICE, DTLS and PeerConnection state changes", "kind", "state"
        )
        self.rtt = Histogram(
            "switchyard_janus_media_rtt_seconds",
            "Round-trip time from RTCP, per media stats report",
            buckets=_RTT_BUCKETS,
            registry=registry,
        )
        self.jitter = Histogram(
            "switchyard_janus_media_jitter_seconds",
            "Interarrival jitter per media stats report: local = of what Janus receives, remote = as the"
            " peer reports what Janus sends",
            ["direction"],
            buckets=_JITTER_BUCKETS,
            registry=registry,
        )
        self.packets = counter(
            "switchyard_janus_media_packets", "RTP packets, in = received, out = sent", "direction"
        )
        self.packets_lost = counter(
            "switchyard_janus_media_packets_lost",
            "RTP packets lost: in = by Janus's count, out = as the peer reports (lost-by-remote)",
            "direction",
        )
        self._export_zeros()
        self._sessions: set[_Session] = set()
        self._handles: dict[_Session, dict[int, str]] = {}
        self._streams: dict[_Session, dict[int, dict[_Medium, _Last]]] = {}

    def _export_zeros(self) -> None:
        """Create the fixed label sets up front, so dashboards see 0 rather than no series."""
        for code in JanusEventType:
            self.events.labels(type=type_label(code))
        self.events.labels(type="other")
        for direction in ("in", "out"):
            self.packets.labels(direction=direction)
            self.packets_lost.labels(direction=direction)
        for direction in ("local", "remote"):
            self.jitter.labels(direction=direction)

    def reject(self, count: int = 1) -> None:
        """Count posts or events that could not be parsed."""
        self.rejected.inc(count)

    def apply(self, event: JanusEvent) -> None:
        """Update the metrics from one event."""
        self.events.labels(type=type_label(event.type)).inc()
        if isinstance(event, SessionEvent):
            self._session(event)
        elif isinstance(event, HandleEvent):
            self._handle(event)
        elif isinstance(event, WebrtcStateEvent):
            state = event.state if event.state in _STATES[event.kind] else "other"
            self.webrtc_states.labels(kind=event.kind, state=state).inc()
            if event.kind == "ice" and event.state == "failed":
                self.ice_failures.inc()
        elif isinstance(event, MediaStatsEvent):
            handle = self._streams.setdefault((event.emitter or "", event.session_id), {})
            media = handle.setdefault(event.handle_id, {})
            for medium in event.streams:
                self._medium(media, medium)
        elif isinstance(event, CoreEvent) and event.status in ("started", "shutdown"):
            self._forget_emitter(event.emitter or "")

    def _session(self, event: SessionEvent) -> None:
        key = (event.emitter or "", event.session_id)
        if event.name == "created":
            self._sessions.add(key)
        elif event.ended:
            self._sessions.discard(key)
            for handle_id in list(self._handles.get(key, ())):
                self._detach(key, handle_id)
            self._streams.pop(key, None)
        self.sessions.set(len(self._sessions))

    def _handle(self, event: HandleEvent) -> None:
        key = (event.emitter or "", event.session_id)
        handles = self._handles.setdefault(key, {})
        if event.name == "attached" and event.handle_id not in handles:
            plugin = _plugin_label(event.plugin)
            handles[event.handle_id] = plugin
            self.handles.labels(plugin=plugin).inc()
        elif event.name == "detached":
            self._detach(key, event.handle_id)
        if not handles:
            self._handles.pop(key, None)

    def _detach(self, session: _Session, handle_id: int) -> None:
        handles = self._handles.get(session, {})
        plugin = handles.pop(handle_id, None)
        if plugin is not None:
            self.handles.labels(plugin=plugin).dec()
        if not handles:
            self._handles.pop(session, None)
        streams = self._streams.get(session, {})
        streams.pop(handle_id, None)
        if not streams:
            self._streams.pop(session, None)

    def _forget_emitter(self, emitter: str) -> None:
        for session in [s for s in self._handles if s[0] == emitter]:
            for handle_id in list(self._handles[session]):
                self._detach(session, handle_id)
        self._sessions = {s for s in self._sessions if s[0] != emitter}
        self._streams = {k: v for k, v in self._streams.items() if k[0] != emitter}
        self.sessions.set(len(self._sessions))

    def _medium(self, media: dict[_Medium, _Last], m: MediaStats) -> None:
        if m.media == "data":
            return  # SCTP over DTLS: no RTP packets, loss or jitter (src/ice.c sends only the counts)
        last = media.setdefault((m.mid or "", m.media), _Last())
        self.packets.labels(direction="in").inc(last.delta("packets_in", m.packets_received))
        self.packets.labels(direction="out").inc(last.delta("packets_out", m.packets_sent))
        if m.lost is not None:
            self.packets_lost.labels(direction="in").inc(last.delta("lost_in", m.lost))
        if m.lost_by_remote is not None:
            lost_out = 0 if m.lost_by_remote >= _LOST_SIGN_BIT else m.lost_by_remote
            self.packets_lost.labels(direction="out").inc(last.delta("lost_out", lost_out))
        # Janus reports 0 until RTCP has measured anything (no RR with LSR yet): 0 is no sample.
        if m.rtt_ms:
            self.rtt.observe(m.rtt_ms / 1000)
        # Jitter is meaningful only once packets flowed that way (it starts at 0 in src/rtcp.c).
        if m.jitter_local_ms is not None and m.packets_received:
            self.jitter.labels(direction="local").observe(m.jitter_local_ms / 1000)
        if m.jitter_remote_ms is not None and m.packets_sent:
            self.jitter.labels(direction="remote").observe(m.jitter_remote_ms / 1000)


def _plugin_label(plugin: str | None) -> str:
    if plugin is None:
        return "unknown"
    return plugin if _PLUGIN.fullmatch(plugin) else "other"
