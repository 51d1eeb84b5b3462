"""Tasks an owner starts and must end before it closes: one way to cancel them with a deadline.

``cancel_all`` cancels tasks and waits for them up to a deadline (a task that ignores its cancellation is
logged and left, so closing never hangs); ``TaskSet`` keeps the tasks an owner spawns until each is done,
so none is garbage-collected while it runs, and ends those left on ``aclose``. A caller cancelled while it
waits is cancelled: nothing here swallows ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["CLOSE_DEADLINE_S", "TaskSet", "cancel_all"]

log = logging.getLogger("switchyard.tasks")
T = TypeVar("T")
CLOSE_DEADLINE_S = 2.0
"""How long an owner waits for its cancelled tasks when it closes."""


async def cancel_all(tasks: Iterable[asyncio.Task[Any]], timeout: float = CLOSE_DEADLINE_S) -> None:
    """Cancel ``tasks`` and wait until they end or ``timeout`` passes (those still running are logged)."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=timeout)
    for task in late:
        log.warning("task %r did not end within %.1f s of its cancellation", task.get_name(), timeout)


class TaskSet:
    """The running tasks of one owner (``spawn``), ended together by ``aclose``."""

    def __init__(self, timeout: float = CLOSE_DEADLINE_S) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timeout = timeout

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run ``coro`` as a task held until it is done."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    async def aclose(self) -> None:
        """Cancel the tasks still running and wait for them (bounded by the timeout)."""
        await cancel_all(self._tasks, self._timeout)
