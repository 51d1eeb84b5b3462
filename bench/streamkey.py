"""The stream secret of the benches' workers, and the token each bench stream carries (switchyard.streamauth).

A token may expire at most 300 s ahead (the worker's bound), so a stream opened later gets a fresh one.
"""

from __future__ import annotations

import secrets
import time

from switchyard.streamauth import sign

SECRET = secrets.token_hex(16)
"""``media_worker.stream_secret`` of the workers a bench starts (fresh per run)."""
WORKER_ID = "worker-1"


def token(call_id: str, ttl_s: float = 240.0) -> str:
    """A controller's token for ``call_id`` on the bench's worker."""
    return sign(SECRET.encode(), call_id, WORKER_ID, int(time.time() + ttl_s))
