"""Links Janus SIP plugin handles to FreeSWITCH legs by SIP Call-ID, and keeps their media statistics.

The SIP plugin names the Call-ID of a call in its events (``"call-id"`` in the ``calling``, ``incomingcall``,
``accepted``... events of src/plugins/janus_sip.c, Janus 1.1.2; ``PluginEvent.sip_call_id``). FreeSWITCH has
the same Call-ID on its side of that dialog (``variable_sip_call_id``). Janus's media statistics events
(``MediaStatsEvent``) carry no Call-ID, only the (emitter, session, handle) of the PeerConnection, so the
link is made in two steps: a SIP plugin event ties the handle to a Call-ID, and later statistics of that
handle are aggregated under that Call-ID. ``CdrRecorder`` takes them (``take``) when the call closes.

A handle makes one call at a time and the plugin tears the PeerConnection down at hangup
(``janus_sip_hangup_media``), so a new Call-ID on a handle starts new statistics (the counters of the new
PeerConnection restart at zero). At most ``capacity`` calls are kept (oldest dropped first): statistics of
calls the controller never closes cannot grow without bound.

Janus counts are cumulative since the medium started (src/ice.c ``janus_ice_outgoing_stats_handle``), so
losses keep the latest (largest) value; round-trip time is averaged over the reports that carry one; jitter
keeps the worst value seen, local or remote.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from controller.janus.events import JanusEvent, MediaStatsEvent, PluginEvent, SessionEvent
from controller.store.records import WebrtcStats

__all__ = ["WebrtcLinks"]

HandleKey = tuple[str, int, int]
"""(emitter, session id, handle id): one handle of one Janus instance."""

_SIP_PLUGIN: Final = "janus.plugin.sip"


@dataclass
class _Stats:
    """What the media statistics of one call's handle taught so far."""

    session: int
    handle: int
    rtt_sum_ms: int = 0
    rtt_reports: int = 0
    jitter_max_ms: int = 0
    lost_in: int = 0
    lost_out: int = 0
    reports: int = 0

    def add(self, event: MediaStatsEvent) -> None:
        self.reports += 1
        for medium in event.streams:
            if medium.media != "audio":
                continue
            if medium.rtt_ms is not None:
                self.rtt_sum_ms += medium.rtt_ms
                self.rtt_reports += 1
            jitters = (medium.jitter_local_ms or 0, medium.jitter_remote_ms or 0)
            self.jitter_max_ms = max(self.jitter_max_ms, *jitters)
            self.lost_in = max(self.lost_in, medium.lost or 0)
            self.lost_out = max(self.lost_out, medium.lost_by_remote or 0)

    def record(self) -> WebrtcStats:
        return WebrtcStats(
            janus_session=self.session,
            janus_handle=self.handle,
            rtt_ms_avg=round(self.rtt_sum_ms / self.rtt_reports, 1) if self.rtt_reports else None,
            jitter_ms_max=float(self.jitter_max_ms),
            packets_lost_in=self.lost_in,
            packets_lost_out=self.lost_out,
            reports=self.reports,
        )


@dataclass
class WebrtcLinks:
    """Call-ID ↔ Janus handle links and their media statistics; feed it every Janus event (``apply``)."""

    capacity: int = 10_000
    _call_of: dict[HandleKey, str] = field(default_factory=dict)
    _stats: OrderedDict[str, _Stats] = field(default_factory=OrderedDict)

    def apply(self, event: JanusEvent) -> None:
        """Learn from one Janus event (SIP plugin events link, media statistics aggregate)."""
        if isinstance(event, MediaStatsEvent):
            call_id = self._call_of.get(_key(event.emitter, event.session_id, event.handle_id))
            stats = self._stats.get(call_id) if call_id is not None else None
            if stats is not None:
                stats.add(event)
        elif isinstance(event, PluginEvent):
            self._plugin(event)
        elif isinstance(event, SessionEvent) and event.ended:
            emitter = event.emitter or ""
            for key in [k for k in self._call_of if k[0] == emitter and k[1] == event.session_id]:
                del self._call_of[key]

    def _plugin(self, event: PluginEvent) -> None:
        if event.plugin != _SIP_PLUGIN or not event.sip_call_id:
            return
        if event.session_id is None or event.handle_id is None:
            return
        key = _key(event.emitter, event.session_id, event.handle_id)
        if self._call_of.get(key) == event.sip_call_id:
            return
        self._call_of[key] = event.sip_call_id
        self._stats[event.sip_call_id] = _Stats(event.session_id, event.handle_id)
        while len(self._stats) > self.capacity:
            self._stats.popitem(last=False)

    def linked(self, call_id: str) -> bool:
        """A Janus SIP handle named this Call-ID (and its statistics are still held)."""
        return call_id in self._stats

    def take(self, call_ids: Iterable[str]) -> WebrtcStats | None:
        """The statistics of the first of ``call_ids`` a Janus handle named (None if none); all of
        ``call_ids`` are forgotten."""
        found: WebrtcStats | None = None
        for call_id in call_ids:
            stats = self._stats.pop(call_id, None)
            if stats is not None and found is None:
                found = stats.record()
        return found

    def __len__(self) -> int:
        return len(self._stats)


def _key(emitter: str | None, session: int, handle: int) -> HandleKey:
    return (emitter or "", session, handle)
