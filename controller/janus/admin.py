"""Janus's Admin API over HTTP: sessions, handles, tokens and status of one Janus instance.

Every request is a JSON ``POST`` with ``janus`` (the request name), ``transaction`` and ``admin_secret``,
sent to ``<admin_url>`` (core-level requests), ``<admin_url>/<session_id>`` (session-level) or
``<admin_url>/<session_id>/<handle_id>`` (handle-level): the HTTP transport copies the ids of the path into
the request (``src/transports/janus_http.c``, ``janus_http_admin_handler``). The request names and the
reply fields are those of ``janus_process_incoming_admin_request`` and ``janus_request_allow_token`` in
``src/janus.c`` (tag v1.1.2); the Admin API doc is https://janus.conf.meetecho.com/docs/admin.html.

Janus answers HTTP 200 with ``{"janus": "success", ...}`` or ``{"janus": "error", "error": {"code": N,
"reason": "..."}}``; the codes are ``src/apierror.h``'s (403 wrong admin secret, 458 no such session, 459 no
such handle, 470 no such token, 490 anything else, e.g. "Stored-Token based authentication disabled").

Exceptions::

    JanusError(code, reason)          Janus answered with an error (or with something that is not a reply)
    └── JanusUnavailable              no answer: connection refused or reset, HTTP error, deadline missed
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any, Final

import aiohttp

__all__ = [
    "HANDLE_NOT_FOUND",
    "SESSION_NOT_FOUND",
    "SIP_PLUGIN",
    "TOKEN_NOT_FOUND",
    "UNAUTHORIZED",
    "JanusAdmin",
    "JanusError",
    "JanusUnavailable",
]

SIP_PLUGIN: Final = "janus.plugin.sip"
# src/apierror.h
UNAUTHORIZED: Final = 403
SESSION_NOT_FOUND: Final = 458
HANDLE_NOT_FOUND: Final = 459
TOKEN_NOT_FOUND: Final = 470
_NOT_A_REPLY: Final = 0


class JanusError(Exception):
    """Janus refused a request: ``code`` from ``src/apierror.h`` (0: the reply was not Janus's)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class JanusUnavailable(JanusError):
    """Janus could not be reached or did not answer in time (``code`` 0)."""

    def __init__(self, reason: str) -> None:
        super().__init__(_NOT_A_REPLY, reason)
        self.args = (f"janus unavailable: {reason}",)


class JanusAdmin:
    """Client of one Janus's Admin API (see the module docstring).

    Args:
        url: the Admin API, e.g. ``http://127.0.0.1:7088/admin`` (``JanusSettings.admin_url``).
        secret: the ``admin_secret`` of janus.jcfg.
        http: the session requests go through (the caller owns and closes it).
        timeout_s: deadline of each request.
    """

    def __init__(self, url: str, secret: str, http: aiohttp.ClientSession, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._secret = secret
        self._http = http
        self.timeout_s = timeout_s

    async def request(self, request: str, path: str = "", **fields: Any) -> dict[str, Any]:
        """Send one Admin API request and return Janus's success reply.

        Args:
            request: the request name (``janus`` field).
            path: ``/<session_id>`` or ``/<session_id>/<handle_id>`` for session- and handle-level requests.
            **fields: more fields of the request.

        Raises:
            JanusError: Janus answered with an error.
            JanusUnavailable: no answer within ``timeout_s``.
        """
        transaction = secrets.token_hex(8)
        body = {"janus": request, "transaction": transaction, "admin_secret": self._secret, **fields}
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self._http.post(self.url + path, json=body) as response,
            ):
                response.raise_for_status()
                reply = await response.json(content_type=None)
        except TimeoutError as exc:
            raise JanusUnavailable(f"{request}: no answer within {self.timeout_s}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise JanusUnavailable(f"{request}: {exc or type(exc).__name__}") from exc
        except ValueError as exc:  # not JSON
            raise JanusError(_NOT_A_REPLY, f"{request}: the reply is not JSON") from exc
        return _success(request, transaction, reply)

    async def get_status(self) -> dict[str, Any]:
        """Janus's settings as ``get_status`` reports them (``token_auth``, ``session_timeout``, ...)."""
        reply = await self.request("get_status")
        return _object(reply.get("status"), "get_status: status")

    async def list_sessions(self) -> list[int]:
        """Ids of every session Janus holds."""
        reply = await self.request("list_sessions")
        return _ids(reply.get("sessions"), "list_sessions: sessions")

    async def list_handles(self, session_id: int) -> list[int]:
        """Ids of the handles of one session (raises ``JanusError`` 458 if there is no such session)."""
        reply = await self.request("list_handles", f"/{session_id}")
        return _ids(reply.get("handles"), "list_handles: handles")

    async def handle_info(self, session_id: int, handle_id: int) -> dict[str, Any]:
        """What Janus knows of one handle: ``plugin``, ``plugin_specific`` (the plugin's ``query_session``),
        ``created``/``current_time`` (monotonic µs), ``flags``, ``webrtc`` (when it has a PeerConnection)...

        Raises:
            JanusError: 458 no such session, 459 no such handle.
        """
        reply = await self.request("handle_info", f"/{session_id}/{handle_id}")
        return _object(reply.get("info"), "handle_info: info")

    async def add_token(self, token: str, plugins: Sequence[str] = (SIP_PLUGIN,)) -> None:
        """Let ``token`` create sessions and attach to ``plugins`` (an empty list: every plugin).

        Adding a token that exists is not an error (``janus_auth_add_token``, src/auth.c).

        Raises:
            JanusError: 490 when token auth is off (``token_auth`` false in janus.jcfg).
        """
        fields: dict[str, Any] = {"token": token}
        if plugins:
            fields["plugins"] = list(plugins)
        await self.request("add_token", **fields)

    async def remove_token(self, token: str) -> None:
        """Invalidate ``token``: Janus refuses its next request with 403 (sessions it made stay).

        Raises:
            JanusError: 490 when the token is unknown or token auth is off.
        """
        await self.request("remove_token", token=token)

    async def list_tokens(self) -> list[str]:
        """The stored tokens (Janus lists only tokens allowed at least one plugin)."""
        reply = await self.request("list_tokens")
        data = _object(reply.get("data"), "list_tokens: data")
        tokens = data.get("tokens")
        if not isinstance(tokens, list):
            raise JanusError(_NOT_A_REPLY, "list_tokens: tokens is not a list")
        return [str(item["token"]) for item in tokens if isinstance(item, dict) and "token" in item]

    async def destroy_session(self, session_id: int) -> None:
        """Destroy a session with its handles (its transport is told the session is over).

        Raises:
            JanusError: 458 no such session.
        """
        await self.request("destroy_session", f"/{session_id}")


def _success(request: str, transaction: str, reply: object) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise JanusError(_NOT_A_REPLY, f"{request}: the reply is not a JSON object")
    if reply.get("janus") == "error":
        error = reply.get("error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        raise JanusError(code if isinstance(code, int) else _NOT_A_REPLY, str(error.get("reason", "")))
    if reply.get("janus") != "success" or reply.get("transaction") != transaction:
        raise JanusError(_NOT_A_REPLY, f"{request}: unexpected reply {str(reply)[:200]}")
    return reply


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JanusError(_NOT_A_REPLY, f"{what} is not an object")
    return value


def _ids(value: object, what: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(item, int) for item in value):
        raise JanusError(_NOT_A_REPLY, f"{what} is not a list of ids")
    return list(value)
