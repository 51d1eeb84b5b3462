"""A media worker's token (``api.worker_tokens``) opens its heartbeat and no other operation of the API.

Every operation is taken from the served OpenAPI document, so one added later is checked too.
"""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from tests.controllerkit import TOKEN, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.wire import Event

WORKER_TOKEN = "worker-token-0123456789abcdef"


async def test_the_worker_token_opens_the_heartbeat_only(tmp_path: Path) -> None:
    api = {"worker_tokens": [WORKER_TOKEN]}
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, api=api) as rc,
    ):
        events: list[Event] = fs.record_events()
        async with rc.http.get(f"{rc.base}/openapi.json") as resp:
            paths = (await resp.json())["paths"]
        worker = {"Authorization": f"Bearer {WORKER_TOKEN}"}
        beat = {"worker_id": "w1", "url": "ws://127.0.0.1:9", "capacity": 1, "streams": 0}
        statuses: dict[str, int] = {}
        async with aiohttp.ClientSession(headers=worker) as http:
            for path, operations in paths.items():
                url = rc.base + re.sub(r"\{[^}]+\}", "x", path)
                for method, op in operations.items():
                    if not op.get("security"):
                        continue  # /healthz, /metrics, /openapi.json: open to everyone
                    body = beat if path == "/v1/workers/heartbeat" else {}
                    async with http.request(method.upper(), url, json=body) as resp:
                        statuses[f"{method.upper()} {path}"] = resp.status
        async with rc.http.post(f"{rc.base}/v1/workers/heartbeat", json=beat) as resp:
            operator_beat = resp.status  # the operators' token still opens it
        async with rc.http.get(f"{rc.base}/v1/workers") as resp:
            listed = [w["worker_id"] for w in (await resp.json())["workers"]]
    assert statuses.pop("POST /v1/workers/heartbeat") == 200
    assert len(statuses) > 20, statuses
    assert set(statuses.values()) == {401}, {k: v for k, v in statuses.items() if v != 401}
    assert operator_beat == 200
    assert listed == ["w1"]
    assert TOKEN != WORKER_TOKEN
    # `show registrations` is the controller's own registration poll; nothing else may have run.
    acted = [e.get("API-Command") for e in events if e.name == "API" and e.get("API-Command") != "show"]
    assert acted == [], "a refused request reached FreeSWITCH"
