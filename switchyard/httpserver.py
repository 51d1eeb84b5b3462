"""The HTTP servers' limits, one implementation for the controller's API and the media worker.

What each limit is, on aiohttp 3.14.5 (``aiohttp/web_protocol.py``; earlier releases did not arm the
keep-alive timer until a first response, hence the floor in pyproject.toml):

- **Header time** is aiohttp's own ``keepalive_timeout``: ``RequestHandler.connection_made`` arms it when a
  connection opens and ``start()`` again after each response, and when it fires with the handler still
  waiting for a whole request head the connection is closed. So a client that sends its head a byte at a
  time is cut ``header_timeout_s`` after connecting (or after its previous response), like an idle
  keep-alive connection. A WebSocket stops it (``WebSocketResponse.prepare`` calls ``keep_alive(False)``).
- **Body time** has no aiohttp knob: a middleware gives a request whose body has not all arrived
  ``body_timeout_s`` from its head. Then the body stream fails with ``BodyTimeout``; a handler reading it
  gets it, and the middleware answers 408 and closes the connection (a handler that did not read it has
  answered already: aiohttp's lingering read of the rest ends on it, and closes). A request without a
  body (a WebSocket upgrade) is never timed.
- **Connections** have no aiohttp knob either (``backlog`` is the kernel's accept queue): the listening
  socket's protocol factory counts the connections, and one beyond ``max_connections`` gets a 503 and is
  closed at once; the others never notice.
- Sizes stay aiohttp's: request line and header fields 8190 bytes, 128 headers; the body is bounded by
  each app's ``client_max_size``.

``async with HttpServer(app, limits) as server: port = await server.listen(host, port)``.

Exceptions::

    BodyTimeout (TimeoutError)    a request's body did not arrive in time (the client gets 408)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from ssl import SSLContext
from types import TracebackType
from typing import Any, Final, Self, cast

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import Field

from switchyard.settings import SettingsModel

__all__ = ["BodyTimeout", "ConnectionGate", "HttpLimits", "HttpServer", "body_deadline"]

log = logging.getLogger(__name__)

_FULL: Final = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class HttpLimits(SettingsModel):
    """How long a client may take to send a request, and how many connections it may hold."""

    max_connections: int = Field(
        512, ge=1, description="open TCP connections (WebSockets included); more get a 503 and are closed"
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a connection must send a whole request head this soon after it opens or after its "
        "previous response, else it is closed (an idle keep-alive connection too)",
    )
    body_timeout_s: float = Field(
        10.0, gt=0, description="a request's whole body must arrive this soon after its head, else 408"
    )


class BodyTimeout(TimeoutError):
    """The request body did not arrive within ``body_timeout_s``."""


def body_deadline(timeout: float) -> Middleware:
    """The middleware that gives a request's body ``timeout`` seconds to arrive (see the module docstring)."""

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        body = request.content
        if body.is_eof():  # no body, or all of it came with the head
            return await handler(request)
        timer = asyncio.get_running_loop().call_later(timeout, _expire, request, timeout)
        body.on_eof(timer.cancel)
        try:
            return await handler(request)
        except BodyTimeout as exc:
            response = web.Response(status=408, text=f"{exc}\n")
            response.force_close()
            return response

    return deadline


def _expire(request: web.Request, timeout: float) -> None:
    if request.transport is None or request.content.is_eof():
        return  # gone, or complete
    log.warning("%s %s from %s: body not received within %g s; closing", request.method, request.path,
                request.remote, timeout)  # fmt: skip
    request.content.set_exception(BodyTimeout(f"request body not received within {timeout:g} s"))


class _Refused(asyncio.Protocol):
    """A connection beyond the limit: a 503, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCPTransport (the worker's) is no asyncio.WriteTransport.
        writer = cast(asyncio.WriteTransport, transport)
        writer.write(_FULL)
        writer.close()


class _Counted(asyncio.Protocol):
    """A connection within the limit: its server's protocol, counted until the connection is lost."""

    __slots__ = ("_gate", "_inner")

    def __init__(self, gate: ConnectionGate, inner: asyncio.Protocol) -> None:
        self._gate = gate
        self._inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gate.release()
        self._inner.connection_lost(exc)


class ConnectionGate:
    """A listening socket's protocol factory: ``factory``'s protocol for ``limit`` connections at a time.

    Counts at accept, before the connection reaches aiohttp, so a burst of connects cannot pass the limit.
    """

    def __init__(self, factory: Callable[[], asyncio.Protocol], limit: int, name: str) -> None:
        self._factory = factory
        self.limit = limit
        self.name = name
        self.open = 0
        self.refused = 0
        self._full = False

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.limit:
            self.refused += 1
            if not self._full:
                self._full = True
                log.warning("%s: %d connections open, refusing more with 503", self.name, self.open)
            return _Refused()
        self.open += 1
        return _Counted(self, self._factory())

    def release(self) -> None:
        """One counted connection is gone."""
        self.open -= 1
        if self._full:
            self._full = False
            log.info("%s: below %d connections, accepting again", self.name, self.limit)


class HttpServer:
    """``app`` served within ``limits`` on the listeners ``listen`` opens (used as ``async with``).

    The listeners share one connection gate: ``max_connections`` is the server's, however many sockets it
    listens on. The body deadline middleware is added to ``app``, which must not be frozen yet; ``name``
    is the server's in logs; ``runner`` keyword arguments go to ``web.AppRunner`` (``access_log=None``...).
    """

    def __init__(
        self, app: web.Application, limits: HttpLimits, *, name: str = "http", **runner: Any
    ) -> None:
        app.middlewares.insert(0, body_deadline(limits.body_timeout_s))
        self._runner = web.AppRunner(app, keepalive_timeout=limits.header_timeout_s, **runner)
        self._limits = limits
        self.name = name
        self._servers: list[asyncio.Server] = []
        self.gate: ConnectionGate | None = None

    async def __aenter__(self) -> Self:
        await self._runner.setup()
        assert self._runner.server is not None
        self.gate = ConnectionGate(self._runner.server, self._limits.max_connections, self.name)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def listen(self, host: str, port: int, ssl_context: SSLContext | None = None) -> int:
        """Accept connections on ``host``:``port`` (0: the kernel picks), over TLS with ``ssl_context``
        (whose handshake must also end within ``header_timeout_s``); returns the port.

        Raises:
            OSError: the address cannot be bound.
        """
        assert self.gate is not None, "listen inside async with"
        handshake = self._limits.header_timeout_s if ssl_context is not None else None
        server = await asyncio.get_running_loop().create_server(
            self.gate, host, port, ssl=ssl_context, ssl_handshake_timeout=handshake, backlog=128
        )
        self._servers.append(server)
        bound: int = server.sockets[0].getsockname()[1]
        return bound

    async def aclose(self) -> None:
        """Stop listening, then close the connections as ``AppRunner.cleanup`` does (handlers, app)."""
        for server in self._servers:
            server.close()
        self._servers.clear()
        await self._runner.cleanup()
