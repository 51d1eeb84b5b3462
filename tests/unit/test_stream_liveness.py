"""``controller.workers.liveness``: when a call's worker counts as frozen or as having dropped the call.

The pool's clock is injected; heartbeats go through ``WorkerPool.heartbeat`` as the API hands them over.
"""

from __future__ import annotations

from controller.workers.liveness import LivenessCheck
from controller.workers.pool import Heartbeat, WorkerPool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _beat(pool: WorkerPool, calls: list[str] | None, heartbeat_s: float = 0.5, worker_id: str = "w1") -> None:
    url = f"ws://127.0.0.1:{8000 + int(worker_id[1:])}"
    beat = Heartbeat(
        worker_id=worker_id,
        url=url,
        capacity=10,
        streams=len(calls or ()),
        heartbeat_s=heartbeat_s,
        calls=calls,
    )
    pool.heartbeat(beat)


def _setup(
    heartbeat_s: float = 0.5, calls: list[str] | None = None
) -> tuple[Clock, WorkerPool, LivenessCheck]:
    clock = Clock()
    pool = WorkerPool(clock=clock)
    _beat(pool, calls, heartbeat_s)
    return clock, pool, LivenessCheck(pool, liveness_s=2.0)


def test_a_worker_silent_for_three_quarters_of_the_deadline_is_frozen() -> None:
    clock, pool, check = _setup(calls=[])
    info = pool.get("w1")
    assert info is not None
    watch = check.watch(info, "c1")
    assert (check.tick_s, check.silence_s) == (0.25, 1.5)
    for _ in range(8):  # beats every 0.5 s listing the call: never judged
        clock.now += 0.5
        _beat(pool, ["c1"])
        assert check.verdict(watch) is None
    clock.now += 1.5
    assert check.verdict(watch) is None  # exactly the limit
    clock.now += 0.01
    assert check.verdict(watch) == "worker w1 silent for 1.51 s"


def test_a_slow_beating_worker_is_held_to_two_of_its_periods() -> None:
    clock, pool, check = _setup(heartbeat_s=2.0, calls=["c1"])
    info = pool.get("w1")
    assert info is not None
    watch = check.watch(info, "c1")
    clock.now += 3.9
    assert check.verdict(watch) is None
    clock.now += 0.2
    assert check.verdict(watch) is not None


def test_two_beats_without_the_call_mean_it_was_dropped() -> None:
    clock, pool, check = _setup(calls=["other"])
    info = pool.get("w1")
    assert info is not None
    watch = check.watch(info, "c1")
    assert check.verdict(watch) is None  # the connect-time beat is not judged
    clock.now += 0.5
    _beat(pool, ["other"])  # sent before the stream's metadata arrived: tolerated once
    assert check.verdict(watch) is None
    assert check.verdict(watch) is None  # the same beat again, at the next tick: not counted twice
    clock.now += 0.5
    _beat(pool, ["other", "c1"])
    assert check.verdict(watch) is None
    for expected in (None, "worker w1 left the call out of 2 beats"):
        clock.now += 0.5
        _beat(pool, ["other"])
        assert check.verdict(watch) == expected


def test_a_worker_that_lists_nothing_is_held_to_its_beats_only() -> None:
    clock, pool, check = _setup(calls=None)
    info = pool.get("w1")
    assert info is not None
    watch = check.watch(info, "c1")
    for _ in range(5):
        clock.now += 0.5
        _beat(pool, None)
        assert check.verdict(watch) is None
