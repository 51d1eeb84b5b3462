"""ESL targets for the integration tests: the FreeSWITCH emulator always, a real FreeSWITCH when named.

Every scenario that takes ``esl_target`` runs twice: against the emulator (CI) and, marked ``live``,
against the FreeSWITCH named by ``SWITCHYARD_LIVE_ESL=host:port`` and ``SWITCHYARD_LIVE_ESL_PASSWORD``
(``make test-live`` sets them for the FreeSWITCH its rig starts, tests/live/rig.py; skipped when they are
not set). Live scenarios use only real FreeSWITCH commands: calls come from ``originate loopback/<ext>``
against the test dialplan (extension 7101 answers and plays an endless tone, 7102 parks, so the controller
routes it: the rig renders both from tests/live/switchyard.yaml; ``SWITCHYARD_LIVE_TONE_EXT``,
``SWITCHYARD_LIVE_PARK_EXT`` and ``SWITCHYARD_LIVE_CONTEXT`` name others). A worker stand-in listens on
``SWITCHYARD_LIVE_WORKER_HOST`` (default 127.0.0.1: FreeSWITCH on this machine).

The stack twins (a SIP desk phone, a WebRTC caller) take ``live_stack``: a controller, a worker and Janus
on the real FreeSWITCH (tests/live/stack.py), or a deployment named by ``SWITCHYARD_LIVE_API``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.settings import FreeSwitchNodeSettings
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.live.stack import LiveStack, StackTarget, deployed_target


@dataclass
class EslTarget:
    """Where a scenario's FreeSWITCH is, and the emulator handle when it is emulated."""

    kind: str
    host: str
    port: int
    password: str
    emulator: FreeSwitchEmulator | None
    tone_extension: str = "7101"
    park_extension: str = "7102"
    worker_host: str = "127.0.0.1"
    context: str = "default"  # of the two extensions: the capture rig's dialplan has them in "default"
    temp_dir: str = "/tmp"  # FreeSWITCH's -temp: mod_audio_stream's ::play files are there

    @property
    def address(self) -> tuple[str, int, str, str]:
        """``(host, port, password, temp_dir)``: what a controller under test is given (controllerkit)."""
        return (self.host, self.port, self.password, self.temp_dir)

    def node_settings(self, **overrides: Any) -> FreeSwitchNodeSettings:
        """Settings of a node pointing at this target, with fast test deadlines and backoff."""
        data: dict[str, Any] = {
            "name": "fs1",
            "host": self.host,
            "port": self.port,
            "password": self.password,
            "keepalive": 0,
            "deadlines": {"connect": 2, "auth": 2, "command": 5, "bgapi": 20, "resync": 5, "close": 1},
            "backoff": {"initial": 0.05, "maximum": 0.5, "quick_failure": 0},
        }
        data.update(overrides)
        return FreeSwitchNodeSettings.model_validate(data)


def live_target() -> EslTarget:
    address = os.environ.get("SWITCHYARD_LIVE_ESL")
    password = os.environ.get("SWITCHYARD_LIVE_ESL_PASSWORD")
    if not address or not password:
        pytest.skip("live FreeSWITCH not configured (SWITCHYARD_LIVE_ESL, SWITCHYARD_LIVE_ESL_PASSWORD)")
    host, _, port = address.rpartition(":")
    return EslTarget(
        "live",
        host.strip("[]"),
        int(port),
        password,
        None,
        os.environ.get("SWITCHYARD_LIVE_TONE_EXT", "7101"),
        os.environ.get("SWITCHYARD_LIVE_PARK_EXT", "7102"),
        os.environ.get("SWITCHYARD_LIVE_WORKER_HOST", "127.0.0.1"),
        os.environ.get("SWITCHYARD_LIVE_CONTEXT", "default"),
        os.environ.get("SWITCHYARD_LIVE_TEMP_DIR", "/tmp"),
    )


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[FreeSwitchEmulator]:
    """A running FreeSWITCH emulator on 127.0.0.1 with a random password."""
    config = EmulatorConfig(password=secrets.token_hex(8), host="127.0.0.1", port=0, temp_dir=tmp_path)
    async with FreeSwitchEmulator(config) as fs:
        yield fs


@pytest.fixture(params=["emulator", pytest.param("live", marks=pytest.mark.live)])
async def esl_target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EslTarget]:
    """The emulator, or (``-m live``) the real FreeSWITCH named by the environment."""
    if request.param == "live":
        yield live_target()
        return
    config = EmulatorConfig(password=secrets.token_hex(8), host="127.0.0.1", port=0, temp_dir=tmp_path)
    async with FreeSwitchEmulator(config) as fs:
        yield EslTarget("emulator", "127.0.0.1", fs.port, config.password, fs, temp_dir=str(tmp_path))


@pytest.fixture
async def live_stack(tmp_path: Path) -> AsyncIterator[StackTarget]:
    """A whole stack on a real FreeSWITCH: the user's own (``SWITCHYARD_LIVE_API``…), or one started from
    the live rig's settings for this test (``make test-live``: tests/live/stack.py); skipped without either.
    The stack's logs are printed at teardown (pytest shows them when the test failed)."""
    deployed = deployed_target(os.environ)
    if deployed is not None:
        yield deployed
        return
    if not LiveStack.configured(os.environ):
        pytest.skip("live stack not configured (SWITCHYARD_LIVE_API and _TOKEN, or make test-live's rig)")
    async with LiveStack(os.environ, tmp_path) as stack:
        try:
            yield stack.target
        finally:
            print(stack.logs())
