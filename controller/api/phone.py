"""The browser phone demo page: ``GET /phone`` and its static files (no auth: the page signs in).

The page (``controller/web/phone.*``) signs in as a directory user (``POST /v1/webrtc/signin``, extension +
password or a one-time invite), calls ``POST /v1/webrtc/session`` with the short-lived webrtc credential,
connects to Janus with the token and SIP account it gets back, and follows the call's transcript on
``GET /v1/events?access_token=<feed_token>``. Janus's browser library (``janus.js``) and the
``webrtc-adapter`` it needs (its ``adapter`` global, see ``Janus.useDefaultDependencies`` in janus.js) are
not in this repository: they are served from the files Debian's ``libjs-janus-gateway`` and
``libjs-webrtc-adapter`` install (paths in ``janus.janus_js`` / ``janus.adapter_js``). A missing file is
answered with 503 and a plain-text reason, which the page shows.

Every response carries a Content Security Policy without inline script, whose ``connect-src`` allows the
controller itself (API and event feed) and Janus's WebSocket URL, and ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from aiohttp import web

from controller.janus.settings import JanusSettings

__all__ = ["add_phone_routes", "content_security_policy"]

_WEB = resources.files("controller") / "web"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PAGE_FILES = ("phone.js", "api.js", "feed.js", "phone.css", "icon.svg")  # served under /phone/
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def content_security_policy(janus: JanusSettings, controller_host: str) -> str:
    """The page's CSP: scripts and styles from the controller only; connections to it and to Janus."""
    connect = ["'self'", f"ws://{controller_host}", f"wss://{controller_host}"]
    if janus.enabled:
        connect.append(janus.browser_url)
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "media-src 'self' blob:",
            f"connect-src {' '.join(connect)}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


class _PhoneFiles:
    """Handlers of the page, its own files and the Debian-packaged libraries."""

    def __init__(self, janus: JanusSettings) -> None:
        self._janus = janus
        self._own = {name: (_WEB / name).read_bytes() for name in ("phone.html", *_PAGE_FILES)}

    def _headers(self, request: web.Request, content_type: str) -> dict[str, str]:
        return {
            "Content-Type": f"{content_type}; charset=utf-8",
            "Content-Security-Policy": content_security_policy(self._janus, request.host),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }

    def own(self, name: str) -> Handler:
        """A handler serving ``controller/web/<name>``."""
        body, content_type = self._own[name], _TYPES[Path(name).suffix]

        async def handle(request: web.Request) -> web.Response:
            return web.Response(body=body, headers=self._headers(request, content_type))

        return handle

    def library(self, path: Path, package: str) -> Handler:
        """A handler serving the file at ``path`` (read per request: the package may be installed later)."""

        async def handle(request: web.Request) -> web.Response:
            try:
                body = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                # text/plain + nosniff: the browser does not run it; the page fetches it to show why.
                reason = f"{path} is not readable ({exc.strerror}): install the Debian package {package}\n"
                return web.Response(
                    status=503, body=reason.encode(), headers=self._headers(request, "text/plain")
                )
            return web.Response(body=body, headers=self._headers(request, "text/javascript"))

        return handle


def add_phone_routes(app: web.Application, janus: JanusSettings) -> None:
    """Mount ``/phone``, its own files (``/phone/<name>`` for each of ``_PAGE_FILES``) and
    the Debian libraries (``/phone/janus.js``, ``/phone/adapter.js``); the page's own files are read now."""
    files = _PhoneFiles(janus)
    app.router.add_get("/phone", files.own("phone.html"))
    for name in _PAGE_FILES:
        app.router.add_get(f"/phone/{name}", files.own(name))
    app.router.add_get("/phone/janus.js", files.library(janus.janus_js, "libjs-janus-gateway"))
    app.router.add_get("/phone/adapter.js", files.library(janus.adapter_js, "libjs-webrtc-adapter"))
