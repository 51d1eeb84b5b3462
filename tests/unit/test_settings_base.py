"""The settings base both processes load through: sections, renamed keys, ``SWITCHYARD_*`` overrides and
``${NAME}`` substitution; and the worker's standalone loading (no controller module, no jinja2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field

from controller.settings import Settings, load_settings
from media_worker.settings import WorkerProcessSettings, load_worker_settings
from switchyard.sections import CONTROLLER_SECTIONS, RENAMED, SECTIONS, WORKER_SECTIONS
from switchyard.settings import SettingsError, SettingsModel, load

ROOT = Path(__file__).resolve().parents[2]


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "switchyard.yaml"
    path.write_text(text)
    return path


def test_the_sections_are_the_controller_settings_fields_and_the_worker_reads_its_own() -> None:
    assert frozenset(Settings.model_fields) == SECTIONS
    assert frozenset(WorkerProcessSettings.model_fields) == WORKER_SECTIONS
    assert WORKER_SECTIONS <= CONTROLLER_SECTIONS < SECTIONS
    assert not set(RENAMED) & SECTIONS


@pytest.mark.parametrize(("old", "new"), [("worker", "media_worker"), ("workers", "worker_pool")])
def test_an_old_key_in_the_file_is_refused_by_both_processes_naming_the_new_one(
    tmp_path: Path, old: str, new: str
) -> None:
    path = _file(tmp_path, f"{old}: {{}}\n")
    for loads in (load_settings, load_worker_settings):
        with pytest.raises(SettingsError, match=rf"the section '{old}' is now '{new}'"):
            loads({}, path)


def test_an_old_key_in_the_environment_names_the_new_variable() -> None:
    with pytest.raises(SettingsError) as refused:
        load_worker_settings({"SWITCHYARD_WORKER__VAD__TICK_MS": "10"})
    message = str(refused.value)
    assert message.startswith("SWITCHYARD_WORKER__VAD__TICK_MS: the section 'worker' is now 'media_worker'")
    assert message.endswith("SWITCHYARD_MEDIA_WORKER__VAD__TICK_MS")


def test_environment_overrides_nest_by_double_underscore_and_parse_json(tmp_path: Path) -> None:
    path = _file(tmp_path, "media_worker: {port: 8001, capacity: 10}\n")
    environ = {
        "SWITCHYARD_MEDIA_WORKER__PORT": "8002",
        "SWITCHYARD_AGENTS": '[{"name": "a"}, {"name": "b"}]',
        "SWITCHYARD_CONFIG": str(path),
    }
    settings = load_worker_settings(environ)
    assert (settings.media_worker.port, settings.media_worker.capacity) == (8002, 10)
    assert [agent.name for agent in settings.agents] == ["a", "b"]
    with pytest.raises(SettingsError, match="SWITCHYARD_AGENTS: not valid JSON"):
        load_worker_settings({"SWITCHYARD_AGENTS": "[oops"})


def test_an_agent_name_used_twice_is_refused_with_its_field() -> None:
    with pytest.raises(SettingsError, match="agents: Value error, the name 'a' is used twice"):
        load_worker_settings({"SWITCHYARD_AGENTS": '[{"name": "a"}, {"name": "a"}]'})


def test_substitution_names_the_field_and_the_variable_and_keeps_a_double_dollar(tmp_path: Path) -> None:
    path = _file(tmp_path, "media_worker: {controller_url: 'http://c:1', controller_token: '${TOKEN}'}\n")
    with pytest.raises(SettingsError, match=r"media_worker.controller_token: \$\{TOKEN\} is not set"):
        load_worker_settings({}, path)
    token = load_worker_settings({"TOKEN": "pa$$word"}, path).media_worker.controller_token
    assert token is not None
    assert token.get_secret_value() == "pa$$word"  # substituted values are not substituted again
    _file(tmp_path, "media_worker: {advertise_url: 'ws://h:1/$$x'}\n")
    assert load_worker_settings({}, path).media_worker.advertise_url == "ws://h:1/$x"


def test_an_unreadable_or_non_mapping_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_worker_settings({}, tmp_path / "missing.yaml")
    with pytest.raises(SettingsError, match="top level must be a mapping"):
        load_worker_settings({}, _file(tmp_path, "- a\n"))


class _Tiny(SettingsModel):
    media_worker: dict[str, int] = Field(default_factory=dict)


def test_any_root_model_loads_through_the_base_and_refuses_unknown_keys(tmp_path: Path) -> None:
    path = _file(tmp_path, "media_worker: {a: 1}\nfreeswitch: {x: {}}\n")
    assert load(_Tiny, {}, path, {"media_worker"}).media_worker == {"a": 1}  # freeswitch: known, not read
    with pytest.raises(SettingsError, match="nonsense: Extra inputs are not permitted"):
        load(_Tiny, {"SWITCHYARD_NONSENSE": "1"}, path, {"media_worker"})


def test_the_worker_entry_point_imports_no_controller_module_and_no_jinja2() -> None:
    probe = (
        "import sys, media_worker.__main__; "
        "print(sorted(m for m in sys.modules if m.startswith(('controller', 'jinja2'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
