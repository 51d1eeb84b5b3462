"""``JanusMetrics`` fed parsed events (pure: no IO), read back from its registry.

Bodies and event builders are those of ``test_janus_events`` (captured from Janus 1.1.2, or laid out as
src/events.c builds them).
"""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from controller.janus.events import parse_events
from controller.janus.metrics import JanusMetrics
from tests.unit.test_janus_events import (
    CAPTURED_COMPACT_ATTACHED,
    CAPTURED_COMPACT_CREATED,
    CAPTURED_COMPACT_END,
    event,
    stats,
)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def feed(metrics: JanusMetrics, *items: dict[str, object]) -> None:
    for item in parse_events(orjson.dumps(list(items))):
        metrics.apply(item)


def test_metrics_follow_the_captured_lifecycle() -> None:
    registry = CollectorRegistry()
    metrics = JanusMetrics(registry)
    for body in (CAPTURED_COMPACT_CREATED, CAPTURED_COMPACT_ATTACHED, CAPTURED_COMPACT_CREATED):
        for item in parse_events(body):
            metrics.apply(item)  # the repeated "created" is a retransmission: still one session
    assert value(registry, "switchyard_janus_sessions") == 1
    assert value(registry, "switchyard_janus_handles", plugin="janus.plugin.echotest") == 1
    for item in parse_events(CAPTURED_COMPACT_END):
        metrics.apply(item)
    assert value(registry, "switchyard_janus_sessions") == 0
    assert value(registry, "switchyard_janus_handles", plugin="janus.plugin.echotest") == 0
    assert value(registry, "switchyard_janus_events_total", type="session") == 3
    assert value(registry, "switchyard_janus_webrtc_states_total", kind="connection", state="hangup") == 1
    # All-zero stats before ICE completed: no RTT sample, no jitter sample, no packets.
    assert value(registry, "switchyard_janus_media_rtt_seconds_count") == 0
    assert value(registry, "switchyard_janus_media_jitter_seconds_count", direction="local") == 0
    assert value(registry, "switchyard_janus_media_packets_total", direction="in") == 0


def test_metrics_session_end_takes_handles_and_unknown_ids_change_nothing() -> None:
    registry = CollectorRegistry()
    metrics = JanusMetrics(registry)
    feed(
        metrics,
        event(2, {"name": "detached", "plugin": "janus.plugin.sip"}),  # never seen attached
        event(1, {"name": "destroyed"}, session_id=99),  # never seen created
        event(1, {"name": "created"}),
        event(2, {"name": "attached", "plugin": "janus.plugin.sip"}),
        event(2, {"name": "attached", "plugin": "evil plugin"}, handle_id=7),
        event(1, {"name": "timeout"}),
        event(2, {"name": "detached", "plugin": "janus.plugin.sip"}),  # arrives after the timeout (capture)
    )
    assert value(registry, "switchyard_janus_sessions") == 0
    assert value(registry, "switchyard_janus_handles", plugin="janus.plugin.sip") == 0
    assert value(registry, "switchyard_janus_handles", plugin="other") == 0


def test_metrics_core_start_forgets_that_janus_only() -> None:
    registry = CollectorRegistry()
    metrics = JanusMetrics(registry)
    feed(
        metrics,
        event(1, {"name": "created"}),
        event(1, {"name": "created"}, emitter="janus-b"),
        event(2, {"name": "attached", "plugin": "janus.plugin.sip"}, emitter="janus-b"),
        event(2, {"name": "attached", "plugin": "janus.plugin.sip"}),
    )
    assert value(registry, "switchyard_janus_sessions") == 2
    feed(metrics, {"emitter": "janus-b", "type": 256, "subtype": 1, "event": {"status": "started"}})
    assert value(registry, "switchyard_janus_sessions") == 1
    assert value(registry, "switchyard_janus_handles", plugin="janus.plugin.sip") == 1


def test_metrics_media_deltas_units_and_resets() -> None:
    registry = CollectorRegistry()
    metrics = JanusMetrics(registry)
    first = stats(rtt=40, lost=2, **{"lost-by-remote": 1, "jitter-local": 20, "jitter-remote": 10})
    first.update({"packets-received": 100, "packets-sent": 80})
    feed(metrics, event(32, first, 3))
    feed(metrics, event(32, {**first, "packets-received": 250, "packets-sent": 200, "lost": 5}, 3))
    feed(metrics, event(32, {**first, "packets-received": 30, "packets-sent": 10, "lost": 5}, 3))  # restart
    packets_in = value(registry, "switchyard_janus_media_packets_total", direction="in")
    assert packets_in == 100 + 150 + 30
    assert value(registry, "switchyard_janus_media_packets_total", direction="out") == 80 + 120 + 10
    assert value(registry, "switchyard_janus_media_packets_lost_total", direction="in") == 5
    assert value(registry, "switchyard_janus_media_packets_lost_total", direction="out") == 1
    assert value(registry, "switchyard_janus_media_rtt_seconds_count") == 3
    assert value(registry, "switchyard_janus_media_rtt_seconds_sum") == pytest.approx(0.12)
    jitter_sum = value(registry, "switchyard_janus_media_jitter_seconds_sum", direction="local")
    assert jitter_sum == pytest.approx(0.06)
    assert value(registry, "switchyard_janus_media_jitter_seconds_bucket", direction="remote", le="0.01") == 3
    # A negative 24-bit cumulative loss from the peer (0xFFFFFF = -1) counts as none lost.
    feed(metrics, event(32, {**first, "lost-by-remote": 0xFFFFFF, "packets-received": 30}, 3))
    assert value(registry, "switchyard_janus_media_packets_lost_total", direction="out") == 1


def test_metrics_forget_a_stream_when_its_handle_detaches() -> None:
    registry = CollectorRegistry()
    metrics = JanusMetrics(registry)
    medium = event(32, stats(**{"packets-received": 500, "packets-sent": 0}), 3)
    feed(metrics, event(2, {"name": "attached", "plugin": "janus.plugin.sip"}), medium, medium)
    assert value(registry, "switchyard_janus_media_packets_total", direction="in") == 500
    feed(metrics, event(2, {"name": "detached"}), medium)  # plugin absent on detach: remembered from attach
    assert value(registry, "switchyard_janus_media_packets_total", direction="in") == 1000
    assert value(registry, "switchyard_janus_handles", plugin="janus.plugin.sip") == 0
    data = {"mid": "1", "media": "data", "packets-received": 7, "packets-sent": 7}
    feed(metrics, event(32, data, 3))
    assert value(registry, "switchyard_janus_media_packets_total", direction="in") == 1000


def test_metrics_forget_streams_of_a_session_that_ends() -> None:
    registry = CollectorRegistry()
    metrics = JanusMetrics(registry)
    medium = event(32, stats(**{"packets-received": 0, "packets-sent": 300}), 3)
    feed(metrics, medium, medium)  # a handle whose attach the controller never saw
    assert value(registry, "switchyard_janus_media_packets_total", direction="out") == 300
    feed(metrics, event(1, {"name": "destroyed"}), medium)  # no detach arrives: the session's end is enough
    assert value(registry, "switchyard_janus_media_packets_total", direction="out") == 600


def test_metrics_ice_failures_and_unknown_states() -> None:
    registry = CollectorRegistry()
    metrics = JanusMetrics(registry)
    feed(
        metrics,
        event(16, {"ice": "connecting", "stream_id": 1, "component_id": 1}, 1),
        event(16, {"ice": "failed", "stream_id": 1, "component_id": 1}, 1),
        event(16, {"dtls": "trying", "stream_id": 1, "component_id": 1, "retransmissions": 0}, 5),
        event(16, {"dtls": "no-such-state"}, 5),
    )
    assert value(registry, "switchyard_janus_ice_failures_total") == 1
    assert value(registry, "switchyard_janus_webrtc_states_total", kind="ice", state="failed") == 1
    assert value(registry, "switchyard_janus_webrtc_states_total", kind="dtls", state="trying") == 1
    assert value(registry, "switchyard_janus_webrtc_states_total", kind="dtls", state="other") == 1
    assert value(registry, "switchyard_janus_events_total", type="webrtc") == 4
    metrics.reject(2)
    assert value(registry, "switchyard_janus_events_rejected_total") == 2
