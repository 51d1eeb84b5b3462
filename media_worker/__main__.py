"""``switchyard-worker``: one media worker process (aiohttp on uvloop) serving mod_audio_stream streams."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvloop

from media_worker.announce import announce
from media_worker.metrics import WorkerMetrics
from media_worker.server import Worker, build_app
from media_worker.settings import WorkerProcessSettings, load_worker_settings
from media_worker.vad.model import PROVIDERS as VAD_PROVIDERS
from media_worker.vad.silero import VadModelError
from media_worker.voice.echo import EchoPipeline
from media_worker.voice.providers import ProviderRegistry
from switchyard.httpserver import HttpServer
from switchyard.settings import SettingsError

log = logging.getLogger("switchyard.worker")


def named(settings: WorkerProcessSettings, hostname: str) -> WorkerProcessSettings:
    """``media_worker.worker_id: auto`` resolved to ``hostname`` (each scaled replica has its own)."""
    if settings.media_worker.worker_id != "auto":
        return settings
    worker = settings.media_worker.model_copy(update={"worker_id": hostname})
    return settings.model_copy(update={"media_worker": worker})


def make_worker(settings: WorkerProcessSettings) -> Worker:
    """Load the models once for the process and assemble the worker and its agents' pipelines."""
    ws = settings.media_worker
    metrics = WorkerMetrics()
    executor = ThreadPoolExecutor(ws.inference_threads, thread_name_prefix="inference")
    model = VAD_PROVIDERS.make(ws.vad, executor)
    providers = ProviderRegistry(executor, speech_cache_bytes=ws.speech_cache_bytes)
    pipelines = providers.pipelines(settings.agents, metrics)
    default = EchoPipeline() if ws.echo_unknown_agents else None
    return Worker(ws, model, pipelines, metrics, default=default, providers=providers)


async def serve(worker: Worker, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, heartbeating to the controller when one is configured."""
    settings = worker.settings
    async with HttpServer(build_app(worker), settings.http, name="worker") as server:
        port = await server.listen(settings.host, settings.port)
        log.info("worker %s listening on %s:%d", settings.worker_id, settings.host, port)
        await announce(worker, stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``switchyard-worker [--config FILE]``."""
    parser = argparse.ArgumentParser(prog="switchyard-worker")
    parser.add_argument("--config", type=Path, help="settings file (default: $SWITCHYARD_CONFIG)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_worker_settings(os.environ, args.config)
        worker = make_worker(named(settings, socket.gethostname()))
    except (SettingsError, VadModelError, ValueError, OSError) as exc:
        print(f"switchyard-worker: {exc}", file=sys.stderr)
        return 2

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(worker, stop)

    uvloop.run(_run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
