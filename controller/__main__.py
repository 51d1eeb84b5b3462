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
from collections.abc import Sequence
from pathlib import Path

from controller.calls.model import CallModel
from controller.calls.playback import AgentPlayback
from controller.freeswitch.node import FreeSwitchNode
from controller.settings import Settings, SettingsError, load_settings

log = logging.getLogger("switchyard")


async def follow_node(node: FreeSwitchNode, model: CallModel, playback: AgentPlayback) -> None:
    """Apply one node's events to the call model, and its changes to playback, until the node closes."""
    async for event in node.events():
        for change in model.apply(node.name, event):
            log.debug("%s: %s", node.name, change)
            playback.apply(node.name, change)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run the controller until ``stop`` is set."""
    model = CallModel()
    async with contextlib.AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(FreeSwitchNode(s)) for s in settings.freeswitch.values()]
        by_name = {node.name: node for node in nodes}
        playback = AgentPlayback(lambda name, command: by_name[name].api(command))
        stack.push_async_callback(playback.aclose)
        async with asyncio.TaskGroup() as tg:
            followers = [
                tg.create_task(follow_node(node, model, playback), name=f"follow {node.name}")
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
