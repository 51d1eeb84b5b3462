"""``POST /janus/events`` over loopback as Janus's sample event handler calls it, scraped as Prometheus does.

Janus 1.1.2's ``libjanus_sampleevh.so`` (src/events/janus_sampleevh.c) posts ``Content-Type:
application/json`` with preemptive basic auth (curl), a JSON array when ``grouping = true``, gzipped with
``Content-Encoding: gzip`` when ``compress = true``. Events are laid out as src/events.c builds them.
"""

from __future__ import annotations

import base64
import gzip
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.api.janus_events import MAX_BODY_BYTES, add_janus_event_routes
from controller.janus.metrics import JanusMetrics
from tests.appkit import served
from tests.controllerkit import running_controller
from tests.fsemu import FreeSwitchEmulator
from tests.januskit import janus_event

USER, PASSWORD = "janus", "s3cret-ä:with-colon"


def basic(user: str, password: str) -> str:
    """An ``Authorization`` value as curl sends it (RFC 7617; the password's UTF-8 bytes)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AUTH = basic(USER, PASSWORD)
SESSION, HANDLE = 4466400800009511, 3694289515490503


@dataclass
class EventsPeer:
    """The route on a loopback port, its registry, and a client."""

    url: str
    registry: CollectorRegistry
    http: aiohttp.ClientSession

    async def post(self, body: Any, auth: str | None = AUTH, **kw: Any) -> aiohttp.ClientResponse:
        data = body if isinstance(body, bytes | io.BytesIO) else orjson.dumps(body)
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        if auth is not None:
            headers["Authorization"] = auth
        async with self.http.post(self.url, data=data, headers=headers, **kw) as response:
            await response.read()
            return response

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of ``generate_latest`` (the text Prometheus reads), by name and labels."""
        text = generate_latest(self.registry).decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.scrape().get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def peer() -> AsyncIterator[EventsPeer]:
    registry = CollectorRegistry()
    app = web.Application(client_max_size=64 * 1024)  # as the controller's API app
    add_janus_event_routes(app, JanusMetrics(registry), USER, PASSWORD)
    async with served(app, access_log=None) as port, aiohttp.ClientSession() as http:
        yield EventsPeer(f"http://127.0.0.1:{port}/janus/events", registry, http)


ev = partial(janus_event, session=SESSION, handle=HANDLE)


def stats(
    received: int, sent: int, lost: int = 0, lost_by_remote: int = 0, **more: object
) -> dict[str, object]:
    body: dict[str, object] = {
        "mid": "0", "mindex": 0, "media": "audio", "codec": "opus", "base": 48000, "rtt": 0, "lost": lost,
        "lost-by-remote": lost_by_remote, "jitter-local": 0, "jitter-remote": 0, "in-link-quality": 100,
        "packets-received": received, "packets-sent": sent, "bytes-received": received * 100,
        "bytes-sent": sent * 100,
    }  # fmt: skip
    body.update(more)
    return body


async def test_basic_auth(peer: EventsPeer) -> None:
    created = ev(1, {"name": "created"})
    missing = await peer.post([created], auth=None)
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Basic ")
    async with peer.http.post(peer.url, data=b"[]") as response:
        body = await response.json()
    assert body == {"error": {"status": 401, "field": "Authorization", "reason": body["error"]["reason"]}}
    for auth in (
        basic(USER, "wrong"),
        basic("other", PASSWORD),
        basic(USER, PASSWORD[:-1]),
        basic(USER, PASSWORD + "x"),
        "Bearer " + PASSWORD,
        "Basic !!!",
        "Basic " + base64.b64encode(USER.encode()).decode(),  # no colon
        AUTH[len("Basic ") :],  # no scheme
    ):
        assert (await peer.post([created], auth=auth)).status == 401, auth
    assert peer.value("switchyard_janus_events_total", type="session") == 0
    ok = await peer.post([created])
    assert ok.status == 204
    assert peer.value("switchyard_janus_events_total", type="session") == 1
    assert peer.value("switchyard_janus_sessions") == 1


def grouped_call_events() -> list[dict[str, object]]:
    """One group as the handler posts it: a session, two handles, ICE/DTLS/PC states, combined stats..."""
    video = stats(900, 850, lost=4, lost_by_remote=3, media="video", mid="1", mindex=1, codec="vp8")
    video.update({"rtt": 35, "jitter-local": 12, "jitter-remote": 7})
    return [
        ev(1, {"name": "created", "transport": {"transport": "janus.transport.http", "id": "1"}}),
        ev(2, {"name": "attached", "plugin": "janus.plugin.sip", "opaque_id": "web-1"}, opaque_id="web-1"),
        ev(2, {"name": "attached", "plugin": "janus.plugin.echotest"}, handle_id=HANDLE + 1),
        ev(8, {"owner": "remote", "jsep": {"type": "offer", "sdp": "v=0\r\n"}}),
        ev(16, {"ice": "gathering", "stream_id": 1, "component_id": 1}, 1),
        ev(16, {"ice": "connecting", "stream_id": 1, "component_id": 1}, 1),
        ev(16, {"ice": "failed", "stream_id": 1, "component_id": 1}, 1),
        ev(16, {"ice": "connected", "stream_id": 1, "component_id": 1}, 1),
        ev(16, {"selected-pair": "192.0.2.2:47010 [host,udp] <-> 192.0.2.3:5000 [host,udp]"}, 4),
        ev(16, {"dtls": "trying", "stream_id": 1, "component_id": 1, "retransmissions": 0}, 5),
        ev(16, {"dtls": "connected", "stream_id": 1, "component_id": 1, "retransmissions": 0}, 5),
        ev(16, {"connection": "webrtcup"}, 6),
        ev(32, [stats(500, 480, rtt=20, **{"jitter-local": 3, "jitter-remote": 4}), video], 3),
        ev(64, {"plugin": "janus.plugin.sip", "data": {"event": "calling", "call-id": "abc"}}),
        {"emitter": "janus-a", "type": 128, "timestamp": 1, "event": {"transport": "janus.transport.http"}},
        {"emitter": "janus-a", "type": 256, "subtype": 1, "timestamp": 1, "event": {"status": "update"}},
        {"emitter": "janus-a", "type": 4, "timestamp": 1, "event": {"schema": "x", "data": {}}},
        {"type": 4096, "event": {}},
    ]


async def test_grouped_events_become_metrics(peer: EventsPeer) -> None:
    group = grouped_call_events()
    assert (await peer.post(group)).status == 204
    m = peer.scrape()

    def get(name: str, **labels: str) -> float:
        return m.get((name, frozenset(labels.items())), 0.0)

    counts = {
        t: get("switchyard_janus_events_total", type=t) for t in ("session", "handle", "jsep", "webrtc")
    }
    assert counts == {"session": 1, "handle": 2, "jsep": 1, "webrtc": 8}
    for t in ("media", "plugin", "transport", "core", "external", "other"):
        assert get("switchyard_janus_events_total", type=t) == 1, t
    assert get("switchyard_janus_sessions") == 1
    assert get("switchyard_janus_handles", plugin="janus.plugin.sip") == 1
    assert get("switchyard_janus_handles", plugin="janus.plugin.echotest") == 1
    assert get("switchyard_janus_ice_failures_total") == 1
    assert get("switchyard_janus_webrtc_states_total", kind="ice", state="connected") == 1
    assert get("switchyard_janus_webrtc_states_total", kind="dtls", state="connected") == 1
    assert get("switchyard_janus_webrtc_states_total", kind="connection", state="webrtcup") == 1
    assert get("switchyard_janus_media_packets_total", direction="in") == 500 + 900
    assert get("switchyard_janus_media_packets_total", direction="out") == 480 + 850
    assert get("switchyard_janus_media_packets_lost_total", direction="in") == 4
    assert get("switchyard_janus_media_packets_lost_total", direction="out") == 3
    assert get("switchyard_janus_media_rtt_seconds_count") == 2
    assert get("switchyard_janus_media_rtt_seconds_sum") == pytest.approx(0.055)
    assert get("switchyard_janus_media_rtt_seconds_bucket", le="0.02") == 1
    assert get("switchyard_janus_media_jitter_seconds_sum", direction="local") == pytest.approx(0.015)
    assert get("switchyard_janus_media_jitter_seconds_sum", direction="remote") == pytest.approx(0.011)
    assert get("switchyard_janus_events_rejected_total") == 0


async def test_cumulative_stats_count_deltas(peer: EventsPeer) -> None:
    attach = ev(2, {"name": "attached", "plugin": "janus.plugin.sip"})

    async def report(received: int, sent: int, lost: int, lost_by_remote: int) -> None:
        body = ev(32, stats(received, sent, lost, lost_by_remote), 3)
        assert (await peer.post([body])).status == 204

    def totals() -> tuple[float, ...]:
        return (
            peer.value("switchyard_janus_media_packets_total", direction="in"),
            peer.value("switchyard_janus_media_packets_total", direction="out"),
            peer.value("switchyard_janus_media_packets_lost_total", direction="in"),
            peer.value("switchyard_janus_media_packets_lost_total", direction="out"),
        )

    assert (await peer.post([attach])).status == 204
    await report(100, 90, 1, 0)
    assert totals() == (100, 90, 1, 0)
    await report(250, 240, 3, 2)
    await report(250, 240, 3, 2)  # a retransmitted post adds nothing
    assert totals() == (250, 240, 3, 2)
    await report(40, 30, 0, 1)  # lower than before: the medium restarted, the new values count in full
    assert totals() == (290, 270, 3, 3)
    assert (await peer.post([ev(2, {"name": "detached", "plugin": "janus.plugin.sip"})])).status == 204
    assert peer.value("switchyard_janus_handles", plugin="janus.plugin.sip") == 0
    await report(60, 50, 0, 1)  # same ids after the detach: a new stream, counted from zero
    assert totals() == (350, 320, 3, 4)


async def test_malformed_bodies_are_400_and_counted(peer: EventsPeer) -> None:
    bad = await peer.post(b'[{"type": 1, "session_id": 1, "event": {"name": "created"}')
    assert bad.status == 400
    async with peer.http.post(peer.url, data=b"{nope", headers={"Authorization": AUTH}) as response:
        assert response.status == 400
        assert response.content_type == "application/json"
        error = (await response.json())["error"]
    assert (error["status"], error["field"]) == (400, "body")
    assert "not valid JSON" in error["reason"]
    assert (await peer.post(b"[1, 2]")).status == 400
    assert peer.value("switchyard_janus_events_rejected_total") == 3
    # A well-formed array with one malformed event: the others count, the bad one is rejected.
    half = [
        ev(1, {"name": "created"}),
        {"type": 2, "event": {"name": "attached"}},
        ev(16, {"ice": "ready"}, 1),
    ]
    assert (await peer.post(half)).status == 204
    assert peer.value("switchyard_janus_events_rejected_total") == 4
    assert peer.value("switchyard_janus_sessions") == 1
    assert peer.value("switchyard_janus_webrtc_states_total", kind="ice", state="ready") == 1


async def test_gzip_body_as_janus_compresses(peer: EventsPeer) -> None:
    body = gzip.compress(orjson.dumps([ev(1, {"name": "created"}), ev(1, {"name": "created"}, session_id=2)]))
    response = await peer.post(body, headers={"Content-Encoding": "gzip"})
    assert response.status == 204
    assert peer.value("switchyard_janus_sessions") == 2


async def test_body_size_limit(peer: EventsPeer) -> None:
    # Over the API app's 64 KiB limit but under 1 MiB: accepted (an SDP-heavy group of 100 events).
    sdp = "v=0\r\n" + "a=candidate:1 1 udp 2015363327 192.0.2.2 47010 typ host\r\n" * 40
    group = [ev(8, {"owner": "local", "jsep": {"type": "offer", "sdp": sdp}}) for _ in range(100)]
    data = orjson.dumps(group)
    assert 64 * 1024 < len(data) < MAX_BODY_BYTES
    assert (await peer.post(data)).status == 204
    assert peer.value("switchyard_janus_events_total", type="jsep") == 100
    too_big = io.BytesIO(b"[" + b" " * MAX_BODY_BYTES + b"]")
    assert (await peer.post(too_big)).status == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies while reading
        for _ in range(MAX_BODY_BYTES // 65536 + 1):
            yield b" " * 65536

    async with peer.http.post(peer.url, data=chunks(), headers={"Authorization": AUTH}) as response:
        assert response.status == 413
    assert peer.value("switchyard_janus_events_rejected_total") == 2


async def test_controller_serves_the_route_when_enabled(emulator: FreeSwitchEmulator, tmp_path: Path) -> None:
    janus = {"events": {"enabled": True, "user": USER, "password": PASSWORD}}
    async with running_controller(emulator, tmp_path, janus=janus) as rc:
        url = f"{rc.base}/janus/events"
        created = orjson.dumps([ev(1, {"name": "created"})])
        async with rc.http.post(url, data=created) as response:  # the API's bearer token is no use here
            assert response.status == 401
        async with rc.http.post(url, data=created, headers={"Authorization": AUTH}) as response:
            assert response.status == 204
        async with rc.http.get(f"{rc.base}/metrics") as response:
            text = await response.text()
        assert "switchyard_janus_sessions 1.0" in text.splitlines()
        async with rc.http.get(f"{rc.base}/openapi.json") as response:
            assert "/janus/events" not in (await response.json())["paths"]


async def test_controller_has_no_route_when_disabled(emulator: FreeSwitchEmulator, tmp_path: Path) -> None:
    async with running_controller(emulator, tmp_path) as rc:
        headers = {"Authorization": AUTH}
        async with rc.http.post(f"{rc.base}/janus/events", data=b"[]", headers=headers) as response:
            assert response.status == 404
        async with rc.http.get(f"{rc.base}/metrics") as response:
            assert "switchyard_janus_sessions" not in await response.text()
