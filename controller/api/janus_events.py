"""``POST /janus/events``: where Janus's sample HTTP event handler (``libjanus_sampleevh.so``) posts events.

The handler (src/events/janus_sampleevh.c, Janus 1.1.2) POSTs ``Content-Type: application/json``, one event
object or (``grouping = true``) an array of up to 100, optionally gzipped (``compress = true`` adds
``Content-Encoding: gzip``, which aiohttp decodes), with HTTP basic auth when ``backend_user`` and
``backend_pwd`` are set (curl's default scheme). It retries only when the POST itself fails, never on an
HTTP error status, so answering 400 or 401 loses those events: they are counted instead. Keep ``compress``
off: the handler gzips into a fixed 8 KiB buffer and drops any group that does not fit.

This route is outside the OpenAPI document and its bearer-token scheme on purpose: Janus can only send
basic auth, and the route is for Janus, not for API clients. Errors use the house body
``{"error": {"status", "field", "reason"}}`` (``controller.api.spec.ApiError``): 400 body not JSON or not
events, 401 missing/wrong credentials (``WWW-Authenticate: Basic``), 413 body over 1 MiB. Success is 204.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from typing import Final

from aiohttp import web

from controller.api.spec import ApiError
from controller.janus.events import JanusEvent, JanusEventError, decode_body, parse_event
from controller.janus.metrics import JanusMetrics

__all__ = ["MAX_BODY_BYTES", "BasicAuth", "add_janus_event_routes", "basic_authorized"]

log = logging.getLogger("switchyard.janus.events")

MAX_BODY_BYTES: Final = 1024 * 1024
"""Largest body accepted (after gzip decoding). 100 grouped events with SIP messages stay well below."""
_CHUNK: Final = 64 * 1024
_REALM: Final = "switchyard-janus-events"


def add_janus_event_routes(
    app: web.Application,
    metrics: JanusMetrics,
    user: str,
    password: str,
    on_event: Callable[[JanusEvent], None] | None = None,
) -> None:
    """Add ``POST /janus/events`` to ``app``: basic auth ``user``/``password``, events into ``metrics``
    (and ``on_event``, e.g. ``WebrtcLinks.apply``).

    The body is read from the stream with its own 1 MiB cap, so the app's ``client_max_size`` (smaller,
    for the API) does not apply to it.
    """
    auth = BasicAuth(user, password, _REALM)

    async def janus_events(request: web.Request) -> web.Response:
        if (refused := auth.refusal(request)) is not None:
            return refused
        try:
            items = decode_body(await _read_capped(request))
        except ApiError as exc:
            metrics.reject()
            return exc.response()
        except JanusEventError as exc:
            metrics.reject()
            return ApiError(400, str(exc), "body").response()
        for item in items:
            try:
                event = parse_event(item)
            except JanusEventError as exc:
                metrics.reject()
                log.debug("janus event rejected: %s", exc)
                continue
            metrics.apply(event)
            if on_event is not None:
                on_event(event)
        return web.Response(status=204)

    app.router.add_post("/janus/events", janus_events)


class BasicAuth:
    """The HTTP basic credentials (RFC 7617) a peer of the controller must send, and its realm."""

    def __init__(self, user: str, password: str, realm: str) -> None:
        self._user, self._password = user.encode(), password.encode()
        self._challenge = f'Basic realm="{realm}", charset="UTF-8"'

    def refusal(self, request: web.Request) -> web.Response | None:
        """None when ``request`` carries the credentials, else the 401 answer with the challenge."""
        if basic_authorized(request.headers.get("Authorization", ""), self._user, self._password):
            return None
        response = ApiError(401, "missing or wrong basic credentials", "Authorization").response()
        response.headers["WWW-Authenticate"] = self._challenge
        return response


def basic_authorized(header: str, user: bytes, password: bytes) -> bool:
    """``Authorization: Basic base64(user:password)`` matches (RFC 7617), compared in constant time."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    given_user, _, given_password = decoded.partition(b":")  # a user-id has no colon (RFC 7617)
    # Both comparisons always run, so the time taken does not tell which one failed.
    user_ok = hmac.compare_digest(given_user, user)
    password_ok = hmac.compare_digest(given_password, password)
    return user_ok and password_ok


async def _read_capped(request: web.Request) -> bytes:
    """The (decoded) body, at most ``MAX_BODY_BYTES``.

    Raises:
        ApiError: 413 when the body is larger.
    """
    too_large = ApiError(413, f"body larger than {MAX_BODY_BYTES} bytes", "body")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    data = bytearray()
    while chunk := await request.content.read(_CHUNK):
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise too_large
    return bytes(data)
