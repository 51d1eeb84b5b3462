"""Routes may only name agents that exist: ``agent <name>`` must be an entry of ``agents:`` (or of the default
list, ``default``, when there is none), refused with the route's field path by the settings themselves, so
``switchyard check-config``, ``switchyard run`` and a route reload all refuse it. ``agent $1`` is allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.api.models import StreamBody
from controller.settings import CONTROLLER_SECTIONS, Settings, SettingsError, load_settings
from media_worker.settings import load_worker_settings

ROOT = Path(__file__).resolve().parents[2]
TWO_AGENTS = [{"name": "default"}, {"name": "support"}]


def _write(tmp_path: Path, routes: list[dict[str, str]], agents: list[dict[str, Any]] | None) -> Path:
    data: dict[str, Any] = {"freeswitch": {"fs1": {"password": "not-a-default"}}, "calls": {"routes": routes}}
    if agents is not None:
        data["agents"] = agents
    path = tmp_path / "switchyard.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def _refusal(path: Path, sections: frozenset[str] | None = None) -> str:
    with pytest.raises(SettingsError) as refused:
        load_settings({}, path, sections)
    return str(refused.value)


def test_a_route_to_an_agent_not_in_agents_is_refused_with_its_field_path(tmp_path: Path) -> None:
    routes = [
        {"destination": "^7000$", "action": "agent default"},
        {"destination": "^7001$", "action": "agent sales"},
    ]
    message = _refusal(_write(tmp_path, routes, TWO_AGENTS))
    assert "calls.routes.1.action: agent 'sales' is not in agents (default, support)" in message
    assert "routes.0" not in message


def test_without_agents_the_default_list_is_what_routes_may_name(tmp_path: Path) -> None:
    refused = _write(tmp_path, [{"destination": "^7000$", "action": "agent support"}], None)
    assert "calls.routes.0.action: agent 'support' is not in agents (default)" in _refusal(refused)
    accepted = _write(tmp_path, [{"destination": "^7000$", "action": "agent default"}], None)
    assert load_settings({}, accepted).calls.routes[0].action == "agent default"


def test_a_fallback_to_a_missing_agent_is_refused_too(tmp_path: Path) -> None:
    routes = [{"destination": "^7000$", "action": "agent support", "fallback": "agent nobody"}]
    message = _refusal(_write(tmp_path, routes, TWO_AGENTS))
    assert "calls.routes.0.fallback: agent 'nobody' is not in agents (default, support)" in message
    assert "routes.0.action" not in message


def test_group_references_and_other_actions_are_not_checked(tmp_path: Path) -> None:
    routes = [
        {"destination": "^7(\\d+)$", "action": "agent a$1", "fallback": "agent $1"},
        {"destination": "^(1\\d{3})$", "action": "user $1", "fallback": "reject USER_BUSY"},
        {"destination": "^9196$", "action": "echo"},
        {"destination": "^8000$", "action": "conference support"},
    ]
    settings = load_settings({}, _write(tmp_path, routes, TWO_AGENTS))
    assert [route.action for route in settings.calls.routes] == [
        "agent a$1",
        "user $1",
        "echo",
        "conference support",
    ]


def test_the_controller_and_its_route_reload_refuse_it_and_the_worker_does_not_read_routes(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, [{"destination": "^7000$", "action": "agent sales"}], TWO_AGENTS)
    assert "calls.routes.0.action: agent 'sales'" in _refusal(path, CONTROLLER_SECTIONS)  # run, SIGHUP reload
    assert [agent.name for agent in load_worker_settings({}, path).agents] == ["default", "support"]


def test_the_environment_can_add_the_missing_agent(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"destination": "^7000$", "action": "agent sales"}], None)
    environ = {"SWITCHYARD_AGENTS": json.dumps([{"name": "default"}, {"name": "sales"}])}
    assert load_settings(environ, path).calls.routes[0].action == "agent sales"


def test_check_config_exits_non_zero_naming_the_route(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"destination": "^7000$", "action": "agent sales"}], TWO_AGENTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    done = subprocess.run(
        [sys.executable, "-m", "controller", "check-config", "--config", str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "calls.routes.0.action: agent 'sales' is not in agents (default, support)" in done.stderr
    assert "settings OK" not in done.stdout


def test_a_stream_started_through_the_api_names_an_agent_that_exists_by_default() -> None:
    body = StreamBody.model_validate({"action": "start"})
    assert body.agent in [agent.name for agent in Settings().agents]
