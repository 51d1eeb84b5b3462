"""``switchyard_asyncio_tasks``: the tasks on the loop that collects the metrics (the soak bench reads it)."""

from __future__ import annotations

import asyncio
import math

from prometheus_client import CollectorRegistry, generate_latest

from controller.metrics import ControllerMetrics

NAME = "switchyard_asyncio_tasks"


def _tasks(registry: CollectorRegistry) -> float:
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith(f"{NAME} "):
            return float(line.split()[1])
    raise AssertionError(f"{NAME} not exported")


async def test_counts_the_tasks_of_the_running_loop() -> None:
    metrics = ControllerMetrics(CollectorRegistry(), lambda: 0, {})
    before = _tasks(metrics.registry)
    assert before == len(asyncio.all_tasks()) >= 1  # this test's own task
    stop = asyncio.Event()
    waiting = [asyncio.create_task(stop.wait()) for _ in range(5)]
    await asyncio.sleep(0)
    assert _tasks(metrics.registry) == before + 5
    stop.set()
    await asyncio.gather(*waiting)
    assert _tasks(metrics.registry) == before


def test_nan_off_the_loop() -> None:
    metrics = ControllerMetrics(CollectorRegistry(), lambda: 0, {})
    assert math.isnan(_tasks(metrics.registry))
