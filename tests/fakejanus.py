"""A Janus that a test scripts: the /phone page's janus.js talks to it, and the test pushes the SIP plugin's
events in the order a race in janus_sip.c produces them.

It speaks Janus 1.1.2's WebSocket API (subprotocol ``janus-protocol``) as far as janus.js needs it:
``create`` and ``attach`` are answered ``success`` with an id, ``keepalive``, ``trickle`` and ``hangup``
``ack``, ``detach`` and ``destroy`` ``success``. A plugin ``message`` is answered ``ack`` (the SIP plugin
answers every request asynchronously, src/plugins/janus_sip.c) and goes to :attr:`FakeJanus.requests`;
:meth:`FakeJanus.push` then sends a plugin event as Janus does (``janus: event``, ``sender`` the handle,
``plugindata.data`` = ``{"sip": "event", "result": {...}, "call_id": ...}`` and the JSEP), and
:meth:`FakeJanus.push_error` a plugin error (``{"sip": "event", "error_code": ..., "error": ...}``).

Mount :meth:`FakeJanus.handle` as a GET route of an aiohttp application; one page (one WebSocket) at a time.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["FakeJanus", "PluginRequest", "answer_sdp"]

SIP_PLUGIN = "janus.plugin.sip"
# janus.js (Janus.init's default dependencies) opens its WebSocket with this subprotocol.
PROTOCOL = "janus-protocol"
_ACKED = frozenset({"keepalive", "trickle", "hangup"})
_DONE = frozenset({"detach", "destroy"})


@dataclass(frozen=True, slots=True)
class PluginRequest:
    """A plugin message the page sent: its ``body`` (``request``, ...) and its JSEP, if any."""

    body: dict[str, Any]
    jsep: dict[str, Any] | None


class FakeJanus:
    """The Janus API of one page, scripted by the test.

    Attributes:
        requests: the page's plugin messages, oldest first.
    """

    def __init__(self) -> None:
        self.requests: asyncio.Queue[PluginRequest] = asyncio.Queue()
        self._ws: web.WebSocketResponse | None = None
        self._session = secrets.randbelow(2**52) + 1
        self._handle = secrets.randbelow(2**52) + 1

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The aiohttp handler: the page's WebSocket, until it closes."""
        ws = web.WebSocketResponse(protocols=(PROTOCOL,))
        await ws.prepare(request)
        self._ws = ws
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                break
            await self._answer(json.loads(message.data))
        return ws

    async def request(self, name: str, timeout_s: float = 10.0) -> PluginRequest:
        """The page's next plugin message, which must be the request ``name``."""
        async with asyncio.timeout(timeout_s):
            sent = await self.requests.get()
        assert sent.body.get("request") == name, sent.body
        return sent

    async def push(
        self, event: str, jsep: dict[str, Any] | None = None, call_id: str | None = None, **result: Any
    ) -> None:
        """Send the SIP plugin's event ``event`` with ``result``'s fields, ``call_id`` and ``jsep``."""
        data: dict[str, Any] = {"sip": "event", "result": {"event": event, **result}}
        if call_id is not None:
            data["call_id"] = call_id
        await self._event(data, jsep)

    async def push_error(self, code: int, error: str) -> None:
        """Send a SIP plugin error (janus_sip.c's ``error_code``/``error`` for a refused request)."""
        await self._event({"sip": "event", "error_code": code, "error": error}, None)

    async def _event(self, data: dict[str, Any], jsep: dict[str, Any] | None) -> None:
        message: dict[str, Any] = {
            "janus": "event",
            "session_id": self._session,
            "sender": self._handle,
            "plugindata": {"plugin": SIP_PLUGIN, "data": data},
        }
        if jsep is not None:
            message["jsep"] = jsep
        await self._send(message)

    async def _answer(self, message: dict[str, Any]) -> None:
        kind, transaction = message.get("janus"), message.get("transaction")
        reply: dict[str, Any] = {"transaction": transaction, "session_id": self._session}
        if kind == "create":
            await self._send({"janus": "success", "transaction": transaction, "data": {"id": self._session}})
        elif kind == "attach":
            assert message.get("plugin") == SIP_PLUGIN, message
            await self._send({"janus": "success", **reply, "data": {"id": self._handle}})
        elif kind == "message":
            await self._send({"janus": "ack", **reply})
            self.requests.put_nowait(PluginRequest(message["body"], message.get("jsep")))
        elif kind in _ACKED:
            await self._send({"janus": "ack", **reply})
        elif kind in _DONE:
            await self._send({"janus": "success", **reply})
        else:
            await self._send({"janus": "error", **reply, "error": {"code": 453, "reason": f"no {kind}"}})

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None, "the page has not connected"
        await self._ws.send_str(json.dumps(message))


def answer_sdp(offer: str) -> dict[str, str]:
    """A JSEP answer to the page's audio ``offer`` that Chromium accepts (PCMU, the offer's mid, made-up ICE
    credentials and DTLS fingerprint, no candidates: ICE never connects, which these tests do not need)."""
    mid = re.search(r"^a=mid:(\S+)", offer, re.MULTILINE)
    assert mid is not None, offer
    fingerprint = ":".join(f"{b:02X}" for b in secrets.token_bytes(32))
    lines = [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        f"a=group:BUNDLE {mid[1]}",
        "m=audio 9 UDP/TLS/RTP/SAVPF 0",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        f"a=ice-ufrag:{secrets.token_hex(4)}",
        f"a=ice-pwd:{secrets.token_hex(12)}",
        f"a=fingerprint:sha-256 {fingerprint}",
        "a=setup:active",
        f"a=mid:{mid[1]}",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:0 PCMU/8000",
    ]
    return {"type": "answer", "sdp": "\r\n".join(lines) + "\r\n"}
