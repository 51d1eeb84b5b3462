"""An aiohttp application served on an ephemeral port for the length of a block (test peers and stand-ins)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

__all__ = ["served"]


@asynccontextmanager
async def served(app: web.Application, host: str = "127.0.0.1", **runner: Any) -> AsyncIterator[int]:
    """Serve ``app`` on ``host`` (a port the kernel picks) until the block ends; yields the port.
    ``runner`` goes to ``web.AppRunner`` (e.g. ``access_log=None``, ``shutdown_timeout``)."""
    app_runner = web.AppRunner(app, **runner)
    await app_runner.setup()
    try:
        await web.TCPSite(app_runner, host, 0).start()
        yield int(app_runner.addresses[0][1])
    finally:
        await app_runner.cleanup()
