"""The controller assembled: nodes, call model, consumers of its changes, and the HTTP API.

Data flows one way (ARCHITECTURE.md): node events → ``CallModel.apply`` → changes → consumers, in this
order: confirmation waiters, originations, playback, agent streams, router, CDRs, metrics, event feed.
Every command to FreeSWITCH goes through the one ``CommandSender``. Every node event also goes to
``SipRegistrations`` (sofia's registration events; a recount after each resync) and to ``Originations``
(BACKGROUND_JOBs, late ones included).

The HTTP API sees only the ports the controller builds for it (``controller.api.ports.ApiPorts``): API
handlers issue commands through ``CallControl``, and the events those cause update the model. The
controller owns every service behind them, the browser identities and their expiry timer included.

``Controller`` is used as ``async with Controller(settings) as c: await c.serve(stop)``; tests run it against
the FreeSWITCH emulator with ``api.port: 0`` and read ``c.api_port`` (and ``c.api_tls_port``, the HTTPS
listener's, with ``api.tls``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from prometheus_client import CollectorRegistry

from controller.api.ports import ApiPorts, JanusEvents
from controller.api.server import build_app
from controller.calls.cdr import CdrRecorder
from controller.calls.cdr_writer import RetryPolicy
from controller.calls.changes import CallChange
from controller.calls.channel import Channel
from controller.calls.contexts import DialingContexts
from controller.calls.control import CallControl
from controller.calls.model import CallModel
from controller.calls.originations import Originations
from controller.calls.playback import AgentPlayback
from controller.calls.router import CallRouter
from controller.calls.routes import RouteDecision, RouteTable
from controller.calls.sender import CommandSender
from controller.calls.snapshot import SnapshotReader
from controller.calls.speechfiles import SpeechFiles
from controller.calls.transfers import AgentTransfers
from controller.calls.waiters import ChangeWaiters
from controller.feed import EventFeed
from controller.freeswitch.events import ChannelsResync
from controller.freeswitch.node import FreeSwitchNode, NodeEvent
from controller.janus.adapter import JanusAdapter
from controller.janus.browsers import AdapterTokens, BrowserUsers
from controller.janus.link import WebrtcLinks
from controller.janus.metrics import JanusMetrics
from controller.metrics import ControllerMetrics
from controller.registrations import SipRegistrations
from controller.settings import Settings
from controller.store import CdrStore
from controller.store.sqlite import SqliteCdrStore
from controller.workers.pool import WorkerPool
from controller.workers.streams import AgentStreams
from switchyard.httpserver import HttpServer
from switchyard.tasks import TaskSet
from switchyard.tls import server_context

__all__ = ["ChangeConsumer", "Controller", "RouteLoader", "on_signal"]

log = logging.getLogger("switchyard")

LATE_LOOK_S = 0.5
"""The second look after a resync: longer than the core database's lag (0.1-0.3 s, show_json.txt)."""


class ChangeConsumer(Protocol):
    """Anything fed the call model's changes."""

    def apply(self, node: str, change: CallChange) -> None: ...


class RouteLoader(Protocol):
    """Re-reads the route table from the settings' sources (raises ``SettingsError``)."""

    def __call__(self) -> RouteTable: ...


class Controller:
    """Everything the controller runs, built from the settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        load_routes: RouteLoader | None = None,
        store: CdrStore | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        calls = settings.calls
        self.load_routes = load_routes
        self.model = CallModel()
        self.waiters = ChangeWaiters()
        self.nodes = {name: FreeSwitchNode(s) for name, s in settings.freeswitch.items()}
        # The Janus adapter (its Admin API: ``self.janus.admin``); None unless janus.enabled.
        self.janus = JanusAdapter(settings.janus) if settings.janus.enabled else None
        self.pool = WorkerPool(settings.worker_pool.missed_beats, settings.worker_pool.suspect_s)
        self.sender = CommandSender(self.nodes, self.waiters)  # every command to FreeSWITCH goes through it
        # Originates by the uuid we chose: settled by their BACKGROUND_JOB, else by their leg's events.
        self.originations = Originations(self.sender, self.model.channel, calls.deadlines.originate_probe)
        self.control = CallControl(
            self.model,
            self.sender,
            calls.deadlines.confirm,
            sip_domain=calls.sip_domain,
            originate_margin=calls.deadlines.originate_margin,
            originations=self.originations,
        )
        self.streams = AgentStreams(
            self.pool,
            self.sender,
            settings.worker_pool,
            settings.media_worker.stream_key(),
            on_moved=self._stream_moved,
        )
        cdr = settings.cdr
        self.store = store or SqliteCdrStore(Path(cdr.path), busy_timeout_s=cdr.busy_timeout_s)
        self.webrtc_links = WebrtcLinks()  # Janus handle ↔ SIP Call-ID, fed by /janus/events
        self.cdrs = CdrRecorder(
            self.store, self.model, self.webrtc_links, sender=self.sender,
            retry=RetryPolicy(cdr.retry_initial_s, cdr.retry_max_s, cdr.surface_after),
            on_write_failure=lambda op: self.metrics.cdr_write_failed(op),  # noqa: PLW0108 - built below
            followed=lambda: [name for name, node in self.nodes.items() if node.connected],
            touch_every_s=cdr.touch_every_s,
        )  # fmt: skip
        self.snapshots = SnapshotReader(self.sender)
        self._late_looks = TaskSet()
        self.playback = AgentPlayback(
            self.sender,
            AgentTransfers(
                DialingContexts(calls.context).agent,
                {agent.name: agent.transfers for agent in settings.agents},
                lambda: self.router.table,
                [user.extension for user in settings.users],
            ),
            on_refused=self.cdrs.note,
            files=SpeechFiles({name: node.temp_dir for name, node in settings.freeswitch.items()}),
        )
        self.feed = EventFeed(max_subscribers=settings.api.max_feed_subscribers)
        self.registrations = SipRegistrations(self.sender, self.nodes)
        self.metrics = ControllerMetrics(
            registry or CollectorRegistry(),
            lambda: len(self.model.calls),
            {name: _is_connected(node) for name, node in self.nodes.items()},
            node_channels=self.node_channels,
            sip_registrations=self.registrations.counts,
            workers=self.pool.count_by_state,
        )
        self.router = CallRouter(
            RouteTable(calls.routes, calls.unknown_cause),
            self.control,
            self.streams,
            sip_domain=calls.sip_domain,
            on_decision=self._routed,
            on_adopted=self.playback.serving,
        )
        events = settings.janus.events
        self.janus_metrics = JanusMetrics(self.metrics.registry) if events.enabled else None
        self.browsers = self._browser_users()
        self.consumers: tuple[ChangeConsumer, ...] = (
            self.waiters, self.originations, self.playback, self.streams, self.router, self.cdrs,
            self.metrics, self.feed,
        )  # fmt: skip
        self._stack = contextlib.AsyncExitStack()
        self.api_server: HttpServer | None = None
        self.api_port = 0
        self.api_tls_port = 0  # the HTTPS listener's, with api.tls

    def _browser_users(self) -> BrowserUsers | None:
        """The browser identities (``POST /v1/webrtc/session``) when Janus and its directory are on; an
        expired user's registrations are flushed on the nodes."""
        janus, s = self.janus, self.settings
        if janus is None or not s.janus.directory.enabled:
            return None
        domain = s.calls.sip_domain or s.sip.domain
        users = BrowserUsers(
            AdapterTokens(janus), domain, s.janus.session_ttl_s, unregister=self.registrations.flush
        )
        janus.on_connect(users.restore_tokens)  # a restarted Janus forgot their tokens
        return users

    def node_channels(self) -> dict[str, int]:
        """Live channels of the model per node (every configured node present)."""
        return _channels_per_node(self.model, self.nodes)

    def route_table(self) -> RouteTable:
        """The route table in use."""
        return self.router.table

    def api_ports(self) -> ApiPorts:
        """What the HTTP API may use of the controller."""
        events = self.janus_metrics
        return ApiPorts(
            calls=self.control,
            streams=self.streams,
            workers=self.pool,
            cdrs=self.store,
            registrations=self.registrations,
            nodes=self.nodes,
            channels_per_node=self.node_channels,
            routes=self,
            feed=self.feed,
            metrics=self.metrics.registry,
            janus=self.janus,
            janus_events=None if events is None else JanusEvents(events, self.webrtc_links.apply),
            browsers=self.browsers,
            cdr_writes=self.cdrs.health,
        )

    def _stream_moved(self, uuid: str, worker: str, starts: int) -> None:
        self.cdrs.stream_moved(uuid, worker, starts)

    def _routed(self, ch: Channel, decision: RouteDecision, seconds: float) -> None:
        self.metrics.routed(decision, seconds)
        if decision.action.kind == "agent":
            self.playback.serving(ch.uuid, decision.action.arg)
        self.cdrs.routed(ch, decision, self.streams.worker_of(ch.uuid), self.streams.attempts_of(ch.uuid))

    def reload_routes(self) -> RouteTable:
        """Re-read the routes (SIGHUP, ``POST /v1/routes/reload``); calls in progress are not touched.

        Raises:
            SettingsError: the new settings are invalid; the old table stays.
        """
        if self.load_routes is None:
            return self.router.table
        table = self.load_routes()
        self.router.reload(table)
        log.info("routes reloaded: %d route(s)", len(table.routes))
        self.feed.publish({"type": "routes_reloaded", "routes": len(table.routes)})
        return table

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = self._stack
        await stack.enter_async_context(self.store)
        self.cdrs.start()
        stack.push_async_callback(self.cdrs.aclose)
        if self.janus is not None:
            # Before the API, so the API's browser identities can still remove their Janus tokens when the
            # API shuts down; entering does not wait for Janus to be up.
            await stack.enter_async_context(self.janus)
        if self.browsers is not None:
            # Closed after the API, before Janus: expiring the identities removes their Janus tokens.
            self.browsers.start()
            stack.push_async_callback(self.browsers.aclose)
        await self._serve_api()
        for node in self.nodes.values():
            await stack.enter_async_context(node)
        stack.push_async_callback(self._late_looks.aclose)
        stack.push_async_callback(self.router.aclose)
        stack.push_async_callback(self.streams.aclose)
        stack.push_async_callback(self.playback.aclose)
        stack.push_async_callback(self.registrations.aclose)
        stack.push_async_callback(self.originations.aclose)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    async def _serve_api(self) -> None:
        s = self.settings
        keys = s.api.idempotency.path or s.cdr.path.with_name("idempotency.sqlite3")
        app = build_app(self.api_ports(), s.api, s.calls, s.janus, s.users, idempotency_path=keys)
        api = self.settings.api
        self.api_server = HttpServer(app, api.http, name="API", access_log=None)
        await self._stack.enter_async_context(self.api_server)
        self.api_port = await self.api_server.listen(api.host, api.port)
        log.info("API on %s:%d", api.host, self.api_port)
        if api.tls is not None:  # HTTPS beside it (switchyard.tls), within the same limits
            host = api.tls.host or api.host
            self.api_tls_port = await self.api_server.listen(host, api.tls.port, server_context(api.tls))
            log.info("API over HTTPS on %s:%d", host, self.api_tls_port)

    async def serve(self, stop: asyncio.Event) -> None:
        """Follow every node until ``stop`` is set."""
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self.follow(n), name=f"follow {n.name}") for n in self.nodes.values()]
            await stop.wait()
            log.info("stopping")
            for node in self.nodes.values():
                await node.aclose()
            for task in tasks:
                task.cancel()

    async def follow(self, node: FreeSwitchNode) -> None:
        """Apply one node's events to the model and its changes to every consumer."""
        name, registrations, originations = node.name, self.registrations, self.originations
        async for received in node.events():
            event = await self._complete_resync(received) if type(received) is ChannelsResync else received
            if event is None:
                continue  # the node went away while its resync was completed: its next connect resyncs again
            registrations.apply(name, event)
            originations.on_event(name, event)
            self._apply(name, event)
            if type(event) is ChannelsResync:
                await self.cdrs.reconcile(name)
                self._late_looks.spawn(self._late_look(name), f"late look {name}")

    def _apply(self, name: str, event: NodeEvent) -> None:
        for change in self.model.apply(name, event):
            for consumer in self.consumers:
                consumer.apply(name, change)

    async def _complete_resync(self, snapshot: ChannelsResync) -> ChannelsResync | None:
        """The snapshot with each channel's own record (``controller.calls.snapshot``), looking also for the
        legs of the node's open CDR rows that the lagging table may not list yet."""
        expected = await self.cdrs.load_open(snapshot.node)
        return await self.snapshots.complete(snapshot, expected)

    async def _late_look(self, name: str) -> None:
        """``LATE_LOOK_S`` after a resync, list the node's channels again and add those the model lacks: a
        channel created just before the connect (its events went to no one) may be listed only this late
        (tests/fixtures/live/show_json.txt: up to 0.18 s after it exists). Applied like an event."""
        await asyncio.sleep(LATE_LOOK_S)
        late = await self.snapshots.late(name, self.model.channels.keys())
        if late is not None:
            self._apply(name, late)


def on_signal(loop: asyncio.AbstractEventLoop, signum: int, callback: Callable[[], object]) -> None:
    """Run ``callback`` on ``signum`` (SIGHUP reload), logging what it raises."""

    def run() -> None:
        try:
            callback()
        except Exception as exc:  # the old table stays; say why
            log.error("signal %d: %s", signum, exc)

    loop.add_signal_handler(signum, run)


def _is_connected(node: FreeSwitchNode) -> Callable[[], bool]:
    return lambda: node.connected


def _channels_per_node(model: CallModel, nodes: Iterable[str]) -> dict[str, int]:
    """Live channels of the model per node (every configured node present)."""
    counts = dict.fromkeys(nodes, 0)
    for ch in model.channels.values():
        counts[ch.node] = counts.get(ch.node, 0) + 1
    return counts
