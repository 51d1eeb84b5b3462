"""``deploy/make-env``, the first step of ``make up``: on a machine with no ``.env`` it writes one that
``deploy/check-env`` accepts (random secrets, mode 0600, PBX_IP detected), and it never touches one that is
there. The scripts run for real; ``ip`` is a stand-in on PATH so the test controls what the host's routing
table says."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "deploy" / "switchyard.yaml"
ROUTE = "192.0.2.1 via 10.20.30.1 dev eth0 src 10.20.30.40 uid 0\n    cache"


def _fake_ip(bin_dir: Path, output: str) -> None:
    """An ``ip`` that prints ``output`` (what ``ip -4 route get`` would) and fails when it is empty."""
    script = bin_dir / "ip"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' '{output}'\n[ -n '{output}' ]\n")
    script.chmod(0o755)


def _run(script: str, env_file: Path, route: str, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = env_file.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    _fake_ip(bin_dir, route)
    environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", **env}
    command = [str(ROOT / "deploy" / script), str(env_file), str(SETTINGS)]
    return subprocess.run(command, check=False, env=environment, capture_output=True, text=True, timeout=30)


def _values(env_file: Path) -> dict[str, str]:
    lines = [line for line in env_file.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_a_fresh_env_file_is_private_complete_and_accepted(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    made = _run("make-env", env_file, ROUTE)
    assert made.returncode == 0, made.stderr
    assert env_file.stat().st_mode & 0o777 == 0o600
    values = _values(env_file)
    assert values["PBX_IP"] == values["SIP_DOMAIN"] == "10.20.30.40"
    secrets = {k: v for k, v in values.items() if re.search(r"(PASSWORD|SECRET|TOKEN)(_\d+)?$", k)}
    assert {"ESL_PASSWORD", "API_TOKEN", "SIP_PASSWORD_1000", "GRAFANA_ADMIN_PASSWORD"} <= secrets.keys()
    assert all(re.fullmatch(r"[0-9a-f]{32}", v) for v in secrets.values())
    assert len(set(secrets.values())) == len(secrets), "two secrets share a value"
    assert "PBX_IP=10.20.30.40 (detected" in made.stdout
    checked = _run("check-env", env_file, ROUTE)
    assert checked.returncode == 0, checked.stderr


def test_an_existing_env_file_is_kept_byte_for_byte(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PBX_IP=192.0.2.7\n# the operator's own\n")
    env_file.chmod(0o640)
    made = _run("make-env", env_file, ROUTE)
    assert made.returncode == 0
    assert "keeping" in made.stdout
    assert env_file.read_text() == "PBX_IP=192.0.2.7\n# the operator's own\n"
    assert env_file.stat().st_mode & 0o777 == 0o640


def test_values_from_the_environment_are_written_as_given(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    given = {"PBX_IP": "198.51.100.9", "SIP_DOMAIN": "pbx.example.org", "IMAGE_TAG": "ci", "API_BIND": "::1"}
    made = _run("make-env", env_file, "", **given)
    assert made.returncode == 0, made.stderr
    values = _values(env_file)
    assert {name: values[name] for name in given} == given
    assert "detected" not in made.stdout


def test_no_default_route_is_an_error_that_names_pbx_ip_and_writes_nothing(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    made = _run("make-env", env_file, "")
    assert made.returncode == 1
    assert "PBX_IP=" in made.stderr
    assert not env_file.exists()
    assert not list(tmp_path.glob(".env.*")), "a temporary file was left behind"


@pytest.mark.parametrize("name", ["SIP_PASSWORD_1000", "ESL_PASSWORD"])
def test_check_env_refuses_a_short_secret_even_with_a_numbered_name(tmp_path: Path, name: str) -> None:
    env_file = tmp_path / ".env"
    assert _run("make-env", env_file, ROUTE).returncode == 0
    text = re.sub(rf"^{name}=.*$", f"{name}=short", env_file.read_text(), flags=re.M)
    env_file.write_text(text)
    checked = _run("check-env", env_file, ROUTE)
    assert checked.returncode == 1
    assert f"{name} is shorter than 16 characters" in checked.stderr


def test_make_up_writes_the_env_file_before_it_checks_it() -> None:
    recipe = _recipe("up")
    assert recipe[:4] == ["deploy/make-env .env", "deploy/check-env .env", "deploy/tls-cert .env",
                          "deploy/freeswitch-image .env"]  # fmt: skip
    assert any("deploy/wait-healthy" in line for line in recipe), (
        "make up returns before the stack is healthy"
    )
    assert all(os.access(ROOT / "deploy" / name, os.X_OK) for name in ("make-env", "wait-healthy"))


def _recipe(target: str) -> list[str]:
    """The commands of a Makefile target, one per line, without their leading tab."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe
