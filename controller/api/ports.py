"""What the HTTP API depends on: small interfaces, each built and owned by the ``Controller``.

The handlers see only these ports, never the controller itself: ``controller/app.py`` builds them, bundles
them as ``ApiPorts`` and hands them to ``build_app`` (which keeps them under the ``PORTS`` app key); the API
does not import app.py. Each port is a ``Protocol`` that the controller's own part satisfies::

    Calls              live calls and the operations on them       CallControl
    WorkerStreams      a call's audio stream to a worker            AgentStreams
    Workers            the worker registry (heartbeats, listing)    WorkerPool
    CdrQueries         reading CDRs                                 CdrStore
    Registrations      SIP registrations as the nodes list them    SipRegistrations
    NodeStatus         one FreeSWITCH node's health                 FreeSwitchNode
    JanusStatus        the Janus instance's health                  JanusAdapter
    Routes             the route table and its reload               Controller
    BrowserIdentities  short-lived WebRTC identities                BrowserUsers
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry

from controller.calls.cdr_writer import WriteHealth as CdrWriteHealth
from controller.calls.channel import Channel
from controller.calls.originate import Originate
from controller.calls.originations import Origination
from controller.calls.registry import CallRegistry
from controller.calls.routes import RouteTable
from controller.feed import EventFeed
from controller.janus.browsers import BrowserUser
from controller.janus.events import JanusEvent
from controller.janus.metrics import JanusMetrics
from controller.registrations import RegistrationTable
from controller.settings import FreeSwitchNodeSettings
from controller.store import CdrPage, CdrQuery, CdrRecord
from controller.workers.pool import Heartbeat, WorkerInfo
from controller.workers.streams import StreamRequest

__all__ = [
    "PORTS",
    "ApiPorts",
    "BrowserIdentities",
    "Calls",
    "CdrQueries",
    "JanusEvents",
    "JanusStatus",
    "NodeStatus",
    "Registrations",
    "Routes",
    "WorkerStreams",
    "Workers",
]


class Calls(Protocol):
    """Live calls and the operations on them; each returns once FreeSWITCH confirmed it (raises
    ``controller.calls.sender.CallError``)."""

    @property
    def model(self) -> CallRegistry: ...

    def leg(self, call_id: str, uuid: str | None = None) -> Channel: ...

    def nodes(self) -> dict[str, bool]: ...

    async def originate(self, request: Originate) -> Origination: ...

    def origination(self, call_id: str) -> Origination | None: ...

    async def answer(self, ch: Channel) -> None: ...

    async def hangup(self, ch: Channel, cause: str = ...) -> None: ...

    async def park(self, ch: Channel) -> None: ...

    async def hold(self, ch: Channel, held: bool) -> None: ...

    async def transfer(self, ch: Channel, destination: str, context: str) -> None: ...

    async def bridge(self, a: Channel, b: Channel) -> None: ...

    async def send_dtmf(self, ch: Channel, digits: str) -> None: ...

    async def play(self, ch: Channel, file: str) -> bool: ...

    async def record_start(self, ch: Channel, path: str) -> None: ...

    async def record_stop(self, ch: Channel) -> list[str]: ...

    async def stream_start(self, ch: Channel, url: str, rate: int, metadata: str) -> None: ...

    async def stream_stop(self, ch: Channel) -> None: ...


class WorkerStreams(Protocol):
    """Streams a leg to the least-loaded healthy worker (raises ``NoWorkerAvailable``)."""

    async def start(self, request: StreamRequest) -> WorkerInfo: ...


class Workers(Protocol):
    """The media workers' registry."""

    def heartbeat(self, beat: Heartbeat) -> WorkerInfo: ...

    def snapshot(self) -> list[dict[str, object]]: ...


class CdrQueries(Protocol):
    """Reading call detail records (raises ``controller.store.StoreError``)."""

    async def query(self, query: CdrQuery) -> CdrPage: ...

    async def get(self, call_id: str) -> CdrRecord | None: ...


class Registrations(Protocol):
    """SIP registrations as every configured node lists them."""

    async def table(self) -> RegistrationTable: ...


class _Server(Protocol):
    """A server the controller keeps a connection to."""

    @property
    def name(self) -> str: ...

    @property
    def connects(self) -> int: ...


class NodeStatus(_Server, Protocol):
    """One FreeSWITCH node's health."""

    @property
    def settings(self) -> FreeSwitchNodeSettings: ...

    @property
    def connected(self) -> bool: ...

    @property
    def overflows(self) -> int: ...


class SessionLister(Protocol):
    """The part of the Janus Admin API the API asks (raises ``JanusError``)."""

    async def list_sessions(self) -> list[int]: ...


class JanusStatus(_Server, Protocol):
    """The Janus instance as its adapter sees it."""

    @property
    def healthy(self) -> bool: ...

    @property
    def last_error(self) -> str | None: ...

    @property
    def admin(self) -> SessionLister: ...


class Routes(Protocol):
    """The route table in use, and its reload from the settings' sources (raises ``SettingsError``)."""

    def route_table(self) -> RouteTable: ...

    def reload_routes(self) -> RouteTable: ...


class BrowserIdentities(Protocol):
    """Short-lived browser identities (``controller.janus.browsers``); ``create`` raises ``JanusError``."""

    @property
    def domain(self) -> str: ...

    async def create(
        self, display_name: str | None = None, caller_id_number: str | None = None
    ) -> BrowserUser: ...

    def lookup(self, username: str) -> BrowserUser | None: ...

    def feed_subject(self, token: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class JanusEvents:
    """Where Janus's event handler posts go: the metrics, then ``apply`` (e.g. ``WebrtcLinks.apply``)."""

    metrics: JanusMetrics
    apply: Callable[[JanusEvent], None]


@dataclass(frozen=True, slots=True)
class ApiPorts:
    """Every port the API uses; the optional ones are None when their feature is off."""

    calls: Calls
    streams: WorkerStreams
    workers: Workers
    cdrs: CdrQueries
    registrations: Registrations
    nodes: Mapping[str, NodeStatus]
    channels_per_node: Callable[[], Mapping[str, int]]
    routes: Routes
    feed: EventFeed
    metrics: CollectorRegistry
    janus: JanusStatus | None = None
    janus_events: JanusEvents | None = None
    browsers: BrowserIdentities | None = None
    cdr_writes: Callable[[], CdrWriteHealth] | None = None  # CdrRecorder.health


PORTS = web.AppKey("ports", ApiPorts)
"""The application's ports (``build_app`` sets it)."""
