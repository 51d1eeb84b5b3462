"""The compose deployment's own files agree: deploy/switchyard.yaml loads and renders with a complete .env,
and the addresses it names are the ones docker-compose.yml gives the bridge network and the controller.

The settings name the certificate where compose mounts it (``/etc/switchyard/tls``), which the settings check
when they load: here ``SWITCHYARD_*`` overrides point them at a certificate ``deploy/tls-cert`` made."""

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
from tests.tlskit import make_cert

ROOT = Path(__file__).resolve().parents[2]
MOUNTED_TLS = "/etc/switchyard/tls"  # where compose mounts the `tls` volume


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``SWITCHYARD_*`` overrides naming a real certificate and key instead of the mounted ones."""
    cert = make_cert(tmp_path_factory.mktemp("tls"), "192.0.2.10", "pbx.example.com")
    return {
        f"SWITCHYARD_{section}__TLS__{field}": str(path)
        for section in ("API", "JANUS")
        for field, path in (("CERT_FILE", cert.cert), ("KEY_FILE", cert.key))
    }


@pytest.fixture
def env(tls_files: dict[str, str]) -> dict[str, str]:
    """A complete .env, and the certificate overrides."""
    return {**_env(), **tls_files}


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


def test_deploy_settings_render_both_servers(env: dict[str, str]) -> None:
    settings = load_settings(env, ROOT / "deploy" / "switchyard.yaml")
    assert "autoload_configs/event_socket.conf.xml" in render_freeswitch(settings)
    assert "janus.jcfg" in render_janus(settings)
    fs_ports = range(settings.sip.rtp_start, settings.sip.rtp_end + 1)
    janus_ports = range(settings.janus.rtp_start, settings.janus.rtp_end + 1)
    assert not set(fs_ports) & set(janus_ports), "FreeSWITCH and Janus share the host's RTP ports"


def test_addresses_match_the_compose_network(env: dict[str, str]) -> None:
    settings = load_settings(env, ROOT / "deploy" / "switchyard.yaml")
    compose = _compose()
    ipam = compose["networks"]["switchyard"]["ipam"]["config"][0]
    subnet, gateway = ipaddress.ip_network(ipam["subnet"]), ipam["gateway"]
    controller_ip = compose["services"]["controller"]["networks"]["switchyard"]["ipv4_address"]
    assert settings.event_socket.listen_ip == gateway == settings.freeswitch["main"].host
    assert settings.event_socket.acl == (str(subnet),)
    assert settings.janus.admin_ip == gateway
    assert str(settings.media_worker.controller_url).startswith(f"http://{controller_ip}:8080")
    assert settings.janus.events.url.startswith(f"http://{controller_ip}:8080/")
    assert settings.janus.directory.url.startswith(f"http://{controller_ip}:8080/")
    # The plain listener is the bridge address's alone; HTTPS is the published one.
    assert (settings.api.host, settings.api.port) == (controller_ip, 8080)
    assert settings.api.tls is not None
    assert (settings.api.tls.host, settings.api.tls.port) == ("0.0.0.0", 8443)
    assert compose["services"]["controller"]["ports"] == ["${API_BIND:-127.0.0.1}:8443:8443"]
    # Janus: the controller's plain WebSocket on the bridge, browsers' WSS on PBX_IP.
    assert settings.janus.api_url == f"ws://{gateway}:8188"
    assert settings.janus.browser_url == "wss://192.0.2.10:8989"


def test_tls_files_are_where_compose_mounts_them_and_the_page_uses_https() -> None:
    raw = yaml.safe_load((ROOT / "deploy" / "switchyard.yaml").read_text())
    for section in ("api", "janus"):
        tls = raw[section]["tls"]
        assert (tls["cert_file"], tls["key_file"]) == (f"{MOUNTED_TLS}/cert.pem", f"{MOUNTED_TLS}/key.pem")
    services = _compose()["services"]
    for name in ("render", "controller", "janus"):
        assert f"tls:{MOUNTED_TLS}:ro" in services[name]["volumes"], name
    tls = services["tls"]
    assert "${TLS_DIR:-./deploy/tls}:/tls-source:ro" in tls["volumes"]
    assert tls["network_mode"] == "none"
    assert "-o switchyard -g switchyard -m 0400 /tls-source/key.pem /tls/key.pem" in tls["command"][-1]
    assert services["render"]["depends_on"]["tls"] == {"condition": "service_completed_successfully"}
    healthcheck = " ".join(services["controller"]["healthcheck"]["test"])
    assert "https://127.0.0.1:8443/readyz" in healthcheck
    up = (ROOT / "Makefile").read_text().split("\nup:", 1)[1].split("\n\n", 1)[0]
    assert up.index("deploy/check-env .env") < up.index("deploy/tls-cert .env") < up.index("up -d")
    assert "/deploy/tls/" in (ROOT / ".gitignore").read_text().split()
    assert "deploy/tls" in (ROOT / ".dockerignore").read_text().split()


def test_every_service_has_a_healthcheck_and_rtp_carriers_use_the_host_network() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        if name not in ("tls", "render"):  # one-shot jobs: the others wait for them to complete
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
    service: str, loads: Callable[[dict[str, str], Path], object], tls_files: dict[str, str]
) -> None:
    env = _service_env(service)
    # The certificate paths are the settings file's (the mounted volume), not variables: only the test
    # points them elsewhere.
    loads = _with(loads, tls_files)
    loads(env, ROOT / "deploy" / "switchyard.yaml")
    for name in env:  # each one is needed: without it, loading fails naming it
        fewer = {k: v for k, v in env.items() if k != name}
        with pytest.raises(SettingsError, match=rf"\$\{{{name}\}} is not set"):
            loads(fewer, ROOT / "deploy" / "switchyard.yaml")


def _with(
    loads: Callable[[dict[str, str], Path], object], extra: dict[str, str]
) -> Callable[[dict[str, str], Path], object]:
    return lambda environ, path: loads({**environ, **extra}, path)


def test_a_worker_holds_no_secret_but_its_heartbeat_token_and_stream_secret(env: dict[str, str]) -> None:
    assert set(_service_env("worker")) == {"WORKER_TOKEN", "STREAM_SECRET"}
    settings = load_settings(env, ROOT / "deploy" / "switchyard.yaml")
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
