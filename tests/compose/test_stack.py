"""Smoke test of the compose stack (``.ci/compose-tier``; ``pytest -m compose``).

The stack runs from the images: controller, workers, Janus, and the real FreeSWITCH (an image of
``../shared/freeswitch``'s build) or, where that is absent, the FreeSWITCH emulator in its place. The test
reaches it only as an operator or a phone would: the controller's published API on ``SWITCHYARD_COMPOSE_API``
(HTTPS, trusting the certificate file ``SWITCHYARD_COMPOSE_CAFILE``, the one ``deploy/tls-cert`` made) with
``SWITCHYARD_COMPOSE_TOKEN``, Janus's HTTP API on ``SWITCHYARD_COMPOSE_JANUS``, and, with the real
FreeSWITCH, its internal SIP profile on ``SWITCHYARD_COMPOSE_SIP`` (``host:port``; the phone's account in
``SWITCHYARD_COMPOSE_SIP_DOMAIN``, ``_SIP_USER``, ``_SIP_PASSWORD``). It places a call to the agent extension
(7000) through the API, waits for the worker's greeting to be played into it, hangs up, and checks the CDR
and the metrics; with the real FreeSWITCH a SIP desk phone (sipp, ``tests/sipkit.py``) registers, calls 7000,
speaks, and the call's CDR must show the agent heard it and answered; checks that Janus answers with only
the SIP plugin and that its event handler reaches the controller; that the page is served over HTTPS and the
``wss://`` Janus URL a browser session gets creates a Janus session; and, with
``SWITCHYARD_COMPOSE_PROMETHEUS``, that Prometheus scrapes every worker and runs the dashboards' queries.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.promkit import query, run_dashboards
from tests.sipkit import caller_audio, cdr_of, run_sipp, scenario

pytestmark = pytest.mark.compose

API = os.environ.get("SWITCHYARD_COMPOSE_API", "")
JANUS = os.environ.get("SWITCHYARD_COMPOSE_JANUS", "")
TOKEN = os.environ.get("SWITCHYARD_COMPOSE_TOKEN", "")
CAFILE = os.environ.get("SWITCHYARD_COMPOSE_CAFILE", "")  # the stack's certificate (HTTPS and Janus's WSS)
PROMETHEUS = os.environ.get("SWITCHYARD_COMPOSE_PROMETHEUS", "")
WORKERS = int(os.environ.get("SWITCHYARD_COMPOSE_WORKERS", "1"))  # replicas started (--scale worker=N)
# FreeSWITCH's internal profile and a user of it: only with the real FreeSWITCH (the emulator speaks no SIP).
SIP = os.environ.get("SWITCHYARD_COMPOSE_SIP", "")
SIP_DOMAIN = os.environ.get("SWITCHYARD_COMPOSE_SIP_DOMAIN", "")
SIP_USER = os.environ.get("SWITCHYARD_COMPOSE_SIP_USER", "")
SIP_PASSWORD = os.environ.get("SWITCHYARD_COMPOSE_SIP_PASSWORD", "")
AGENT_EXTENSION = "7000"


def _trusted() -> ssl.SSLContext:
    """A client context trusting the stack's certificate alone (host names checked: it names 127.0.0.1
    and PBX_IP)."""
    return ssl.create_default_context(cafile=CAFILE) if CAFILE else ssl.create_default_context()


@pytest.fixture
async def api() -> AsyncIterator[aiohttp.ClientSession]:
    if not (API and TOKEN):
        pytest.skip("set SWITCHYARD_COMPOSE_API and SWITCHYARD_COMPOSE_TOKEN (.ci/compose-tier does)")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(ssl=_trusted())
    async with aiohttp.ClientSession(API, headers=headers, timeout=timeout, connector=connector) as session:
        yield session


async def _until(probe: Callable[[], Awaitable[Any]], what: str, deadline_s: float) -> Any:
    """Poll ``probe`` every 0.5 s until it returns something truthy; fail naming ``what``."""
    try:
        async with asyncio.timeout(deadline_s):
            while not (result := await probe()):  # noqa: ASYNC110 - polls the stack over HTTP
                await asyncio.sleep(0.5)
            return result
    except TimeoutError:
        raise AssertionError(f"not within {deadline_s} s: {what}") from None


async def _json(session: aiohttp.ClientSession, path: str) -> tuple[int, Any]:
    async with session.get(path) as resp:
        return resp.status, await resp.json(content_type=None)


def _sample(metrics: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    values = [float(m.group(1)) for m in re.finditer(pattern, metrics, re.MULTILINE)]
    assert values, f"{name}{labels} is not in /metrics"
    return values[0]


async def test_stack_is_ready_with_its_workers(api: aiohttp.ClientSession) -> None:
    async def ready() -> bool:
        status, body = await _json(api, "/readyz")
        return status == 200 and body["nodes"] == {"main": True}

    await _until(ready, "the controller is ready with its FreeSWITCH node connected", 60)

    async def healthy_workers() -> bool:
        _, body = await _json(api, "/v1/workers")
        healthy = [w for w in body["workers"] if w["healthy"]]
        # Each replica names itself (worker_id: auto) and advertises its own bridge address.
        return len({w["worker_id"] for w in healthy}) == len({w["url"] for w in healthy}) == WORKERS

    await _until(healthy_workers, f"{WORKERS} media worker(s) heartbeat in healthy, each its own", 120)


async def test_agent_call_through_controller_and_worker_leaves_a_cdr(api: aiohttp.ClientSession) -> None:
    await test_stack_is_ready_with_its_workers(api)
    async with api.post("/v1/calls", json={"target": "extension", "destination": AGENT_EXTENSION}) as resp:
        assert resp.status == 201, await resp.text()
        call_id = (await resp.json())["call_id"]

    async def greeting() -> bool:
        status, call = await _json(api, f"/v1/calls/{call_id}")
        assert status == 200, call
        return any(leg["playing"] for leg in call["legs"])

    await _until(greeting, "the worker's greeting plays in the call", 60)
    async with api.post(f"/v1/calls/{call_id}/hangup", json={}) as resp:
        assert resp.status == 200, await resp.text()

    async def closed() -> Any:
        status, record = await _json(api, f"/v1/cdrs/{call_id}")
        return record if status == 200 and record["status"] == "closed" else None

    record = await _until(closed, "the CDR is closed", 30)
    assert record["route"] == "agent default"
    assert record["disposition"] == "answered"
    assert record["stream"]["worker"], record["stream"]
    assert record["stream"]["failures"] == 0
    assert record["stream"]["playbacks"] >= 1
    async with api.get("/metrics") as resp:
        metrics = await resp.text()
    assert _sample(metrics, "switchyard_esl_connected", '{node="main"}') == 1.0
    assert _sample(metrics, "switchyard_calls_started_total") >= 1
    assert _sample(metrics, "switchyard_route_decisions_total", '{action="agent"}') >= 1


async def test_desk_phone_talks_to_the_agent_through_freeswitch(
    api: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A SIP phone registers on FreeSWITCH's internal profile, calls 7000 with PCMU, waits through the
    greeting, asks to pay its bill and listens; the CDR shows the agent route, the stream, and the turn."""
    if not (SIP and SIP_DOMAIN and SIP_USER and SIP_PASSWORD):
        pytest.skip(
            "no SIP: FreeSWITCH is the emulator (.ci/compose-tier sets SWITCHYARD_COMPOSE_SIP, _SIP_DOMAIN, "
            "_SIP_USER and _SIP_PASSWORD when it runs the real FreeSWITCH)"
        )
    await test_stack_is_ready_with_its_workers(api)
    caller_audio(tmp_path)
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await run_sipp(tmp_path, SIP, AGENT_EXTENSION, scenario(tmp_path, SIP_USER, SIP_PASSWORD, SIP_DOMAIN))
    record = await cdr_of(api, SIP_USER, since)
    assert (record["callee"], record["call_type"]) == (AGENT_EXTENSION, "sip"), record
    assert [leg["name"] for leg in record["legs"]] == [f"sofia/internal/{SIP_USER}@{SIP_DOMAIN}"], record
    assert record["route"] == "agent default"
    assert record["disposition"] == "answered"
    assert record["stream"]["worker"], record["stream"]
    assert record["stream"]["failures"] == 0, record["stream"]
    assert record["stream"]["playbacks"] >= 2, record["stream"]  # the greeting, then the answer
    turns = [t for t in record["transcript"] if t.get("caller")]
    assert turns, record["transcript"]
    assert "bill" in turns[0]["caller"].lower(), turns[0]  # heard through PCMU at 8 kHz
    assert "bill" in turns[0]["agent"].lower(), turns[0]  # the scripted agent's billing answer
    _, registrations = await _json(api, "/v1/registrations")
    assert ("main", SIP_USER) in [(r["node"], r["user"]) for r in registrations["items"]], registrations


async def test_janus_answers_with_the_sip_plugin_only_and_posts_its_events(
    api: aiohttp.ClientSession,
) -> None:
    if not JANUS:
        pytest.skip("set SWITCHYARD_COMPOSE_JANUS (.ci/compose-tier does)")
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.get(f"{JANUS}/janus/info") as resp,
    ):
        assert resp.status == 200
        info = await resp.json(content_type=None)
    assert info["janus"] == "server_info"
    assert set(info["plugins"]) == {"janus.plugin.sip"}
    assert info["auth_token"] is True

    async def session_event_counted() -> bool:
        async with api.get("/metrics") as resp:
            metrics = await resp.text()
        return 'switchyard_janus_events_total{type="session"}' in metrics

    # The controller's Janus adapter creates a session; Janus posts that event to /janus/events.
    await _until(session_event_counted, "Janus's event handler posted to the controller", 30)


async def test_the_page_is_https_and_its_wss_janus_url_creates_a_session(api: aiohttp.ClientSession) -> None:
    """What a browser does first: load /phone over HTTPS, get a browser identity, open Janus's wss:// URL
    (trusting the stack's certificate) with its token and create a session."""
    assert API.startswith("https://"), API
    async with api.get("/phone") as page:
        assert page.status == 200
        csp = page.headers["Content-Security-Policy"].replace(";", " ").split()
    async with api.post("/v1/webrtc/session", json={"display_name": "compose"}) as resp:
        assert resp.status == 201, await resp.text()
        session = await resp.json()
    url = session["janus_url"]
    assert url.startswith("wss://"), url
    assert url.endswith(":8989"), url
    assert url in csp
    body = {"janus": "create", "transaction": secrets.token_hex(6), "token": session["janus_token"]}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.ws_connect(url, protocols=("janus-protocol",), ssl=_trusted()) as ws,
    ):
        await ws.send_json(body)
        reply = await ws.receive_json(timeout=10)
    assert reply["janus"] == "success", reply
    # The HTTPS port answers no plain HTTP.
    host, port = API.removeprefix("https://").rstrip("/").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
    assert not answer.startswith(b"HTTP/"), answer


async def test_prometheus_finds_every_worker_and_runs_the_dashboards(api: aiohttp.ClientSession) -> None:
    """Prometheus with deploy/prometheus/prometheus.yml as is: the controller and, by DNS on the compose
    network, each scaled worker are up; every dashboard query parses and evaluates."""
    if not PROMETHEUS:
        pytest.skip("set SWITCHYARD_COMPOSE_PROMETHEUS (.ci/compose-tier does)")
    await test_stack_is_ready_with_its_workers(api)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def targets_up() -> bool:
            answer = await query(http, PROMETHEUS, "sum by (job) (up)")
            up = {r["metric"]["job"]: float(r["value"][1]) for r in answer["data"]["result"]}
            return up == {"controller": 1.0, "worker": float(WORKERS)}

        await _until(targets_up, f"Prometheus scrapes the controller and {WORKERS} worker(s)", 60)
        run = await run_dashboards(http, PROMETHEUS)
    assert run.failed() == {}
    assert {"switchyard_esl_connected", "switchyard_calls_started_total"} <= run.series
    assert {"switchyard_worker_active_streams", "switchyard_janus_events_total"} <= run.series
