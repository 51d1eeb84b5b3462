"""The controller's Prometheus metrics, on a registry passed in (one per app; tests build their own)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.calls.changes import CallChange, CallEnded, CallStarted, ChannelAnswered
from controller.calls.routes import RouteDecision

__all__ = ["ControllerMetrics"]


class ControllerMetrics:
    """Counters of calls, routing and the nodes; feed it the changes and the router's decisions."""

    def __init__(
        self,
        registry: CollectorRegistry,
        active_calls: Callable[[], int],
        nodes_connected: Mapping[str, Callable[[], bool]],
    ) -> None:
        self.registry = registry
        self.calls_started = Counter("switchyard_calls_started", "Calls that started", registry=registry)
        self.calls_answered = Counter("switchyard_calls_answered", "Legs answered", registry=registry)
        self.calls_ended = Counter(
            "switchyard_calls_ended", "Calls that ended, by hangup cause", ["cause"], registry=registry
        )
        self.route_decisions = Counter(
            "switchyard_route_decisions", "Routing decisions by action", ["action"], registry=registry
        )
        self.route_seconds = Histogram(
            "switchyard_route_seconds",
            "From CHANNEL_PARK to the routing action confirmed (agent: stream connected)",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        active = Gauge("switchyard_calls_active", "Calls in progress", registry=registry)
        active.set_function(lambda: float(active_calls()))
        connected = Gauge(
            "switchyard_esl_connected", "1 when the node's ESL connection is up", ["node"], registry=registry
        )
        for name, is_up in nodes_connected.items():
            connected.labels(node=name).set_function(_as_float(is_up))

    def apply(self, node: str, change: CallChange) -> None:
        """Count calls from the model's changes."""
        if isinstance(change, CallStarted):
            self.calls_started.inc()
        elif isinstance(change, ChannelAnswered):
            self.calls_answered.inc()
        elif isinstance(change, CallEnded):
            self.calls_ended.labels(cause=change.call.hangup_cause or "UNKNOWN").inc()

    def routed(self, decision: RouteDecision, seconds: float) -> None:
        """One routing decision, and how long it took."""
        self.route_decisions.labels(action=decision.action.kind).inc()
        self.route_seconds.observe(seconds)


def _as_float(flag: Callable[[], bool]) -> Callable[[], float]:
    return lambda: 1.0 if flag() else 0.0
