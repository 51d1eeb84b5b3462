"""The controller's Janus API session over a plain WebSocket, or over WSS trusting ``janus.tls.cert_file``.

janus-client 0.9.0 opens its WebSocket with ``websockets.connect`` and passes that call's keyword arguments
through its transport's ``_connect`` (``janus_client/transport_websocket.py``), but its session gives it
none: a ``wss://`` URL then trusts only the system's CAs, which a self-signed certificate is not among. The
transport here passes the SSL context, which trusts the certificate file itself (``switchyard.tls``). The
host name in ``janus.api_url`` (``api_host``, else ``tls.host``, else the bound address) must be in the
certificate.
"""

from __future__ import annotations

import ssl
from typing import Any

from janus_client import JanusSession
from janus_client.transport_websocket import JanusTransportWebsocket

from controller.janus.settings import JanusSettings
from switchyard.tls import trusting_context

__all__ = ["janus_session"]


class _TrustingWebsocket(JanusTransportWebsocket):  # type: ignore[misc]  # janus-client has no types
    """janus-client's WebSocket transport with our SSL context."""

    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._context = context

    async def _connect(self, **kwargs: Any) -> None:
        await super()._connect(ssl=self._context, **kwargs)


def janus_session(settings: JanusSettings, token: str | None) -> Any:
    """A janus-client ``JanusSession`` to ``settings.api_url`` (not connected yet)."""
    url = settings.api_url
    if settings.plain_ws or settings.tls is None:
        return JanusSession(base_url=url, token=token)
    transport = _TrustingWebsocket(trusting_context(settings.tls.cert_file), base_url=url, token=token)
    return JanusSession(transport=transport)
