"""greenswitch 0.0.19 (gevent) as an independent ESL client must be satisfied by the emulator.

greenswitch runs in its own thread with its own gevent hub; every step is bounded by gevent.Timeout and the
thread is joined with a deadline (the hub is destroyed so no thread or greenlet outlives the test).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from tests.fsemu import EmulatorConfig, FreeSwitchEmulator

A_LEG = "5f0c2b7e-9c1d-4b0e-8f5a-2d8c1e3f4a5b"


def _in_gevent_thread(work: Callable[[dict[str, Any]], None]) -> tuple[threading.Thread, dict[str, Any]]:
    results: dict[str, Any] = {}

    def main() -> None:
        import gevent

        try:
            with gevent.Timeout(15):
                work(results)
        except BaseException as exc:  # reported to the test thread
            results["error"] = exc
        finally:
            gevent.get_hub().destroy(destroy_loop=True)

    thread = threading.Thread(target=main, name="greenswitch", daemon=True)
    thread.start()
    return thread, results


def _client_session(port: int) -> Callable[[dict[str, Any]], None]:
    def work(results: dict[str, Any]) -> None:
        import gevent
        import greenswitch

        esl = greenswitch.InboundESL("127.0.0.1", port, "pw")
        esl.connect()
        try:
            results["status"] = esl.send("api status").data
            events: list[Any] = []
            esl.register_handle("CHANNEL_PARK", events.append)
            esl.register_handle("BACKGROUND_JOB", events.append)
            results["event"] = esl.send("event plain CHANNEL_PARK BACKGROUND_JOB").data
            reply = esl.send(f"bgapi originate {{origination_uuid={A_LEG}}}loopback/7101/default &park()")
            results["bgapi"] = reply.data
            results["job"] = reply.headers.get("Job-UUID")
            with gevent.Timeout(5):
                while len(events) < 2:
                    gevent.sleep(0.01)
            results["events"] = [dict(e.headers) for e in events]
            results["kill"] = esl.send(f"api uuid_kill {A_LEG}").data
        finally:
            esl.stop()

    return work


async def _join(thread: threading.Thread) -> None:
    await asyncio.to_thread(thread.join, 20)
    assert not thread.is_alive()


async def test_greenswitch_api_events_and_bgapi() -> None:
    async with FreeSwitchEmulator(EmulatorConfig(password="pw")) as fs:
        thread, results = _in_gevent_thread(_client_session(fs.port))
        await _join(thread)
        await fs.wait_for(lambda: fs.connections == 0, timeout=5)
    assert "error" not in results, results.get("error")
    assert results["status"].startswith("UP 0 years")
    assert results["event"] == "+OK event listener enabled plain"
    assert results["bgapi"] == f"+OK Job-UUID: {results['job']}"
    by_name = {e["Event-Name"]: e for e in results["events"]}
    park = by_name["CHANNEL_PARK"]
    assert park["Unique-ID"] == A_LEG
    assert park["Channel-Name"] == "loopback/7101-a"
    assert park["Event-Date-GMT"].endswith(" GMT")  # URL-decoded by greenswitch
    assert park["variable_current_application"] == "park"
    job = by_name["BACKGROUND_JOB"]
    assert job["Job-UUID"] == results["job"]
    assert job["Job-Command"] == "originate"
    # greenswitch URL-decodes the whole event before splitting lines, so the body lands in a header value.
    assert f"+OK {A_LEG}" in str(job)
    assert results["kill"] == "+OK\n"


async def test_greenswitch_wrong_password() -> None:
    def work(results: dict[str, Any]) -> None:
        import greenswitch

        esl = greenswitch.InboundESL("127.0.0.1", port, "wrong")
        try:
            esl.connect()
        except ValueError as exc:
            results["refused"] = str(exc)
        finally:
            # The server already closed (after its disconnect-notice): do not send "exit", just join.
            esl.connected = False
            esl.stop()

    async with FreeSwitchEmulator(EmulatorConfig(password="pw")) as fs:
        port = fs.port
        thread, results = _in_gevent_thread(work)
        await _join(thread)
        await fs.wait_for(lambda: fs.connections == 0, timeout=5)
    assert results.get("refused") == "Invalid password."
