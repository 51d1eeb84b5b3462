"""An agent's action message (``::json {"type":"action",…}``) → the commands playback runs for it.

The commands are the exact lines the controller sent before the builders existed. An argument the command
builders refuse makes the whole action invalid: nothing of it runs.
"""

from __future__ import annotations

import json

import pytest

from controller.calls.playback import action_commands
from controller.freeswitch.commands import Command
from switchyard.messages import AgentAction, parse_worker_message

A = "5f0c2b7e-9c1d-4b0e-8f5a-2d8c1e3f4a5b"
STOP = f"uuid_audio_stream {A} stop"
AGENT = "switchyard-agent"  # transfers run in the agent dialing class (controller.calls.contexts)


def _commands(message: dict[str, object]) -> list[Command] | None:
    """Decoded as the controller decodes a worker's ``::json``, then turned into commands."""
    decoded, _ = parse_worker_message(json.dumps({"type": "action", **message}))
    return action_commands(A, decoded, AGENT) if isinstance(decoded, AgentAction) else None


@pytest.mark.parametrize(
    ("message", "lines"),
    [
        ({"action": "hangup"}, [f"uuid_kill {A} NORMAL_CLEARING"]),
        ({"action": "transfer", "argument": "1000"}, [STOP, f"uuid_transfer {A} 1000 XML {AGENT}"]),
        ({"action": "transfer", "argument": "sales@pbx"}, [STOP, f"uuid_transfer {A} sales@pbx XML {AGENT}"]),
        ({"action": "dtmf", "argument": "12#w"}, [f"uuid_send_dtmf {A} 12#w"]),
    ],
)  # fmt: skip
def test_valid_actions(message: dict[str, object], lines: list[str]) -> None:
    commands = _commands(message)
    assert commands is not None
    assert [c.line for c in commands] == lines


@pytest.mark.parametrize(
    "message",
    [
        {"action": "transfer", "argument": "1000 XML public"},
        {"action": "transfer", "argument": "1000,hangup"},
        {"action": "transfer", "argument": ""},
        {"action": "dtmf", "argument": "12x"},
        {"action": "reboot"},
        {},
        # Regression: the patterns were checked with re.match and ``$``, which also matches before a
        # trailing newline, so these passed: the stream was stopped, then the transfer failed to send.
        {"action": "transfer", "argument": "1000\n"},
        {"action": "dtmf", "argument": "12\n"},
    ],
    ids=repr,
)
def test_invalid_actions_run_nothing(message: dict[str, object]) -> None:
    assert _commands(message) is None
