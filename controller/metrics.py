"""The controller's Prometheus metrics, on a registry passed in (one per app; tests build their own).

Gauges of things the controller already holds (calls, channels per node, SIP registrations, workers by
state) are read at scrape time from callbacks, so they cannot drift from the state they describe. So is the
number of asyncio tasks on the loop that serves the scrape (the controller's): a task leak makes it grow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from controller.calls.changes import CallChange, CallEnded, CallStarted, ChannelAnswered
from controller.calls.channel import Call
from controller.calls.resync import LOST_CAUSE
from controller.calls.routes import RouteDecision

__all__ = ["CALL_DURATION_BUCKETS", "ControllerMetrics", "ScrapeGauge"]

CALL_DURATION_BUCKETS: Final = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)
"""Seconds, from a rejected call (le 1) to an hour-long one."""

Samples = Iterable[tuple[Sequence[str], float]]
"""(label values in the family's label order, value) pairs."""


class ScrapeGauge:
    """A labelled gauge family read at scrape time from one callback (one pass for all label values).

    Args:
        name: Metric name.
        documentation: Help text.
        labels: Label names.
        read: The samples, as (label values, value) pairs.
        registry: Where to register.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        read: Callable[[], Samples],
        registry: CollectorRegistry,
    ) -> None:
        self._name, self._documentation, self._labels = name, documentation, list(labels)
        self._read = read
        registry.register(self)

    def describe(self) -> Iterator[Metric]:
        """The family without samples (lets the registry check names)."""
        yield GaugeMetricFamily(self._name, self._documentation, labels=self._labels)

    def collect(self) -> Iterator[Metric]:
        """The family with one sample per label set the callback returns."""
        family = GaugeMetricFamily(self._name, self._documentation, labels=self._labels)
        for values, value in sorted(self._read()):
            family.add_metric(list(values), float(value))
        yield family


def _nothing() -> Mapping[Any, int]:
    return {}


class ControllerMetrics:
    """Counters of calls, routing and the nodes; feed it the changes and the router's decisions.

    Args:
        registry: Where every metric goes.
        active_calls: Calls in progress.
        nodes_connected: Node name -> is its ESL connection up.
        node_channels: Node name -> channels the call model holds on it (read at scrape time).
        sip_registrations: (node, profile) -> registered SIP contacts (``SipRegistrations.counts``).
        workers: State -> media workers in it (``WorkerPool.count_by_state``).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        active_calls: Callable[[], int],
        nodes_connected: Mapping[str, Callable[[], bool]],
        *,
        node_channels: Callable[[], Mapping[str, int]] = _nothing,
        sip_registrations: Callable[[], Mapping[tuple[str, str], int]] = _nothing,
        workers: Callable[[], Mapping[str, int]] = _nothing,
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
        self.call_duration = Histogram(
            "switchyard_call_duration_seconds",
            "Ended calls: answered from answer to hangup (billsec), unanswered from start to hangup",
            ["disposition"],
            buckets=CALL_DURATION_BUCKETS,
            registry=registry,
        )
        for disposition in ("answered", "unanswered"):
            self.call_duration.labels(disposition=disposition)
        self.cdr_write_failures = Counter(
            "switchyard_cdr_write_failures",
            "CDR writes that kept failing (each is retried until it lands; see /readyz)",
            ["op"],
            registry=registry,
        )
        active = Gauge("switchyard_calls_active", "Calls in progress", registry=registry)
        active.set_function(lambda: float(active_calls()))
        tasks = Gauge(
            "switchyard_asyncio_tasks",
            "Asyncio tasks not done on the controller's event loop when scraped (NaN off the loop)",
            registry=registry,
        )
        tasks.set_function(_loop_tasks)
        connected = Gauge(
            "switchyard_esl_connected", "1 when the node's ESL connection is up", ["node"], registry=registry
        )
        for name, is_up in nodes_connected.items():
            connected.labels(node=name).set_function(_as_float(is_up))
        _state_gauges(registry, node_channels, sip_registrations, workers)

    def cdr_write_failed(self, op: str) -> None:
        """A CDR write (``begin``, ``finish``, ``discard``, ``touch``) keeps failing."""
        self.cdr_write_failures.labels(op=op).inc()

    def apply(self, node: str, change: CallChange) -> None:
        """Count calls from the model's changes."""
        if isinstance(change, CallStarted):
            self.calls_started.inc()
        elif isinstance(change, ChannelAnswered):
            self.calls_answered.inc()
        elif isinstance(change, CallEnded):
            self.calls_ended.labels(cause=change.call.hangup_cause or "UNKNOWN").inc()
            self._observe_duration(change.call)

    def _observe_duration(self, call: Call) -> None:
        """Billsec of an answered call, else its time to hangup; timestamps are FreeSWITCH's (µs).

        Calls lost during a reconnect are left out: their end is when we noticed, not when they ended.
        """
        ended = call.ended_us
        if not ended or call.hangup_cause == LOST_CAUSE:
            return
        if call.answered_us:
            self.call_duration.labels(disposition="answered").observe(max(0, ended - call.answered_us) / 1e6)
        elif call.created_us:
            self.call_duration.labels(disposition="unanswered").observe(max(0, ended - call.created_us) / 1e6)

    def routed(self, decision: RouteDecision, seconds: float) -> None:
        """One routing decision, and how long it took."""
        self.route_decisions.labels(action=decision.action.kind).inc()
        self.route_seconds.observe(seconds)


def _loop_tasks() -> float:
    """Tasks not done on the running loop: ``/metrics`` is served on the controller's."""
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # collected from a thread without a running loop
        return float("nan")


def _as_float(flag: Callable[[], bool]) -> Callable[[], float]:
    return lambda: 1.0 if flag() else 0.0


def _state_gauges(
    registry: CollectorRegistry,
    node_channels: Callable[[], Mapping[str, int]],
    sip_registrations: Callable[[], Mapping[tuple[str, str], int]],
    workers: Callable[[], Mapping[str, int]],
) -> None:
    """Gauges of what the controller holds, read from the callbacks at scrape time."""
    ScrapeGauge(
        "switchyard_node_channels",
        "Channels the call model holds, per FreeSWITCH node",
        ["node"],
        lambda: (((node,), n) for node, n in node_channels().items()),
        registry,
    )
    ScrapeGauge(
        "switchyard_sip_registrations",
        "SIP contacts registered on the node, per sofia profile",
        ["node", "profile"],
        lambda: sip_registrations().items(),
        registry,
    )
    ScrapeGauge(
        "switchyard_workers",
        "Media workers the pool knows, by state (healthy, suspect, draining, lost)",
        ["state"],
        lambda: (((state,), n) for state, n in workers().items()),
        registry,
    )
