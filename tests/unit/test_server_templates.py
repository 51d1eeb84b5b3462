"""The servers' configuration templates live at top level (``freeswitch/conf``, ``janus/conf``) and
``switchyard render`` reads them from there or from another root; it never writes over them. The FreeSWITCH
image built from source builds exactly the modules the rendered configuration loads."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from controller.__main__ import main
from controller.render import default_templates
from controller.render.freeswitch import MODULES, XML_CURL_MODULE

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {
    "freeswitch": {"main": {"host": "127.0.0.1", "password": "esl-0123456789abcdef"}},
    "event_socket": {"node": "main", "listen_ip": "127.0.0.1", "port": 8021},
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "switchyard.yaml"
    path.write_text(yaml.safe_dump(SETTINGS))
    return path


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A copy of the checkout's templates, as an operator's edited tree would be."""
    root = tmp_path / "templates"
    for server in ("freeswitch", "janus"):
        shutil.copytree(ROOT / server / "conf", root / server / "conf")
    return root


def test_the_checkout_renders_from_its_top_level_templates() -> None:
    assert default_templates() == ROOT
    assert (ROOT / "freeswitch" / "conf" / "freeswitch.xml.j2").is_file()
    assert (ROOT / "janus" / "conf" / "janus.jcfg.j2").is_file()


def test_an_edited_template_shows_in_the_rendered_tree(config: Path, templates: Path, tmp_path: Path) -> None:
    vars_xml = templates / "freeswitch" / "conf" / "vars.xml.j2"
    vars_xml.write_text(
        vars_xml.read_text().replace("</include>", "  <!-- edited by the operator -->\n</include>")
    )
    out = tmp_path / "out"
    assert main(["render", "--config", str(config), "--templates", str(templates), "--out", str(out)]) == 0
    assert "edited by the operator" in (out / "freeswitch" / "conf" / "vars.xml").read_text()


def test_render_refuses_to_write_over_its_templates(
    config: Path, templates: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.relative_to(templates) for p in templates.rglob("*"))
    assert (
        main(["render", "--config", str(config), "--templates", str(templates), "--out", str(templates)]) == 2
    )
    assert "holds the templates" in capsys.readouterr().err
    assert sorted(p.relative_to(templates) for p in templates.rglob("*")) == before


def test_a_root_without_templates_is_a_clear_error(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["render", "--config", str(config), "--templates", str(empty), "--out", str(tmp_path)]) == 2
    assert "no freeswitch templates there" in capsys.readouterr().err


def test_the_source_image_builds_the_modules_the_configuration_loads() -> None:
    listed = (ROOT / "deploy" / "docker" / "freeswitch-source" / "modules.conf").read_text()
    built = {line.rsplit("/", 1)[1] for line in listed.splitlines() if line and not line.startswith("#")}
    loaded = {*MODULES, XML_CURL_MODULE}
    assert built == loaded - {"mod_audio_stream"}, "build list and modules.conf.xml differ"


def test_the_source_image_pins_the_versions_the_real_server_was_checked_with() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "freeswitch-source.Dockerfile").read_text()
    pins = dict(re.findall(r"^ARG ([A-Z_]+)_COMMIT=([0-9a-f]{40})$", dockerfile, flags=re.M))
    assert pins == {
        "SOFIA_SIP": "6198851a610b7889c17e2d98fb84617bc1dd7aec",  # v1.13.17
        "SPANDSP": "0d2e6ac65e0e8f53d652665a743015a88bf048d4",
        "FREESWITCH": "a88d069d6ffb74df797bcaf001f7e63181c07a09",  # v1.10.12
        "MOD_AUDIO_STREAM": "ec2a781026a1c09b0c3a6161b8b896f0b9305922",
        "LIBWSC": "09d18e5db9243a996692261a7a0839c9c346bc47",
    }
    assert "-DUSE_TLS=ON" in dockerfile


def test_the_image_carries_the_templates_and_compose_renders_the_checkouts() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "switchyard.Dockerfile").read_text()
    render = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["render"]
    root = render["command"][render["command"].index("--templates") + 1]
    for server in ("freeswitch", "janus"):
        assert f"COPY {server}/conf /src/controller/render/templates/{server}/conf" in dockerfile
        assert f"./{server}/conf:{root}/{server}/conf:ro" in render["volumes"]
