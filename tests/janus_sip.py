"""A client of the Janus SIP plugin (``janus.plugin.sip``) for janus-client 0.9.0.

janus-client ships no SIP plugin class; :class:`SipPlugin` subclasses its ``JanusPlugin``. Used by the tests
that act as a browser would (register, call, accept, DTMF, hang up) over a ``JanusSession``; the controller
itself never talks to the SIP plugin (the browser's page does, through janus.js).

How replies reach us (janus-client 0.9.0, ``transport.py``): a message whose ``transaction`` belongs to a
live ``MessageTransaction`` goes to that transaction's queue, and only to it; after ``tx.done()`` the same
transaction id is routed to the handle's ``on_receive``. The SIP plugin answers every request
asynchronously: an ``ack``, then an event with the request's transaction (``registering``, ``calling``,
``hangingup``… or an ``error_code``), and it sends later events (``registered``, ``accepted``, ``hangup``…)
with the transaction of the last ``register``/``call`` too (``session->transaction``, janus_sip.c v1.1.2).
So each request takes its first reply from the transaction, calls ``done()``, drains what else reached the
transaction, and holds ``on_receive`` meanwhile so that events are seen in the order Janus sent them.

Every plugin event goes to :attr:`SipPlugin.events` as the plugin's ``result`` object (``event``, ``code``,
``reason``, ``username``…) plus ``call_id`` (the SIP Call-ID, when Janus gives one) and ``jsep`` (when the
event carries SDP). Plugin API errors appear as ``{"event": "error", "error_code": …, "error": …}``.

Request bodies and event names: the API block at the top of ``src/plugins/janus_sip.c`` (Janus v1.1.2).

Errors (the layer's tree, :mod:`controller.janus.admin`): ``JanusError`` when Janus or the plugin refuses a
request or a SIP failure is reported (``registration_failed``, ``hangup`` before ``accepted``: ``code`` is
the SIP status, 0 when none was given); ``JanusUnavailable`` on transport failures and missed deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from typing import Any, Final

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from janus_client import JanusPlugin, JanusSession

from controller.janus.admin import JanusError, JanusUnavailable

__all__ = ["EVENTS_MAXSIZE", "NO_CODE", "SipPlugin"]

logger = logging.getLogger(__name__)

# Older events are dropped when nobody reads ``events`` (a controller-side handle must not grow forever).
EVENTS_MAXSIZE: Final = 256
# JanusError's code when Janus gave none (as in controller.janus.admin).
NO_CODE: Final = 0
# How long a request waits for more messages that reached its transaction after its first reply: they are
# already in the transaction's queue, so one loop turn would do; this bounds it.
_DRAIN_S: Final = 0.005
_REPLIES: Final = frozenset({"error", "success", "event"})

Event = dict[str, Any]
Jsep = dict[str, Any]


class SipPlugin(JanusPlugin):  # type: ignore[misc]  # janus-client has no type information
    """One handle on the Janus SIP plugin: one SIP account, at most one call at a time.

    Attributes:
        events: the plugin's events, oldest first (see the module docstring for their shape).
        webrtc_up: set when Janus reports the handle's PeerConnection up (``webrtcup``).
        call_id: the SIP Call-ID of the current or last call, once Janus has named it.
    """

    name = "janus.plugin.sip"

    def __init__(self, pc_config: RTCConfiguration | None = None) -> None:
        """Create the handle's plugin object (not yet attached).

        Args:
            pc_config: configuration of the plugin's own PeerConnection (:attr:`pc`); by default no ICE
                servers at all, so nothing contacts a STUN server.
        """
        super().__init__(pc_config=pc_config or RTCConfiguration(iceServers=[]))
        self.events: asyncio.Queue[Event] = asyncio.Queue(EVENTS_MAXSIZE)
        self.webrtc_up = asyncio.Event()
        self.call_id: str | None = None
        self._lock = asyncio.Lock()
        self._held: list[dict[str, Any]] | None = None
        self._watches: list[tuple[Collection[str], asyncio.Queue[Event]]] = []

    async def attach(self, session: JanusSession, timeout_s: float = 10.0) -> None:
        """Attach to the SIP plugin in ``session`` (creates the Janus session if needed).

        Raises:
            JanusUnavailable: no answer before ``timeout_s`` or the transport failed.
            JanusError: Janus refused (e.g. no valid token); code 0, as janus-client keeps only the text.
        """
        try:
            async with asyncio.timeout(timeout_s):
                await super().attach(session)
        except TimeoutError as exc:
            raise JanusUnavailable(f"attach: no answer within {timeout_s} s") from exc
        except JanusError:
            raise
        except Exception as exc:  # janus-client raises bare Exception (create/attach failures)
            raise JanusError(NO_CODE, f"attach failed: {exc}") from exc

    async def detach(self, timeout_s: float = 10.0) -> None:
        """Detach the handle (Janus hangs up its call and PeerConnection), then close :attr:`pc`.

        Does nothing but close :attr:`pc` when the handle was never attached.

        Raises:
            JanusUnavailable: no answer before ``timeout_s`` or the transport failed.
        """
        if self.id is None:
            await self.pc.close()
            return
        try:
            async with asyncio.timeout(timeout_s):
                await super().destroy()
        except TimeoutError as exc:
            raise JanusUnavailable(f"detach: no answer within {timeout_s} s") from exc
        except Exception as exc:
            raise JanusUnavailable(f"detach failed: {exc}") from exc
        finally:
            await self.pc.close()

    async def register(
        self,
        username: str,
        secret: str,
        proxy: str,
        *,
        authuser: str | None = None,
        display_name: str | None = None,
        outbound_proxy: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        """Register ``username`` (a SIP URI, ``sip:user@domain``) at ``proxy`` and wait for ``registered``.

        Args:
            username: the SIP identity, ``sip:user@domain``.
            secret: the SIP password.
            proxy: the registrar, ``sip:host[:port]`` (Janus 1.1.2 needs it to send the REGISTER).
            authuser: the digest user name when it differs from the URI's user.
            display_name: the display name of the REGISTER's From.
            outbound_proxy: where every later request goes, ``sip:host[:port]`` (janus_sip.c sends an INVITE
                through ``NUTAG_PROXY(outbound_proxy)`` only; without it, to the dialled URI's host).
            timeout_s: deadline for the whole exchange.

        Raises:
            JanusError: the plugin refused the request, or ``registration_failed`` (SIP code and reason).
            JanusUnavailable: no ``registered`` within ``timeout_s`` or the transport failed.
        """
        body: dict[str, Any] = {"request": "register", "username": username, "secret": secret, "proxy": proxy}
        if authuser is not None:
            body["authuser"] = authuser
        if display_name is not None:
            body["display_name"] = display_name
        if outbound_proxy is not None:
            body["outbound_proxy"] = outbound_proxy
        event = await self._exchange(body, None, {"registered", "registration_failed"}, timeout_s)
        if event["event"] == "registration_failed":
            raise JanusError(_code(event), str(event.get("reason", "registration failed")))

    async def call(
        self, uri: str, offer: RTCPeerConnection | Mapping[str, Any], *, timeout_s: float = 30.0
    ) -> Jsep:
        """Send an INVITE to ``uri`` and wait until it is answered.

        Args:
            uri: the SIP URI to call.
            offer: a PeerConnection (its offer is created and set here, with all ICE candidates, and the
                answer is applied to it) or a JSEP offer ``{"type": "offer", "sdp": …}``.
            timeout_s: deadline for the whole exchange (ringing included).

        Returns:
            The JSEP answer (from ``accepted``, or from an earlier ``progress`` with early media).

        Raises:
            JanusError: the plugin refused the call, or it ended (``hangup``: SIP code and reason) first.
            JanusUnavailable: no answer within ``timeout_s`` or the transport failed.
        """
        async with _deadline("call", timeout_s):
            jsep = await _local_jsep(offer, "offer")
            early: Jsep | None = None
            with self._watch({"progress", "accepted", "hangup"}) as watch:
                await self._send({"request": "call", "uri": uri}, jsep)
                event = await watch.get()
                while event["event"] == "progress":
                    early = event.get("jsep", early)
                    event = await watch.get()
            if event["event"] == "hangup":
                raise JanusError(_code(event), str(event.get("reason", "call ended")))
            answer: Jsep | None = event.get("jsep", early)
            if answer is None:
                raise JanusError(NO_CODE, "call accepted without an SDP answer")
            if isinstance(offer, RTCPeerConnection):
                await offer.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
            return answer

    async def accept(self, answer: RTCPeerConnection | Mapping[str, Any], *, timeout_s: float = 10.0) -> None:
        """Answer the incoming call (after ``incomingcall``) and wait for ``accepted``.

        Args:
            answer: a PeerConnection that already holds the call's offer as its remote description (its
                answer is created and set here), or a JSEP answer.
            timeout_s: deadline for the whole exchange.

        Raises:
            JanusError: the plugin refused (e.g. no incoming call), or the call ended first.
            JanusUnavailable: no ``accepted`` within ``timeout_s`` or the transport failed.
        """
        async with _deadline("accept", timeout_s):
            jsep = await _local_jsep(answer, "answer")
            event = await self._exchange({"request": "accept"}, jsep, {"accepted", "hangup"}, timeout_s)
        if event["event"] == "hangup":
            raise JanusError(_code(event), str(event.get("reason", "call ended")))

    async def hangup(self, *, timeout_s: float = 10.0) -> Event:
        """Hang up (BYE, or CANCEL while ringing) and wait for the ``hangup`` event, which is returned.

        Raises:
            JanusError: the plugin refused (no call in progress).
            JanusUnavailable: no ``hangup`` within ``timeout_s`` or the transport failed.
        """
        return await self._exchange({"request": "hangup"}, None, {"hangup"}, timeout_s)

    async def dtmf(self, digits: str, *, duration_ms: int = 160, timeout_s: float = 5.0) -> None:
        """Send ``digits`` as SIP INFO ``application/dtmf-relay``, one request per digit (``dtmf_info``).

        The plugin takes one character per request and clamps the duration to 1-5000 ms, 160 by default.

        Raises:
            JanusError: the plugin refused (no established call, invalid digit).
            JanusUnavailable: no answer within ``timeout_s`` or the transport failed.
        """
        for digit in digits:
            body = {"request": "dtmf_info", "digit": digit, "duration": duration_ms}
            await self._exchange(body, None, {"dtmfsent"}, timeout_s)

    async def on_receive(self, response: dict[str, Any]) -> None:
        """janus-client's entry point for messages outside a live transaction (events, core notices)."""
        if self._held is not None:
            self._held.append(response)
        else:
            self._dispatch(response)

    async def _exchange(
        self, body: dict[str, Any], jsep: Jsep | None, wanted: Collection[str], timeout_s: float
    ) -> Event:
        """Send one request and return the first event named in ``wanted``."""
        async with _deadline(str(body["request"]), timeout_s):
            with self._watch(wanted) as watch:
                await self._send(body, jsep)
                return await watch.get()

    async def _send(self, body: dict[str, Any], jsep: Jsep | None) -> None:
        """Send a plugin message; dispatch its reply and whatever followed it, in order.

        Raises:
            JanusError: the reply is an error (Janus core or the plugin's ``error_code``).
        """
        message: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        async with self._lock:
            self._held = []
            seen: list[dict[str, Any]] = []
            try:
                try:
                    tx = await self.send(message)
                except Exception as exc:  # janus-client / websockets transport errors
                    raise JanusUnavailable(f"{body['request']}: send failed: {exc}") from exc
                try:
                    reply = await tx.get(matcher=_recorder(seen, _REPLIES))
                finally:
                    await tx.done()
                seen.extend(await _drain(tx, seen))
            finally:
                held, self._held = self._held, None
            for other in (*seen, *held):
                self._dispatch(other)
        _raise_for(body["request"], reply)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("janus")
        if kind == "event":
            self._publish(_event_of(message))
        elif kind == "webrtcup":
            self.webrtc_up.set()
        elif kind not in {"ack", "error"}:  # errors are raised to the request that caused them
            logger.debug("janus sip handle %s: %s", self.id, kind)

    def _publish(self, event: Event) -> None:
        if event.get("call_id"):
            self.call_id = event["call_id"]
        if self.events.full():
            self.events.get_nowait()
        self.events.put_nowait(event)
        for names, watch in self._watches:
            if event["event"] in names:
                watch.put_nowait(event)

    @contextlib.contextmanager
    def _watch(self, names: Collection[str]) -> Iterator[asyncio.Queue[Event]]:
        """A queue of the events named in ``names`` published while the block runs."""
        watch: asyncio.Queue[Event] = asyncio.Queue()
        entry = (names, watch)
        self._watches.append(entry)
        try:
            yield watch
        finally:
            self._watches.remove(entry)


def _raise_for(request: str, reply: Mapping[str, Any]) -> None:
    """Raise the error a request's first reply carries, if any."""
    if reply.get("janus") == "error":
        error = reply.get("error") or {}
        raise JanusError(int(error.get("code") or NO_CODE), f"{request}: {error.get('reason', 'refused')}")
    data: Mapping[str, Any] = reply.get("plugindata", {}).get("data", {})
    if "error_code" in data:
        raise JanusError(int(data["error_code"]), f"{request}: {data.get('error', 'refused')}")


def _event_of(message: Mapping[str, Any]) -> Event:
    """A plugin event as published: ``result`` (or the error fields) plus ``call_id`` and ``jsep``."""
    data: Mapping[str, Any] = message.get("plugindata", {}).get("data", {})
    if "error_code" in data:
        event: Event = {"event": "error", "error_code": data["error_code"], "error": data.get("error")}
    else:
        event = dict(data.get("result") or {"event": "unknown"})
    if data.get("call_id"):
        event["call_id"] = data["call_id"]
    if "jsep" in message:
        event["jsep"] = message["jsep"]
    return event


def _code(event: Mapping[str, Any]) -> int:
    code = event.get("code")
    return code if isinstance(code, int) else NO_CODE


def _recorder(seen: list[dict[str, Any]], replies: Collection[str]) -> Callable[[dict[str, Any]], bool]:
    """A transaction matcher that records every message and stops at the first reply in ``replies``."""

    def match(message: dict[str, Any]) -> bool:
        if not any(message is other for other in seen):
            seen.append(message)
        return message.get("janus") in replies

    return match


async def _drain(tx: Any, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages that reached the (now done) transaction after its first reply."""
    extra: list[dict[str, Any]] = []
    known = [*seen]

    def new(message: dict[str, Any]) -> bool:
        return not any(message is other for other in known)

    while True:
        try:
            message = await tx.get(matcher=new, timeout=_DRAIN_S)
        except TimeoutError:
            return extra
        known.append(message)
        extra.append(message)


async def _local_jsep(source: RTCPeerConnection | Mapping[str, Any], kind: str) -> Jsep:
    """The JSEP to send: given, or created on the PeerConnection (non-trickle: all candidates inside)."""
    if not isinstance(source, RTCPeerConnection):
        return dict(source)
    description = await (source.createOffer() if kind == "offer" else source.createAnswer())
    await source.setLocalDescription(description)
    local = source.localDescription
    return {"type": local.type, "sdp": local.sdp, "trickle": False}


@contextlib.asynccontextmanager
async def _deadline(what: str, timeout_s: float) -> AsyncIterator[None]:
    """``asyncio.timeout`` whose expiry is reported as :class:`JanusUnavailable`."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError as exc:
        raise JanusUnavailable(f"{what}: no answer within {timeout_s} s") from exc
