"""The live rig's settings file (tests/live/switchyard.yaml) loads and renders with the rig's variables, so
a schema change that breaks the live tier fails in ``make test`` too, where no real FreeSWITCH runs."""

from __future__ import annotations

from pathlib import Path

from controller.render.freeswitch import render_freeswitch
from controller.render.janus import render_janus
from controller.settings import load_settings
from tests.live.rig import (
    CONTEXT,
    PARK_EXTENSION,
    SETTINGS,
    TONE_EXTENSION,
    rig_variables,
    settings_environment,
)
from tests.netnskit import Netns


def test_the_rig_settings_render(tmp_path: Path) -> None:
    ns = Netns("sy-test", "sy-test-h", "sy-test-n", "198.18.0.1", "198.18.0.2")
    live = rig_variables(ns, tmp_path, {"esl": 18021, "api": 18080, "worker": 18000})
    env = settings_environment({"SWITCHYARD_LIVE_ESL": "ignored", "PATH": "/bin"}, live)
    assert "SWITCHYARD_LIVE_ESL" not in env  # it would be read as a settings override
    settings = load_settings(env, SETTINGS)
    dialplan = render_freeswitch(settings)["dialplan/switchyard.xml"]
    assert f'<context name="{CONTEXT}">' in dialplan
    assert f'expression="^{TONE_EXTENSION}$"' in dialplan  # line_tests: answered by FreeSWITCH itself
    assert f'expression="^(?:{PARK_EXTENSION})$"' in dialplan  # a route: parks for the controller
    assert settings.api.host == ns.host_ip == settings.sip.internal.listen_ip
    assert settings.janus.listen_ip == ns.ns_ip
    assert render_janus(settings)["janus.plugin.sip.jcfg"].count(ns.ns_ip) >= 1
    assert settings.freeswitch["main"].port == settings.event_socket.port == 18021
