"""The compose deployment's own files agree: deploy/switchyard.yaml loads and renders with a complete .env,
and the addresses it names are the ones docker-compose.yml gives the bridge network and the controller."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml

from controller.render.freeswitch import render_freeswitch
from controller.render.janus import render_janus
from controller.settings import load_settings

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
    assert str(settings.worker.controller_url).startswith(f"http://{controller_ip}:8080")
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
