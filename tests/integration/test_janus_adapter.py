"""The Janus adapter, its Admin API client and the stale-session reaper against the real Janus (Debian's).

Janus runs on free loopback ports with ``render_janus``'s configuration (``tests/januskit.py``); what the
adapter did is checked through Janus's own Admin API and Janus API. The SIP registration goes to a sipp UAS
on loopback (``tests/sipp/uas_register_echo.xml`` answers REGISTER with 200): SIP works over 127.0.0.1,
only ICE does not, and no media flows here.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from controller.janus.adapter import JanusAdapter
from controller.janus.admin import UNAUTHORIZED, JanusAdmin, JanusError, JanusUnavailable
from controller.janus.reaper import has_live_call
from controller.janus.settings import JanusSettings
from tests.controllerkit import running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.janus_sip import SipPlugin
from tests.januskit import ADMIN_SECRET, JanusProcess, free_ports, requires_janus, running_janus
from tests.netnskit import stop_process

pytestmark = [requires_janus]

UNKNOWN = 490  # src/apierror.h JANUS_ERROR_UNKNOWN
SCENARIO = Path(__file__).parents[1] / "sipp" / "uas_register_echo.xml"
# Quick failure detection and reconnects; the reaper off unless a test turns it on.
FAST: dict[str, Any] = {
    "keepalive_s": 0.5,
    "request_timeout_s": 2.0,
    "connect_timeout_s": 3.0,
    "reap_interval_s": 0,
    "backoff": {"initial": 0.1, "maximum": 0.5, "quick_failure": 0},
}


def adapter_settings(janus: JanusProcess, **overrides: Any) -> JanusSettings:
    """The running Janus's settings with the adapter's fields replaced (secrets dump masked: set again)."""
    data = janus.settings.janus.model_dump(mode="json")
    return JanusSettings.model_validate({**data, **FAST, **overrides, "admin_secret": ADMIN_SECRET})


@asynccontextmanager
async def janus_and_adapter(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[JanusProcess, JanusAdapter]]:
    async with (
        running_janus(tmp_path, sip_local_ip="127.0.0.1") as janus,
        JanusAdapter(adapter_settings(janus, **overrides)) as adapter,
    ):
        await adapter.wait_healthy(10)
        yield janus, adapter


async def janus_api(janus: JanusProcess, body: dict[str, Any], path: str = "") -> dict[str, Any]:
    """One Janus API request over HTTP (another client than the adapter)."""
    body = {"transaction": secrets.token_hex(6), **body}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.post(janus.http_url + path, json=body) as response,
    ):
        reply: dict[str, Any] = await response.json(content_type=None)
    return reply


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while True:  # Janus's state, polled: nothing here to wait on
                if await check():
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within {timeout}s: {what}") from None


async def test_adapter_session_and_sip_handle_are_seen_by_the_admin_api(tmp_path: Path) -> None:
    async with janus_and_adapter(tmp_path) as (_, adapter):
        admin = adapter.admin
        assert adapter.healthy
        assert adapter.session_id in await admin.list_sessions()
        status = await admin.get_status()
        assert status["token_auth"] is True
        assert adapter.token in await admin.list_tokens()

        plugin = SipPlugin()
        await plugin.attach(adapter.session)
        try:
            assert plugin.id in await admin.list_handles(adapter.session_id)
            info = await admin.handle_info(adapter.session_id, plugin.id)
        finally:
            await plugin.detach()
        assert info["plugin"] == "janus.plugin.sip"
        assert info["session_id"] == adapter.session_id
        assert info["plugin_specific"]["call_status"] == "idle"
        assert info["plugin_specific"]["registration_status"] == "unregistered"
        assert not has_live_call(info)
        in_call = {**info, "plugin_specific": {**info["plugin_specific"], "call_status": "incall"}}
        assert has_live_call(in_call)
        assert plugin.id not in await admin.list_handles(adapter.session_id)


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt-get install sip-tester)")
async def test_sip_plugin_registers_through_the_adapter_session(tmp_path: Path) -> None:
    sip_port = free_ports(1)[0]
    with (tmp_path / "sipp.out").open("wb") as out:
        sipp = await asyncio.create_subprocess_exec(
            "sipp", "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(sip_port),
            "-nostdin", "-timeout", "60",
            "-trace_msg", "-message_file", str(tmp_path / "sipp.msg"),
            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        async with janus_and_adapter(tmp_path / "janus") as (_, adapter):
            assert adapter.session_id is not None
            plugin = SipPlugin()
            await plugin.attach(adapter.session)
            try:
                await plugin.register("sip:alice@127.0.0.1", "secret", f"sip:127.0.0.1:{sip_port}")
                info = await adapter.admin.handle_info(adapter.session_id, plugin.id)
            finally:
                await plugin.detach()
    finally:
        await stop_process(sipp)
    assert info["plugin_specific"]["registration_status"] == "registered"
    assert info["plugin_specific"]["identity"] == "sip:alice@127.0.0.1"
    assert not has_live_call(info)
    trace = (tmp_path / "sipp.msg").read_text(errors="replace")
    assert "REGISTER sip:127.0.0.1" in trace
    assert "Switchyard-Janus-SIP" in trace


async def test_tokens_let_clients_in_until_removed(tmp_path: Path) -> None:
    async with janus_and_adapter(tmp_path) as (janus, adapter):
        admin = adapter.admin
        token = secrets.token_hex(16)
        await admin.add_token(token)
        assert token in await admin.list_tokens()
        created = await janus_api(janus, {"janus": "create", "token": token})
        assert created["janus"] == "success", created
        await admin.remove_token(token)
        assert token not in await admin.list_tokens()
        refused = await janus_api(janus, {"janus": "create", "token": token})
        assert refused["janus"] == "error"
        assert refused["error"]["code"] == UNAUTHORIZED
        with pytest.raises(JanusError) as removed_twice:
            await admin.remove_token(token)
    assert removed_twice.value.code == UNKNOWN  # janus.c: "Error removing token"


async def test_admin_errors_carry_janus_codes(tmp_path: Path) -> None:
    async with running_janus(tmp_path) as janus, aiohttp.ClientSession() as http:
        admin = JanusAdmin(janus.admin_url, ADMIN_SECRET, http, timeout_s=2)
        wrong = JanusAdmin(janus.admin_url, "not-the-secret", http, timeout_s=2)
        with pytest.raises(JanusError) as refused:
            await wrong.list_sessions()
        with pytest.raises(JanusError) as missing:
            await admin.list_handles(123456789)
        port = free_ports(1)[0]
        with pytest.raises(JanusUnavailable):
            await JanusAdmin(f"http://127.0.0.1:{port}/admin", ADMIN_SECRET, http, timeout_s=2).get_status()
    assert refused.value.code == UNAUTHORIZED
    assert missing.value.code == 458


async def test_adapter_survives_a_janus_restart(tmp_path: Path) -> None:
    async with running_janus(tmp_path) as janus, aiohttp.ClientSession() as http:
        admin = JanusAdmin(janus.admin_url, ADMIN_SECRET, http)
        async with JanusAdapter(adapter_settings(janus)) as adapter:
            await adapter.wait_healthy(10)
            before = adapter.session_id
            await janus.kill()
            await adapter.wait_unhealthy(5)
            assert adapter.last_error
            await janus.start()  # same configuration, same ports; it forgot sessions and tokens
            await adapter.wait_healthy(10)
            sessions = await admin.list_sessions()
            assert adapter.session_id in sessions
            assert before not in sessions
            assert adapter.token in await admin.list_tokens()
            assert adapter.connects == 2
            token = adapter.token
        # On exit the adapter destroyed its session and removed its token.
        assert token not in await admin.list_tokens()
        assert await admin.list_sessions() == []


async def test_reaper_destroys_idle_sessions_but_not_its_own(tmp_path: Path) -> None:
    async with janus_and_adapter(tmp_path, reap_after_s=0.5, reap_interval_s=0.2) as (janus, adapter):
        admin = adapter.admin
        token = secrets.token_hex(16)
        await admin.add_token(token)
        bare = await janus_api(janus, {"janus": "create", "token": token})
        with_handle = await janus_api(janus, {"janus": "create", "token": token})
        session_id = with_handle["data"]["id"]
        attached = await janus_api(
            janus, {"janus": "attach", "plugin": "janus.plugin.sip", "token": token}, f"/{session_id}"
        )
        assert attached["janus"] == "success", attached
        idle = {bare["data"]["id"], session_id}

        async def reaped() -> bool:
            return not idle & set(await admin.list_sessions())

        await eventually(reaped, 5, f"sessions {idle} reaped")
        assert adapter.session_id in await admin.list_sessions()
        assert adapter.healthy
        assert adapter.reaper.reaped == 2


async def test_readyz_and_nodes_show_janus(tmp_path: Path) -> None:
    async with (
        running_janus(tmp_path / "janus") as janus,
        FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
    ):
        section = {**janus.settings.janus.model_dump(mode="json"), **FAST, "admin_secret": ADMIN_SECRET}
        async with running_controller(fs, tmp_path, janus=section) as rc:
            assert rc.controller.janus is not None
            await rc.controller.janus.wait_healthy(10)
            async with rc.http.get(rc.base + "/readyz") as response:
                ready = await response.json()
            assert response.status == 200, ready
            assert ready["janus"] == {"name": "janus-under-test", "healthy": True, "error": None}
            async with rc.http.get(rc.base + "/v1/nodes") as response:
                nodes = await response.json()
            assert nodes["janus"][0]["name"] == "janus-under-test"
            assert nodes["janus"][0]["healthy"] is True
            assert nodes["janus"][0]["sessions"] == 1  # the controller's own

            await janus.kill()
            await rc.controller.janus.wait_unhealthy(5)
            async with rc.http.get(rc.base + "/readyz") as response:
                down = await response.json()
            assert response.status == 503
            assert down["ready"] is False
            assert down["nodes"] == {"fs1": True}
            assert down["janus"]["name"] == "janus-under-test"
            assert down["janus"]["healthy"] is False
            assert down["janus"]["error"]
            async with rc.http.get(rc.base + "/v1/nodes") as response:
                nodes = await response.json()
            assert nodes["janus"][0]["sessions"] is None
