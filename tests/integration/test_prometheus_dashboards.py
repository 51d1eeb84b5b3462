"""The dashboards' queries on a real Prometheus (Debian's ``prometheus`` 2.42), scraping a real controller
and a real media worker on loopback with the jobs of ``deploy/prometheus/prometheus.yml``.

``tests/unit/test_dashboards.py`` checks the metric names statically; here Prometheus itself parses and
evaluates every panel query, and the names each query selects must be among the series it scraped.
The compose tier (``tests/compose``) repeats the scrape with the file unchanged: DNS discovery of scaled
workers on the compose network.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from media_worker.vad.silero import SileroModel
from tests.controllerkit import register_worker, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.januskit import free_ports, janus_event
from tests.promkit import PROMETHEUS_YML, RATE_INTERVAL, query, run_dashboards
from tests.unit.test_dashboards import metric_names
from tests.workerkit import running_worker


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: install Debian's prometheus package (.ci/run does)")
    return path


EVENTS_USER, EVENTS_PASSWORD = "janus", "events-password-0123456789"
READY_DEADLINE = 20.0


def loopback_config(controller: str, worker: str) -> dict[str, Any]:
    """The deploy file's jobs with loopback targets: ``controller`` stays static, the worker's DNS
    discovery (compose service names) becomes one static target. Scrapes every second."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"controller", "worker"}
    jobs["controller"]["static_configs"] = [{"targets": [controller]}]
    del jobs["worker"]["dns_sd_configs"]
    jobs["worker"]["static_configs"] = [{"targets": [worker]}]
    return dict(config)


@contextlib.asynccontextmanager
async def running_prometheus(config: dict[str, Any], workdir: Path) -> AsyncIterator[str]:
    """Prometheus on a free loopback port with ``config``; yields its base URL. Stopped by its PID."""
    (path := workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    (port,) = free_ports(1)
    log = (workdir / "prometheus.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        _tool("prometheus"),
        f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(READY_DEADLINE):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base}/-/ready") as resp:
                        if resp.status == 200:
                            break
                if process.returncode is not None:
                    pytest.fail(f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
                await asyncio.sleep(0.1)
        yield base
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def scraped_up(http: aiohttp.ClientSession, base: str, scrapes: int) -> None:
    """Until both jobs are up and each was scraped ``scrapes`` times."""
    expr = f'count_over_time(up{{job=~"controller|worker"}}[{RATE_INTERVAL}]) >= {scrapes} and up == 1'
    async with asyncio.timeout(READY_DEADLINE):
        while len((await query(http, base, expr))["data"]["result"]) < 2:  # noqa: ASYNC110 - polling an HTTP API
            await asyncio.sleep(0.2)


async def test_every_dashboard_query_runs_on_prometheus_over_scraped_series(tmp_path: Path) -> None:
    janus = {"events": {"enabled": True, "user": EVENTS_USER, "password": EVENTS_PASSWORD}}
    routes = [{"destination": "^7150$", "action": "agent default"}]
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_worker(SileroModel()) as worker,
        running_controller(fs, tmp_path, janus=janus, calls={"routes": routes}) as rc,
    ):
        await register_worker(rc, worker.worker.settings.worker_id, f"ws://127.0.0.1:{worker.port}")
        auth = base64.b64encode(f"{EVENTS_USER}:{EVENTS_PASSWORD}".encode()).decode()
        created = json.dumps(
            [  # a browser's session: a SIP plugin handle whose ICE connects
                janus_event(1, {"name": "created"}, session=1, handle=0),
                janus_event(2, {"name": "attached", "plugin": "janus.plugin.sip"}, session=1, handle=2),
                janus_event(
                    16, {"ice": "connected", "stream_id": 1, "component_id": 1}, 1, session=1, handle=2
                ),
            ]
        )
        headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
        async with rc.http.post(f"{rc.base}/janus/events", data=created, headers=headers) as resp:
            assert resp.status == 204
        uuid = await fs.inject_inbound_call(caller="1000", destination="7150")
        await fs.wait_for(lambda: uuid in worker.worker.sessions, 5)
        config = loopback_config(rc.base.removeprefix("http://"), f"127.0.0.1:{worker.port}")
        async with running_prometheus(config, tmp_path) as base, aiohttp.ClientSession() as http:
            await scraped_up(http, base, 2)
            await fs.caller_hangup(uuid)
            await rc.call_ended(uuid)
            await scraped_up(http, base, 4)
            run = await run_dashboards(http, base)
    assert run.failed() == {}
    assert len(run.answers) > 50
    unscraped = {key: metric_names(key[2]) - run.series for key in run.answers}
    assert {key: names for key, names in unscraped.items() if names} == {}
