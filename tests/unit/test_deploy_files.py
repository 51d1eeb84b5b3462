"""The compose deployment's own files agree: deploy/switchyard.yaml loads and renders with a complete .env,
and the addresses it names are the ones docker-compose.yml gives the bridge network and the controller."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.render.freeswitch import render_freeswitch
from controller.render.janus import render_janus
from controller.settings import CONTROLLER_SECTIONS, SettingsError, load_settings
from media_worker.settings import load_worker_settings

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text()
    names = [line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")]
    env = {name: f"{name.lower()}-0123456789abcdef" for name in names}
    env.update(PBX_IP="192.0.2.10", SIP_DOMAIN="pbx.example.com")
    return env


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_deploy_settings_render_both_servers() -> None:
    settings = load_settings(_env(), ROOT / "deploy" / "switchyard.yaml")
    assert "autoload_configs/event_socket.conf.xml" in render_freeswitch(settings)
    assert "janus.jcfg" in render_janus(settings)
    fs_ports = range(settings.sip.rtp_start, settings.sip.rtp_end + 1)
    janus_ports = range(settings.janus.rtp_start, settings.janus.rtp_end + 1)
    assert not set(fs_ports) & set(janus_ports), "FreeSWITCH and Janus share the host's RTP ports"


def test_addresses_match_the_compose_network() -> None:
    settings = load_settings(_env(), ROOT / "deploy" / "switchyard.yaml")
    compose = _compose()
    ipam = compose["networks"]["switchyard"]["ipam"]["config"][0]
    subnet, gateway = ipaddress.ip_network(ipam["subnet"]), ipam["gateway"]
    controller_ip = compose["services"]["controller"]["networks"]["switchyard"]["ipv4_address"]
    assert settings.event_socket.listen_ip == gateway == settings.freeswitch["main"].host
    assert settings.event_socket.acl == (str(subnet),)
    assert settings.janus.admin_ip == gateway
    assert str(settings.media_worker.controller_url).startswith(f"http://{controller_ip}:8080")
    assert settings.janus.events.url.startswith(f"http://{controller_ip}:8080/")


def test_every_service_has_a_healthcheck_and_rtp_carriers_use_the_host_network() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        if name != "render":  # a one-shot job: the others wait for it to complete
            assert "healthcheck" in service, name
    for name in ("freeswitch", "janus"):
        assert services[name]["network_mode"] == "host"
    for service in services.values():
        for dependency in service.get("depends_on", {}).values():
            assert dependency["condition"] in (
                "service_healthy", "service_completed_successfully", "service_started"
            )  # fmt: skip
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]
    published = [port for s in services.values() for port in s.get("ports", [])]
    assert all(port.startswith("${") and ":-127.0.0.1}" in port for port in published), published


def _service_env(name: str) -> dict[str, str]:
    """The variables compose gives a Switchyard service, with the values the complete .env would supply."""
    service = _compose()["services"][name]
    assert "env_file" not in service, f"{name} gets the whole .env"
    full = _env()
    for key, value in service["environment"].items():  # unset in .env: compose stops, naming it
        assert value == f"${{{key}:?set {key} in .env}}", (name, key, value)
    return {key: full[key] for key in service["environment"]}


def _controller_loads(environ: dict[str, str], path: Path) -> object:
    return load_settings(environ, path, CONTROLLER_SECTIONS)


@pytest.mark.parametrize(
    ("service", "loads"), [("controller", _controller_loads), ("worker", load_worker_settings)]
)
def test_each_process_gets_only_the_variables_of_the_sections_it_reads(
    service: str, loads: Callable[[dict[str, str], Path], object]
) -> None:
    env = _service_env(service)
    loads(env, ROOT / "deploy" / "switchyard.yaml")
    for name in env:  # each one is needed: without it, loading fails naming it
        fewer = {k: v for k, v in env.items() if k != name}
        with pytest.raises(SettingsError, match=rf"\$\{{{name}\}} is not set"):
            loads(fewer, ROOT / "deploy" / "switchyard.yaml")


def test_a_worker_holds_no_secret_but_its_heartbeat_token_and_stream_secret() -> None:
    assert set(_service_env("worker")) == {"WORKER_TOKEN", "STREAM_SECRET"}
    settings = load_settings(_env(), ROOT / "deploy" / "switchyard.yaml")
    worker_token = settings.media_worker.controller_token
    assert worker_token is not None
    assert worker_token in settings.api.worker_tokens
    assert worker_token not in [t.token for t in settings.api.tokens]
    controller = _service_env("controller")
    # The controller checks the phone page's sign-in against the SIP users, so it holds their passwords
    # (and nothing of the trunks'); Grafana's stays out.
    sip = {k for k in controller if k.startswith("SIP_PASSWORD")}
    assert sip == {"SIP_PASSWORD_1000", "SIP_PASSWORD_1001"}
    assert "GRAFANA_ADMIN_PASSWORD" not in controller


def test_sections_leave_out_known_sections_and_still_refuse_unknown_ones(tmp_path: Path) -> None:
    path = tmp_path / "switchyard.yaml"
    path.write_text("freeswitch: {main: {password: '${ESL}'}}\nmedia_worker: {port: 8001}\n")
    assert load_worker_settings({}, path).media_worker.port == 8001  # ${ESL} not needed
    with pytest.raises(SettingsError, match=r"freeswitch.main.password: \$\{ESL\} is not set"):
        load_settings({}, path)
    path.write_text("media_worker: {port: 8001}\nagnets: []\n")
    with pytest.raises(SettingsError, match="agnets"):
        load_worker_settings({}, path)


def test_the_image_copies_every_package_the_project_installs() -> None:
    """A package missing from the Dockerfile installs nowhere: every process in the image fails to import."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = (ROOT / "deploy/docker/switchyard.Dockerfile").read_text()
    for package in packages:
        assert f"COPY {package} /src/{package}\n" in dockerfile, package
        assert f"/src/{package}/__init__.py" in dockerfile, package
