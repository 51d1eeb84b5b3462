"""switchyard.tasks: owners end their tasks with a deadline, and a cancelled closer stays cancelled."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from switchyard.tasks import TaskSet, cancel_all


async def _stubborn(release: asyncio.Event) -> None:
    """A task that refuses its first cancellation until ``release`` is set."""
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await release.wait()
        raise


async def test_cancel_all_ends_running_tasks_and_skips_done_ones() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    running = [asyncio.create_task(asyncio.sleep(60)) for _ in range(3)]
    await cancel_all([done, *running], timeout=1.0)
    assert all(t.cancelled() for t in running)
    assert not done.cancelled()


async def test_cancel_all_gives_up_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()
    task = asyncio.create_task(_stubborn(release), name="stubborn")
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await cancel_all([task], timeout=0.1)
    assert 0.1 <= loop.time() - started < 1.0
    assert not task.done()
    assert "'stubborn' did not end within 0.1 s" in caplog.text
    release.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_cancelled_closer_is_not_swallowed() -> None:
    release = asyncio.Event()
    stubborn = asyncio.create_task(_stubborn(release))
    await asyncio.sleep(0)
    closer = asyncio.create_task(cancel_all([stubborn], timeout=30))
    await asyncio.sleep(0.05)
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    release.set()
    with contextlib.suppress(asyncio.CancelledError):
        await stubborn


async def test_task_set_holds_tasks_until_done_and_ends_the_rest() -> None:
    tasks = TaskSet(timeout=1.0)
    quick = tasks.spawn(asyncio.sleep(0, "x"), "quick")
    slow = tasks.spawn(asyncio.sleep(60), "slow")
    assert len(tasks) == 2
    assert await quick == "x"
    await asyncio.sleep(0)
    assert list(tasks) == [slow]
    await tasks.aclose()
    assert slow.cancelled()
    assert len(tasks) == 0
