"""Issue 17 item 6: limits.

The controller's event feed took any number of subscribers (each a socket and a 1000-event queue); now
``api.max_feed_subscribers`` are served and the next is refused with 503 before the upgrade. (The
worker's stream-socket, idle and stream-length limits are in test_media_auth.py; the ESL client's byte
bounds in test_esl_limits.py.)

Both HTTP servers (the controller's API, the media worker; ``switchyard.httpserver``) took a request head
or body sent a byte at a time for as long as the client liked, and any number of connections. Each attack
below speaks raw HTTP over loopback and observes only what the peer sees: the server cuts a slow-loris
head at ``http.header_timeout_s``, a trickling body at ``http.body_timeout_s``, answers a connection past
``http.max_connections`` with 503 and closes it, and never cuts an upgraded WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop
from aiohttp import web

from media_worker.vad.silero import SileroModel
from switchyard.httpserver import ConnectionGate, HttpLimits, HttpServer
from tests.controllerkit import TOKEN, running_controller, until
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.tlskit import make_cert
from tests.workerkit import running_worker, stream_token

MARGIN = 1.0  # seconds past a limit within which the cut must come (a loaded CI machine)
GIVE_UP = 5.0  # a slow client stops here: the server has not cut it
SERVERS = ["controller", "worker"]


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


@dataclass
class Served:
    """A server under attack: where it listens, a request it reads the body of, and its connection gate."""

    kind: str
    port: int
    server: HttpServer
    body_request: bytes  # a request head announcing a 1000-byte body (no body byte yet)

    @property
    def gate(self) -> ConnectionGate:
        assert self.server.gate is not None
        return self.server.gate


def head(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode()


@asynccontextmanager
async def serving(kind: str, tmp_path: Path, model: SileroModel, **limits: Any) -> AsyncIterator[Served]:
    """The controller (on the emulator) or a worker, with ``http`` limits ``limits``."""
    if kind == "controller":
        body = head("POST", "/v1/calls", f"Authorization: Bearer {TOKEN}", "Content-Type: application/json",
                    "Content-Length: 1000")  # fmt: skip
        async with (
            FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
            running_controller(fs, tmp_path, api={"http": limits, "max_feed_subscribers": 4}) as rc,
        ):
            assert rc.controller.api_server is not None
            yield Served(kind, rc.controller.api_port, rc.controller.api_server, body)
    else:
        body = head("GET", "/healthz", "Content-Length: 1000")  # the worker's handlers read no body
        async with running_worker(model, max_connections=2, http=limits) as rw:
            yield Served(kind, rw.port, rw.server, body)


async def trickle(port: int, first: bytes, then: bytes, every: float = 0.05) -> tuple[float, bytes, int]:
    """Send ``first``, then ``then`` a byte every ``every`` s, until the server closes the connection (or
    ``GIVE_UP`` s have passed).

    Returns the seconds from the connect to the server's close, what it sent, and the bytes of ``then``
    sent by then.
    """
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    reading = asyncio.create_task(reader.read())  # everything until the server closes
    sent = 0
    try:
        writer.write(first)
        for byte in then:
            await asyncio.wait([reading], timeout=every)
            if reading.done() or time.monotonic() - started > GIVE_UP:
                break
            writer.write(bytes([byte]))
            sent += 1
        await asyncio.wait([reading], timeout=max(0.0, GIVE_UP - (time.monotonic() - started)))
        if not reading.done():
            raise AssertionError(f"the server still holds the connection after {GIVE_UP} s")
        try:
            answer = reading.result()
        except ConnectionResetError:
            answer = b""
        return time.monotonic() - started, answer, sent
    finally:
        reading.cancel()
        writer.close()


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    """Send ``request`` and return the status line of the answer."""
    writer.write(request)
    async with asyncio.timeout(5):
        return (await reader.readline()).rstrip()


async def test_the_event_feed_refuses_subscribers_beyond_its_limit(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, api={"max_feed_subscribers": 2}) as rc,
    ):
        url = f"{rc.base}/v1/events"
        first = await rc.http.ws_connect(url)
        second = await rc.http.ws_connect(url)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await rc.http.ws_connect(url)
        assert refused.value.status == 503
        await first.close()
        for _ in range(200):  # the handler unsubscribes once it sees the close
            if rc.controller.feed.subscribers < 2:
                break
            await asyncio.sleep(0.01)
        third = await rc.http.ws_connect(url)  # a freed place is given again
        await second.close()
        await third.close()


@pytest.mark.parametrize("kind", SERVERS)
async def test_a_request_head_sent_a_byte_at_a_time_is_cut_at_the_header_timeout(
    kind: str, tmp_path: Path, model: SileroModel
) -> None:
    async with serving(kind, tmp_path, model, header_timeout_s=1.0) as served:
        endless = b"X-Slow: " + b"a" * 4000  # the blank line never comes
        took, answer, sent = await trickle(served.port, b"GET /healthz HTTP/1.1\r\n", endless)
    assert 1.0 <= took <= 1.0 + MARGIN, took
    assert sent < len(endless)  # the client was still sending
    assert answer == b""  # no request, no answer: the connection is just closed


@pytest.mark.parametrize("kind", SERVERS)
async def test_an_idle_connection_is_closed_at_the_header_timeout(
    kind: str, tmp_path: Path, model: SileroModel
) -> None:
    async with serving(kind, tmp_path, model, header_timeout_s=1.0) as served:
        took, answer, _ = await trickle(served.port, b"", b"", every=0)
    assert 1.0 <= took <= 1.0 + MARGIN, took
    assert answer == b""


@pytest.mark.parametrize("kind", SERVERS)
async def test_a_body_sent_a_byte_at_a_time_is_cut_at_the_body_timeout(
    kind: str, tmp_path: Path, model: SileroModel
) -> None:
    async with serving(kind, tmp_path, model, body_timeout_s=1.0) as served:
        took, answer, sent = await trickle(served.port, served.body_request, b"{" + b" " * 999)
    assert 1.0 <= took <= 1.0 + MARGIN, took
    assert sent < 1000
    status = answer.split(b"\r\n", 1)[0]
    if kind == "controller":  # the handler was reading the body: 408
        assert status == b"HTTP/1.1 408 Request Timeout"
    else:  # /healthz answered without reading it; the connection still ends at the deadline
        assert status == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize("kind", SERVERS)
async def test_connections_past_the_cap_are_refused_and_the_others_are_served(
    kind: str, tmp_path: Path, model: SileroModel
) -> None:
    cap = 8
    healthz = head("GET", "/healthz", "Connection: close")
    async with serving(kind, tmp_path, model, max_connections=cap, header_timeout_s=30) as served:
        held = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(cap - 1)]
        await until(lambda: served.gate.open == cap - 1, "the held connections accepted")
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)  # the last place
        assert await exchange(reader, writer, healthz) == b"HTTP/1.1 200 OK"
        writer.close()
        await until(lambda: served.gate.open == cap - 1, "the served connection released")
        held.append(await asyncio.open_connection("127.0.0.1", served.port))  # now at the cap
        await until(lambda: served.gate.open == cap, "the cap reached")
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        async with asyncio.timeout(5):
            refused = await reader.read()  # a 503, then the server closes
        assert refused.split(b"\r\n", 1)[0] == b"HTTP/1.1 503 Service Unavailable"
        assert time.monotonic() - started < 1.0
        writer.close()
        assert served.gate.refused == 1
        reader, writer = held.pop(0)  # a connection inside the cap is not affected
        assert await exchange(reader, writer, healthz) == b"HTTP/1.1 200 OK"
        writer.close()
        await until(lambda: served.gate.open == cap - 1, "a place freed")
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)  # and it is given again
        assert await exchange(reader, writer, healthz) == b"HTTP/1.1 200 OK"
        writer.close()
        for _, held_writer in held:
            held_writer.close()


async def test_a_worker_stream_outlives_the_header_and_body_timeouts(model: SileroModel) -> None:
    limits = {"header_timeout_s": 0.3, "body_timeout_s": 0.3}
    async with (
        running_worker(model, http=limits) as rw,
        aiohttp.ClientSession() as http,
        http.ws_connect(rw.url("long")) as ws,
    ):
        meta = {"call_id": "long", "sample_rate": 8000, "call_type": "sip", "token": stream_token("long")}
        await ws.send_str(json.dumps(meta))
        for _ in range(75):  # 1.5 s of 20 ms frames: five times each timeout
            await ws.send_bytes(b"\x00" * 320)
            await asyncio.sleep(0.02)
        assert not ws.closed
        assert "long" in rw.worker.sessions


async def test_the_event_feed_outlives_the_header_and_body_timeouts(tmp_path: Path) -> None:
    limits = {"header_timeout_s": 0.3, "body_timeout_s": 0.3}
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, api={"http": limits}) as rc,
        rc.http.ws_connect(f"{rc.base}/v1/events") as feed,
    ):
        await asyncio.sleep(1.5)  # a quiet feed, five times each timeout
        assert not feed.closed
        rc.controller.feed.publish({"type": "routes_reloaded", "routes": 0})
        async with asyncio.timeout(5):
            message = await feed.receive_json()
        assert message["type"] == "routes_reloaded"


async def test_a_hanging_tls_handshake_or_head_is_cut_at_the_header_timeout(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    tls = {"cert_file": str(cert.cert), "key_file": str(cert.key), "port": 0}
    limits = {"header_timeout_s": 1.0}
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, api={"tls": tls, "http": limits}) as rc,
    ):
        port = rc.controller.api_tls_port
        took, answer, _ = await trickle(port, b"", b"", every=0)  # TCP open, no ClientHello
        assert 1.0 <= took <= 1.0 + MARGIN, took
        assert answer == b""
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=cert.trusting(),
                                                       server_hostname="localhost")  # fmt: skip
        writer.write(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        async with asyncio.timeout(1.0 + MARGIN + 1):
            while True:  # a byte every 50 ms, until the server ends the TLS session
                try:
                    if not await asyncio.wait_for(reader.read(1), 0.05):
                        break
                except TimeoutError:
                    writer.write(b"a")
                except (ConnectionError, ssl.SSLError):
                    break
        assert 1.0 <= time.monotonic() - started <= 1.0 + MARGIN
        writer.close()


def test_the_connection_cap_holds_on_uvloop() -> None:
    """switchyard-worker runs on uvloop, whose transports are not asyncio's classes."""

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def attack() -> tuple[bytes, bytes]:
        app = web.Application()
        app.router.add_get("/healthz", healthz)
        async with HttpServer(app, HttpLimits(max_connections=1), name="uvloop") as server:
            port = await server.listen("127.0.0.1", 0)
            held = await asyncio.open_connection("127.0.0.1", port)
            await until(lambda: server.gate is not None and server.gate.open == 1, "the first accepted")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            async with asyncio.timeout(5):
                refused = await reader.read()
            writer.close()
            served = await exchange(*held, head("GET", "/healthz", "Connection: close"))
            held[1].close()
        return refused.split(b"\r\n", 1)[0], served

    refused, served = uvloop.run(attack())
    assert refused == b"HTTP/1.1 503 Service Unavailable"
    assert served == b"HTTP/1.1 200 OK"
