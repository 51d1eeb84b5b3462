"""Stream tokens: the controller's proof, in a stream's metadata, that it sent this stream to this worker.

A token is ``<expiry>.<mac>``: ``expiry`` whole Unix seconds, ``mac`` the hex HMAC-SHA256, keyed with the
shared ``media_worker.stream_secret``, of ``call_id``, ``worker_id`` and ``expiry`` joined by newlines (no
field can hold a newline: ids are validated, expiry is digits). The controller signs one per start
attempt (:func:`sign`, in ``controller.workers.streams``); the worker checks it before it opens a session
(:func:`verify`, in ``media_worker.server``), so a socket without one is closed at its first text frame.
Sans-IO: the clock is passed in.

Exceptions::

    WireError            the token is missing, malformed, expired, too far ahead or does not match (1008)
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from switchyard.wire import CLOSE_POLICY, WireError

__all__ = ["MAX_TOKEN_TTL_S", "sign", "verify"]

MAX_TOKEN_TTL_S: Final = 300
"""A token whose expiry lies further ahead than this is refused (a signer's clock or TTL gone wrong)."""


def _mac(key: bytes, call_id: str, worker_id: str, expiry: int) -> str:
    message = f"{call_id}\n{worker_id}\n{expiry}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, call_id: str, worker_id: str, expiry: int) -> str:
    """The token that lets ``call_id`` stream to ``worker_id`` until ``expiry`` (Unix seconds)."""
    return f"{expiry}.{_mac(key, call_id, worker_id, expiry)}"


def verify(key: bytes | None, token: str | None, call_id: str, worker_id: str, now: float) -> None:
    """Accept ``token`` for ``call_id`` on ``worker_id`` at ``now`` (Unix seconds), or raise.

    Raises:
        WireError: 1008 ``metadata.token: …`` (no key configured counts as a refusal: fail closed).
    """
    if key is None:
        raise WireError(CLOSE_POLICY, "metadata.token: this worker has no stream_secret")
    if not token:
        raise WireError(CLOSE_POLICY, "metadata.token: missing")
    expiry_text, _, mac = token.partition(".")
    if not expiry_text.isdigit() or len(expiry_text) > 12 or len(mac) != 64:
        raise WireError(CLOSE_POLICY, "metadata.token: malformed")
    expiry = int(expiry_text)
    if not hmac.compare_digest(mac, _mac(key, call_id, worker_id, expiry)):
        raise WireError(CLOSE_POLICY, "metadata.token: does not match this call and worker")
    if expiry < now:
        raise WireError(CLOSE_POLICY, "metadata.token: expired")
    if expiry > now + MAX_TOKEN_TTL_S:
        raise WireError(CLOSE_POLICY, "metadata.token: expires too far ahead")
