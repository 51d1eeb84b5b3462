"""The ``switchyard`` client commands against a running controller (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from tests.controllerkit import TOKEN, RunningController, controller_settings, running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.januskit import ADMIN_SECRET, requires_janus, running_janus


async def _cli(rc: RunningController, *args: str, token: str = TOKEN) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    env.update(SWITCHYARD_API_URL=rc.base, SWITCHYARD_API_TOKEN=token)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_originate_list_hangup_cdrs(tmp_path: Path) -> None:
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_controller(fs, tmp_path) as rc,
    ):
        code, out, _ = await _cli(rc, "originate", "extension", "7104", "--caller-id", "4242")
        call_id = out.split("\n")[1].split()[0]
        listed = await _cli(rc, "calls")
        hung = await _cli(rc, "hangup", call_id)
        await rc.call_ended(call_id)
        cdrs = await _cli(rc, "cdrs", "--number", "7104")
        again = await _cli(rc, "hangup", call_id)
        denied = await _cli(rc, "calls", token="wrong")
    assert code == 0
    assert out.split("\n")[0].split() == ["CALL_ID", "NODE", "STATUS"]
    assert listed[0] == 0
    assert listed[1].splitlines()[0].split()[:5] == ["CALL", "NODE", "STATE", "FROM", "TO"]
    assert call_id in listed[1]
    assert hung[0] == 0
    assert "hungup" in hung[1]
    assert cdrs[0] == 0
    assert call_id in cdrs[1]
    assert "answered" in cdrs[1]
    assert again[0] == 1
    assert f"call {call_id} has ended" in again[2]
    assert denied[0] == 1
    assert "401" in denied[2]
    assert "invalid bearer token" in denied[2]


@requires_janus
async def test_controller_log_has_its_format_and_no_janus_messages(tmp_path: Path) -> None:
    """janus_client configures the root logger at import and logs every Janus message (tokens, SIP secrets)
    at INFO: the controller's log must keep its own format and none of those lines."""
    async with (
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
        running_janus(tmp_path / "janus") as janus,
    ):
        section = {**janus.settings.janus.model_dump(mode="json"), "admin_secret": ADMIN_SECRET}
        config = tmp_path / "switchyard.yaml"
        config.write_text(json.dumps(controller_settings(fs, tmp_path, janus=section)))  # JSON is YAML
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller", "controller", "--config", str(config), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stderr = proc.stderr
        assert stderr is not None
        lines: list[str] = []

        async def read_until(text: str, count: int = 1) -> None:
            async with asyncio.timeout(20):
                while sum(text in line for line in lines) < count:
                    line = (await stderr.readline()).decode()
                    assert line, "".join(lines)
                    lines.append(line)

        session = "janus janus-under-test: session "
        try:
            await read_until(session)
            await janus.kill()  # the socket drops under janus_client's reader
            await read_until("janus janus-under-test: session lost")
            await janus.start()
            await read_until(" on ws://", 2)  # "session <id> on ws://…", again
        finally:
            proc.send_signal(signal.SIGTERM)
            rest = (await asyncio.wait_for(proc.communicate(), 15))[1].decode()
    log = "".join(lines) + rest
    assert proc.returncode == 0, log
    assert " INFO controller.janus.adapter: janus janus-under-test: session " in log
    assert '"janus": "create"' not in log
    assert '"token"' not in log, log  # no Janus message (they carry the session's token)
    assert ADMIN_SECRET not in log, log
    assert "Traceback" not in log, log  # janus_client's reader traceback is condensed to one line
    assert " WARNING janus_client.transport_websocket: websockets.exceptions.ConnectionClosedError" in log
    assert log.count(" on ws://") == 2, log
