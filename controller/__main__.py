"""``switchyard`` command line: ``run`` the controller, ``check-config`` the settings.

``run`` connects to every configured FreeSWITCH node and keeps the call model from their events; the call
routing, API and media parts are added on top of this loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Sequence
from pathlib import Path

from aiohttp import web

from controller.api.workers import add_worker_routes
from controller.calls.model import CallModel
from controller.calls.playback import AgentPlayback
from controller.freeswitch.node import FreeSwitchNode
from controller.settings import Settings, SettingsError, load_settings
from controller.workers.pool import WorkerPool
from controller.workers.streams import AgentStreams

log = logging.getLogger("switchyard")


async def follow_node(
    node: FreeSwitchNode, model: CallModel, playback: AgentPlayback, streams: AgentStreams
) -> None:
    """Apply one node's events to the call model, and its changes to playback and streams."""
    async for event in node.events():
        for change in model.apply(node.name, event):
            log.debug("%s: %s", node.name, change)
            playback.apply(node.name, change)
            streams.apply(node.name, change)


async def serve_api(settings: Settings, pool: WorkerPool, stack: contextlib.AsyncExitStack) -> None:
    """The HTTP API (the worker registry so far) on ``api.host:api.port``."""
    app = web.Application()
    add_worker_routes(app, pool, settings.api.tokens)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, settings.api.host, settings.api.port).start()
    log.info("API on %s:%d", settings.api.host, settings.api.port)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run the controller until ``stop`` is set."""
    model = CallModel()
    pool = WorkerPool(settings.workers.missed_beats, settings.workers.suspect_s)
    async with contextlib.AsyncExitStack() as stack:
        await serve_api(settings, pool, stack)
        nodes = [await stack.enter_async_context(FreeSwitchNode(s)) for s in settings.freeswitch.values()]
        by_name = {node.name: node for node in nodes}

        def run_command(name: str, command: str) -> Awaitable[str]:
            return by_name[name].api(command)

        playback = AgentPlayback(run_command)
        stack.push_async_callback(playback.aclose)
        w = settings.workers
        streams = AgentStreams(pool, run_command, w.connect_timeout, w.apology_prompt, w.max_attempts)
        stack.push_async_callback(streams.aclose)
        async with asyncio.TaskGroup() as tg:
            followers = [
                tg.create_task(follow_node(node, model, playback, streams), name=f"follow {node.name}")
                for node in nodes
            ]
            await stop.wait()
            log.info("stopping")
            for node in nodes:
                await node.aclose()
            for task in followers:
                task.cancel()


async def _main_async(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``switchyard`` command."""
    parser = argparse.ArgumentParser(prog="switchyard")
    parser.add_argument("command", choices=["run", "check-config"])
    parser.add_argument("--config", type=Path, help="settings file (default: $SWITCHYARD_CONFIG)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(os.environ, args.config)
        if not settings.freeswitch:
            raise SettingsError("freeswitch: configure at least one FreeSWITCH node")
        for node in settings.freeswitch.values():
            node.secret()
    except SettingsError as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"settings OK: {len(settings.freeswitch)} FreeSWITCH node(s)")
        return 0
    asyncio.run(_main_async(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
