"""The /phone page in a real headless Chromium (``tests/phonekit.py``) when a Debian library file it needs
is missing: the controller answers its URL 503 with the reason, and the page shows that reason and does
not offer to connect (janus.js cannot run without webrtc-adapter's ``adapter``). No Janus is needed: the
page checks its libraries when it loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import netnskit, phonekit
from tests.controllerkit import running_controller
from tests.fsemu import EmulatorConfig, FreeSwitchEmulator
from tests.phonekit import API_PORT, phone_page

pytestmark = pytest.mark.skipif(phonekit.skip_reason() is not None, reason=phonekit.skip_reason() or "")


async def test_page_names_the_missing_library_and_its_package(tmp_path: Path) -> None:
    async with netnskit.network_namespace() as ns:
        sections = phonekit.sections(ns)
        sections["janus"]["adapter_js"] = str(tmp_path / "not-installed" / "adapter.js")
        base = f"http://{ns.host_ip}:{API_PORT}"
        async with (
            FreeSwitchEmulator(EmulatorConfig(temp_dir=tmp_path)) as fs,
            running_controller(fs, tmp_path, **sections),
            phone_page(ns, tmp_path, base) as phone,
        ):
            await phone.page.goto(f"{base}/phone")
            await phone.wait("#error:has-text('adapter.js is unavailable (HTTP 503)')")
            said = await phone.page.inner_text("#error")
            assert "install the Debian package libjs-webrtc-adapter" in said, said
            assert "janus.js" not in said  # it loaded: only the missing file is named
            assert await phone.page.is_disabled("#connect")
