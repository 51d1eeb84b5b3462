"""A peer that does not speak ESL: typed ProtocolError, connection dropped, node reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from controller.freeswitch.connection import EslConnection
from controller.freeswitch.node import FreeSwitchNode
from controller.freeswitch.protocol import ProtocolError
from controller.settings import FreeSwitchNodeSettings

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

AUTH_OK = b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"


async def read_command(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\n\n")


class ScriptedPeer:
    """A loopback TCP server that runs ``script`` for each connection and counts them."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port


@pytest.fixture
async def peer_factory() -> AsyncIterator[Callable[[Script], Awaitable[ScriptedPeer]]]:
    peers: list[ScriptedPeer] = []

    async def make(script: Script) -> ScriptedPeer:
        peer = ScriptedPeer(script)
        peer.server = await asyncio.start_server(peer._handle, "127.0.0.1", 0)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        assert peer.server is not None
        peer.server.close()
        await peer.server.wait_closed()


async def garbage_greeting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    await writer.drain()
    await reader.read(100)


async def garbage_after_auth(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"Content-Type: auth/request\n\n")
    await read_command(reader)
    writer.write(AUTH_OK)
    await read_command(reader)  # the command whose reply is garbage
    writer.write(b"Content-Type: api/response\nContent-Length: twelve\n\n+OK\n")
    await writer.drain()
    await reader.read(100)


async def test_garbage_greeting_is_a_protocol_error(
    peer_factory: Callable[[Script], Awaitable[ScriptedPeer]],
) -> None:
    peer = await peer_factory(garbage_greeting)
    with pytest.raises(ProtocolError):
        await EslConnection.open("127.0.0.1", peer.port, "pw", auth_timeout=2)


async def test_malformed_reply_fails_the_command_and_closes(
    peer_factory: Callable[[Script], Awaitable[ScriptedPeer]],
) -> None:
    peer = await peer_factory(garbage_after_auth)
    conn = await EslConnection.open("127.0.0.1", peer.port, "pw")
    with pytest.raises(ProtocolError, match="bad Content-Length"):
        await conn.api("status", timeout=2)
    assert not conn.is_open
    assert isinstance(conn.closed.exception(), ProtocolError)
    await conn.close()


async def test_node_reconnects_after_a_protocol_error(
    peer_factory: Callable[[Script], Awaitable[ScriptedPeer]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await garbage_greeting(reader, writer) if peer.connections == 1 else await healthy(reader, writer)

    async def healthy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Content-Type: auth/request\n\n")
        while True:
            command = await read_command(reader)
            if command.startswith(b"api show"):
                body = b'{"row_count":0}'
                writer.write(b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(body), body))
            elif command.startswith(b"api status"):
                writer.write(b"Content-Type: api/response\nContent-Length: 9\n\nUP ready\n")
            else:
                writer.write(AUTH_OK)

    peer = await peer_factory(script)
    settings = FreeSwitchNodeSettings.model_validate(
        {"name": "fs1", "port": peer.port, "password": "pw", "keepalive": 0, "backoff": {"initial": 0.01}}
    )
    async with FreeSwitchNode(settings) as node:
        assert await node.api("status", timeout=3) == "UP ready\n"
    assert peer.connections == 2
