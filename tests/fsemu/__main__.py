"""Run the FreeSWITCH emulator as a server: ``python -m tests.fsemu --host H --port P``.

The compose CI tier runs it in FreeSWITCH's place. The ESL password comes from ``--password-file`` or the
``FSEMU_PASSWORD`` environment variable (never a default). ``--park EXT`` adds extensions that park, as the
rendered dialplan does for the controller's routes. ``--temp-dir`` is where mod_audio_stream's files go
(default /tmp, FreeSWITCH's own default, which the controller's ``freeswitch.<node>.temp_dir`` expects).
SIGTERM or SIGINT stops it.
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

from tests.fsemu.loopback import DEFAULT_DIALPLAN
from tests.fsemu.server import EmulatorConfig, FreeSwitchEmulator

log = logging.getLogger("fsemu")


def _password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        return Path(args.password_file).read_text().strip()
    return os.environ.get("FSEMU_PASSWORD", "")


async def _serve(config: EmulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with FreeSwitchEmulator(config) as emulator:
        log.info("FreeSWITCH emulator: ESL on %s:%d", config.host, emulator.port)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and serve until signalled."""
    parser = argparse.ArgumentParser(prog="python -m tests.fsemu")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8021)
    parser.add_argument("--password-file", help="file holding the ESL password (else $FSEMU_PASSWORD)")
    parser.add_argument("--park", action="append", default=[], help="an extension that parks (repeatable)")
    parser.add_argument("--hostname", default="fs-emulator")
    parser.add_argument("--temp-dir", default="/tmp", help="mod_audio_stream's files (default /tmp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    password = _password(args)
    if not password:
        print("fsemu: no ESL password (--password-file or FSEMU_PASSWORD)", file=sys.stderr)
        return 2
    dialplan = dict(DEFAULT_DIALPLAN)
    dialplan.update({ext: [("park", "")] for ext in args.park})
    config = EmulatorConfig(
        password=password, host=args.host, port=args.port, hostname=args.hostname,
        switchname=args.hostname, dialplan=dialplan, temp_dir=Path(args.temp_dir),
    )  # fmt: skip
    asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
