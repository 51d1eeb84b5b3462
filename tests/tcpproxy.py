"""A TCP relay for fault injection: clients connect to it instead of the server, and the test can cut every
connection it carries at once (as a network drop would), while new connections keep working, or stall them
(a partition: both sides keep their sockets open, nothing more gets through, nobody is told)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["TcpRelay", "tcp_relay"]

_CHUNK = 65536


class TcpRelay:
    """Relays ``host:port`` (its own listening address) to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.cuts = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
        except (OSError, TimeoutError):
            writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for w in pair:
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                await self._flowing.wait()  # stalled: hold the data (TCP then pushes back on the sender)
                writer.write(data)
                await writer.drain()
        writer.close()

    def stall(self) -> None:
        """Stop relaying, both ways, on every connection (open or new) without closing any."""
        self._flowing.clear()

    def cut(self) -> int:
        """Reset every connection in flight (RST, no close handshake); returns how many were cut. A stall
        ends: new connections flow again."""
        pairs = list(self._pairs)
        for pair in pairs:
            for writer in pair:
                writer.transport.abort()
        self._flowing.set()
        self.cuts += len(pairs)
        return len(pairs)


@contextlib.asynccontextmanager
async def tcp_relay(host: str, target: tuple[str, int]) -> AsyncIterator[TcpRelay]:
    """A relay listening on ``host`` (a free port) to ``target`` until the block ends."""
    relay = TcpRelay(target)
    server = await asyncio.start_server(relay.handle, host, 0)
    relay.port = server.sockets[0].getsockname()[1]
    try:
        yield relay
    finally:
        server.close()
        relay.cut()
        await server.wait_closed()
