"""The demo page's static routes (``controller/api/phone.py``) on a loopback aiohttp server."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from controller.api.phone import add_phone_routes
from controller.janus.settings import JanusSettings
from tests.appkit import served


def _janus(tmp_path: Path, **extra: Any) -> JanusSettings:
    js = tmp_path / "janus.js"
    js.write_text("window.Janus = {};\n")
    adapter = tmp_path / "adapter.js"
    adapter.write_text("window.adapter = {};\n")
    data: dict[str, Any] = {
        "enabled": True,
        "admin_secret": "s",
        "listen_ip": "10.1.2.3",
        "ws_port": 8999,
        "janus_js": str(js),
        "adapter_js": str(adapter),
    }
    return JanusSettings.model_validate({**data, **extra})


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Any]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(janus: JanusSettings) -> str:
            app = web.Application()
            add_phone_routes(app, janus)
            return f"http://127.0.0.1:{await stack.enter_async_context(served(app))}"

        yield start


async def _get(url: str) -> tuple[int, dict[str, str], str]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.get(url) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.text()


async def test_page_has_a_csp_without_inline_script_that_allows_janus(serve: Any, tmp_path: Path) -> None:
    base = await serve(_janus(tmp_path))
    status, headers, body = await _get(f"{base}/phone")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert headers["X-Content-Type-Options"] == "nosniff"
    csp = dict(d.strip().split(" ", 1) for d in headers["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == "'self'"
    assert csp["default-src"] == "'none'"
    host = base.removeprefix("http://")
    assert set(csp["connect-src"].split()) == {
        "'self'",
        f"ws://{host}",
        f"wss://{host}",
        "ws://10.1.2.3:8999",
    }
    # No inline script or style anywhere in the page: every <script> has a src, no on* attributes.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", body) == []
    assert re.search(r"\son[a-z]+=", body) is None
    assert "<style" not in body
    assert "http://" not in body  # no external URL
    assert "https://" not in body


@pytest.mark.parametrize(
    ("path", "content_type", "needle"),
    [
        ("/phone/phone.js", "text/javascript", "janus.plugin.sip"),
        ("/phone/feed.js", "text/javascript", "access_token"),
        ("/phone/api.js", "text/javascript", "v1/webrtc/session"),
        ("/phone/phone.css", "text/css", ".keypad"),
        ("/phone/icon.svg", "image/svg+xml", "<svg"),
        ("/phone/janus.js", "text/javascript", "window.Janus"),
        ("/phone/adapter.js", "text/javascript", "window.adapter"),
    ],
)
async def test_static_files_are_served_with_the_security_headers(
    serve: Any, tmp_path: Path, path: str, content_type: str, needle: str
) -> None:
    base = await serve(_janus(tmp_path))
    status, headers, body = await _get(base + path)
    assert status == 200
    assert headers["Content-Type"].startswith(content_type)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert needle in body


@pytest.mark.parametrize(
    ("path", "package"), [("janus.js", "libjs-janus-gateway"), ("adapter.js", "libjs-webrtc-adapter")]
)
async def test_missing_library_is_503_with_the_reason(
    serve: Any, tmp_path: Path, path: str, package: str
) -> None:
    missing = tmp_path / "nowhere" / path
    key = "janus_js" if path == "janus.js" else "adapter_js"
    base = await serve(_janus(tmp_path, **{key: str(missing)}))
    status, headers, body = await _get(f"{base}/phone/{path}")
    assert status == 503
    # text/plain + nosniff: a browser will not run it as a script; the page fetches it to show the reason.
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert str(missing) in body
    assert package in body


async def test_csp_leaves_janus_out_when_disabled(serve: Any, tmp_path: Path) -> None:
    base = await serve(JanusSettings())
    status, headers, _ = await _get(f"{base}/phone")
    assert status == 200
    assert ":8188" not in headers["Content-Security-Policy"]
