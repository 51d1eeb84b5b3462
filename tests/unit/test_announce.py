"""What a worker advertises: a wildcard-bound worker (a scaled compose replica) names its own address."""

from __future__ import annotations

from media_worker.__main__ import named
from media_worker.announce import heartbeat_body, local_ip_towards
from media_worker.metrics import WorkerMetrics
from media_worker.server import Worker
from media_worker.settings import WorkerProcessSettings, WorkerSettings
from media_worker.vad.silero import SileroModel


def _worker(**settings: object) -> Worker:
    return Worker(WorkerSettings.model_validate(settings), SileroModel(None, 1), {}, WorkerMetrics())


async def test_wildcard_worker_advertises_the_address_towards_the_controller() -> None:
    local = await local_ip_towards("http://127.0.0.1:8080/v1/workers/heartbeat")
    assert local == "127.0.0.1"
    body = heartbeat_body(_worker(host="0.0.0.0", port=8000), local)
    assert body["url"] == "ws://127.0.0.1:8000"


async def test_ipv6_address_is_bracketed_and_explicit_settings_win() -> None:
    assert heartbeat_body(_worker(host="::", port=8000), "::1")["url"] == "ws://[::1]:8000"
    bound = _worker(host="10.1.2.3", port=8001)
    assert heartbeat_body(bound, "127.0.0.1")["url"] == "ws://10.1.2.3:8001"
    advertised = _worker(host="0.0.0.0", advertise_url="ws://worker-7:8000")
    assert heartbeat_body(advertised, "127.0.0.1")["url"] == "ws://worker-7:8000"


async def test_controller_url_without_a_host_gives_no_address() -> None:
    assert await local_ip_towards("http:///v1/workers/heartbeat") is None


def test_auto_worker_id_is_the_host_name() -> None:
    settings = WorkerProcessSettings.model_validate({"media_worker": {"worker_id": "auto"}})
    assert named(settings, "3f2a9c1b7d0e").media_worker.worker_id == "3f2a9c1b7d0e"
    fixed = WorkerProcessSettings.model_validate({"media_worker": {"worker_id": "w7"}})
    assert named(fixed, "3f2a9c1b7d0e").media_worker.worker_id == "w7"
