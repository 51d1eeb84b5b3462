"""``switchyard`` command line.

``switchyard controller`` runs the controller (``run`` is an alias); ``check-config`` validates the settings;
``render`` writes the stock servers' configuration (``<out>/freeswitch/conf``, ``<out>/janus/conf``);
``calls``, ``originate``, ``hangup``, ``cdrs``, ``nodes``, ``reload`` are a thin client of the HTTP API
(``--api`` / ``SWITCHYARD_API_URL``, token from ``SWITCHYARD_API_TOKEN``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from controller.app import Controller, on_signal
from controller.calls.routes import RouteTable
from controller.cli import add_client_commands, run_client
from controller.logs import setup_logging
from controller.render import template_dir
from controller.render.freeswitch import render_freeswitch
from controller.render.health import HEALTHCHECK_FILE, freeswitch_healthcheck
from controller.render.janus import render_janus
from controller.render.tree import write_tree
from controller.settings import CONTROLLER_SECTIONS, Settings, SettingsError, load_settings

log = logging.getLogger("switchyard")


async def run(settings: Settings, stop: asyncio.Event, config: Path | None = None) -> None:
    """Run the controller until ``stop`` is set; SIGHUP reloads the routes from the settings sources."""

    def load_routes() -> RouteTable:
        calls = load_settings(os.environ, config, CONTROLLER_SECTIONS).calls
        return RouteTable(calls.routes, calls.unknown_cause)

    async with Controller(settings, load_routes=load_routes) as controller:
        loop = asyncio.get_running_loop()
        on_signal(loop, signal.SIGHUP, controller.reload_routes)
        try:
            await controller.serve(stop)
        finally:
            loop.remove_signal_handler(signal.SIGHUP)


async def _main_async(settings: Settings, config: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop, config)


def _controller(args: argparse.Namespace) -> int:
    try:
        # check-config checks the whole file; the controller reads (and needs the secrets of) its part only.
        sections = None if args.command == "check-config" else CONTROLLER_SECTIONS
        settings = load_settings(os.environ, args.config, sections)
        if not settings.freeswitch:
            raise SettingsError("freeswitch: configure at least one FreeSWITCH node")
        for node in settings.freeswitch.values():
            node.secret()
    except SettingsError as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(
            f"settings OK: {len(settings.freeswitch)} FreeSWITCH node(s), "
            f"{len(settings.calls.routes)} route(s)"
        )
        return 0
    asyncio.run(_main_async(settings, args.config))
    return 0


def _render(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(os.environ, args.config)
        freeswitch = render_freeswitch(settings, args.templates)
        trees = {"freeswitch": freeswitch | {HEALTHCHECK_FILE: freeswitch_healthcheck(settings)}}
        if settings.janus.enabled:
            trees["janus"] = render_janus(settings, args.templates)
        for name, files in trees.items():
            target = args.out / name / "conf"
            if target.resolve() == template_dir(name, args.templates).resolve():
                raise ValueError(f"--out {args.out}: {target} holds the templates; render elsewhere")
            written = write_tree(files, target)
            print(f"{name}: {len(written)} file(s) in {target}")
    except (SettingsError, ValueError, OSError) as exc:
        print(f"switchyard render: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``switchyard`` command."""
    parser = argparse.ArgumentParser(prog="switchyard")
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("controller", "run", "check-config"):
        sub = commands.add_parser(
            name, help="run the controller" if name != "check-config" else "check settings"
        )
        sub.add_argument("--config", type=Path, help="settings file (default: $SWITCHYARD_CONFIG)")
    render = commands.add_parser("render", help="write freeswitch/conf and janus/conf from the settings")
    render.add_argument("--config", type=Path, help="settings file (default: $SWITCHYARD_CONFIG)")
    render.add_argument("--out", type=Path, default=Path("build"), help="where to write (default: build)")
    render.add_argument(
        "--templates", type=Path, help="root of freeswitch/conf and janus/conf templates (default: built in)"
    )
    add_client_commands(commands)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.command in ("controller", "run", "check-config"):
        return _controller(args)
    if args.command == "render":
        return _render(args)
    return run_client(args, os.environ)


if __name__ == "__main__":
    sys.exit(main())
