"""``deploy/check-env``: ``make up`` refuses missing, empty, placeholder, short or reused secrets.

Runs the real script (bash) on env files written by the test, against the real deploy/switchyard.yaml.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "check-env"
SETTINGS = ROOT / "deploy" / "switchyard.yaml"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="deploy/check-env is a bash script")


def _good() -> dict[str, str]:
    """A complete env: every name the settings file references, each secret distinct and long."""
    text = (ROOT / ".env.example").read_text()
    names = [line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")]
    values = {name: f"{name.lower()}-0123456789abcdef" for name in names}
    values["PBX_IP"] = "192.0.2.10"
    values["SIP_DOMAIN"] = "pbx.example.com"
    return values


def _run(tmp_path: Path, values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return subprocess.run(
        [str(SCRIPT), str(env_file), str(SETTINGS)], capture_output=True, text=True, timeout=30, check=False
    )


def test_the_example_is_refused_naming_every_placeholder(tmp_path: Path) -> None:
    result = _run(tmp_path, {})
    assert result.returncode == 1
    env_example = (ROOT / ".env.example").read_text()
    example = dict(line.split("=", 1) for line in env_example.splitlines() if line and line[0] != "#")
    result = _run(tmp_path, example)
    assert result.returncode == 1
    for name, value in example.items():
        if value == "change-me":
            assert f"{name} is still the placeholder" in result.stderr
    assert "nothing was started" in result.stderr


def test_a_complete_env_passes(tmp_path: Path) -> None:
    result = _run(tmp_path, _good())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("ESL_PASSWORD", None, "ESL_PASSWORD is missing"),
        ("API_TOKEN", "", "API_TOKEN is empty"),
        ("JANUS_ADMIN_SECRET", "short-secret", "JANUS_ADMIN_SECRET is shorter than 16 characters"),
        ("PBX_IP", "pbx.example.com", "PBX_IP 'pbx.example.com' is not an IP address"),
        ("GRAFANA_ADMIN_PASSWORD", None, "GRAFANA_ADMIN_PASSWORD is missing"),
    ],
)
def test_each_problem_is_named(tmp_path: Path, name: str, value: str | None, complaint: str) -> None:
    values = _good()
    if value is None:
        del values[name]
    else:
        values[name] = value
    result = _run(tmp_path, values)
    assert result.returncode == 1
    assert complaint in result.stderr


def test_a_secret_reused_for_two_purposes_is_refused(tmp_path: Path) -> None:
    values = _good()
    values["API_TOKEN"] = values["ESL_PASSWORD"]
    result = _run(tmp_path, values)
    assert result.returncode == 1
    assert "has the same value as" in result.stderr
