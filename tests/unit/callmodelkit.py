"""What the call model tests share: the recorded captures and the uuids in them, and ``Run``, which feeds
a ``CallModel`` one event at a time and records the changes of each event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from controller.calls.changes import CallChange, CallEnded, ChannelChange, ChannelRemoved
from controller.calls.model import Call, CallModel, Channel
from controller.freeswitch.events import Event

INBOUND = "esl_inbound_session.txt"
DTMF_BRIDGE = "esl_dtmf_and_bridge.txt"
PLAYBACK = "esl_playback_queue.txt"

# SESSION 1 (plain): loopback/7101 originated with origination_uuid A; B = its loopback peer.
S1_A = "d147f61e-ff37-4f52-b356-a0aeac470f8d"
S1_B = "7e06f27c-f90a-4111-8366-87a8f6649535"
# SESSION 2 (json): loopback/7104 originate + kill, then the sipp call parked on 7102.
S2_A = "33c94ed5-041a-4942-8e87-ac2e50de451c"
S2_B = "dc15bf7b-2713-45d7-8090-4ded77e84f4d"
SIPP = "53492097-844b-442f-858e-8cdf293730ee"
# esl_dtmf_and_bridge.txt: two loopback calls A1/B1 and A2/B2; uuid_bridge A1 A2; uuid_kill A2.
A1 = "0a7fd2b4-5a7c-42e5-9403-0e3e24da882f"
B1 = "9261a5ea-9933-46d6-be50-7baaf5d2fce9"
A2 = "07e371b9-70de-44c2-a69a-a6a2ace727c3"
B2 = "bf107706-82c0-425d-944c-f8cbed873a4c"
# esl_playback_queue.txt: A parked (uuid_broadcast target), B plays an endless tone.
PB_A = "ef41663c-4971-4050-ab7a-827e6aac59be"
PB_B = "4575b463-9f4e-43cd-856b-77f555d77927"

NODE = "fs1"

_T = TypeVar("_T")


class Run:
    """A model fed with a list of events, one step at a time, recording the changes of each event."""

    def __init__(self, events: Iterable[Event], model: CallModel | None = None) -> None:
        self.model = model if model is not None else CallModel()
        self.pending = list(events)
        self.changes: list[CallChange] = []
        self.by_sequence: dict[int, list[CallChange]] = {}

    def until(self, sequence: int | None = None) -> Run:
        """Apply events up to and including the one with ``Event-Sequence`` ``sequence`` (all when None)."""
        while self.pending:
            event = self.pending.pop(0)
            changes = self.model.apply(NODE, event)
            self.changes.extend(changes)
            self.by_sequence[event.sequence] = changes
            if event.sequence == sequence:
                return self
        assert sequence is None, f"no event with Event-Sequence {sequence}"
        return self

    def live(self, uuid: str) -> Channel:
        channel = self.model.channel(uuid)
        assert channel is not None, uuid
        return channel

    def removed(self, uuid: str) -> Channel:
        (change,) = [c for c in self.changes if isinstance(c, ChannelRemoved) and c.uuid == uuid]
        return change.channel

    def ended(self, call_id: str) -> Call:
        (change,) = [c for c in self.changes if isinstance(c, CallEnded) and c.call_id == call_id]
        assert self.model.ended_call(call_id) is change.call
        return change.call

    def kinds(self, uuid: str) -> list[str]:
        return [type(c).__name__ for c in self.changes if isinstance(c, ChannelChange) and c.uuid == uuid]

    def of_type(self, kind: type[_T]) -> list[_T]:
        return [c for c in self.changes if isinstance(c, kind)]
