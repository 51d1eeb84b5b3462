"""Dialplan applications as FreeSWITCH reports them: EXECUTE / EXECUTE_COMPLETE, answer, park, states."""

from __future__ import annotations

from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore, new_uuid, now_us
from tests.fsemu.wire import HeaderValue

# Channel-Call-State-Number values (switch_types.h switch_channel_callstate_t).
CALLSTATE_NUMBER = {
    "DOWN": 0, "DIALING": 1, "RINGING": 2, "EARLY": 3, "ACTIVE": 4, "HELD": 5, "RING_WAIT": 6, "HANGUP": 7,
    "UNHELD": 8,
}  # fmt: skip


class Apps:
    """Runs emulated applications on channels and fires the events FreeSWITCH fires for them."""

    def __init__(self, core: SwitchCore) -> None:
        self.core = core

    def set_state(self, ch: EmulatedChannel, state: str, number: int | None = None) -> None:
        """Change the running state and fire CHANNEL_STATE."""
        ch.state = state
        if number is not None:
            ch.state_number = number
        self.core.fire_channel(ch, "CHANNEL_STATE")

    def set_callstate(self, ch: EmulatedChannel, call_state: str) -> None:
        """Change Channel-Call-State and fire CHANNEL_CALLSTATE (switch_channel.c: not if unchanged)."""
        old = ch.call_state
        if old in (call_state, "HANGUP"):
            return
        ch.call_state = call_state
        pre = [
            ("Original-Channel-Call-State", old),
            ("Channel-Call-State-Number", str(CALLSTATE_NUMBER.get(call_state, 0))),
        ]
        self.core.fire_channel(ch, "CHANNEL_CALLSTATE", pre=pre)

    def execute(self, ch: EmulatedChannel, app: str, data: str = "", *, first: bool = False) -> str:
        """Fire CHANNEL_EXECUTE for ``app`` and return its Application-UUID.

        ``first`` marks the first application of a dialplan run, where FreeSWITCH re-sets call_uuid.
        """
        app_uuid = new_uuid()
        if first:
            ch.set_var("call_uuid", ch.uuid)
        ch.set_var("current_application_response", None)
        ch.set_var("current_application", app)
        ch.set_var("current_application_data", data or None)
        post: list[tuple[str, HeaderValue]] = [("Application", app)]
        if data:
            post.append(("Application-Data", data))
        post.append(("Application-UUID", app_uuid))
        self.core.fire_channel(ch, "CHANNEL_EXECUTE", post=post)
        ch.set_var("current_application", app)
        return app_uuid

    def complete(
        self, ch: EmulatedChannel, app: str, data: str, app_uuid: str, response: str | None = None
    ) -> None:
        """Fire CHANNEL_EXECUTE_COMPLETE; ``response`` also sets current_application_response."""
        if response is not None:
            ch.set_var("current_application_response", response)
        shown = ch.get_var("current_application_response") or "_none_"
        post: list[tuple[str, HeaderValue]] = [("Application", app)]
        if data:
            post.append(("Application-Data", data))
        post += [("Application-Response", shown), ("Application-UUID", app_uuid)]
        self.core.fire_channel(ch, "CHANNEL_EXECUTE_COMPLETE", post=post)

    def mark_answered(self, ch: EmulatedChannel) -> None:
        """Answer one leg: CHANNEL_ANSWER then CHANNEL_CALLSTATE ACTIVE (loopback order)."""
        ch.answered = True
        ch.answer_state = "answered"
        ch.answer_event.set()
        stamp = now_us()
        if ch.profile is not None:
            ch.profile["Channel-Answered-Time"] = str(stamp)
        ch.times.answered = stamp
        self.core.fire_channel(ch, "CHANNEL_ANSWER")
        self.set_callstate(ch, "ACTIVE")

    def answer_loopback(self, b_leg: EmulatedChannel) -> None:
        """The ``answer`` app on a loopback B-leg answers the A-leg first, then itself."""
        app_uuid = self.execute(b_leg, "answer", first=True)
        peer = b_leg.loopback_peer
        if peer is not None and not peer.answered:
            self.mark_answered(peer)
        self.mark_answered(b_leg)
        b_leg.set_var("endpoint_disposition", "ANSWER")
        self.complete(b_leg, "answer", "", app_uuid)

    def park(self, ch: EmulatedChannel, *, first: bool = False) -> None:
        """Run ``park``: CHANNEL_EXECUTE park then CHANNEL_PARK; the app completes at unpark."""
        ch.park_app_uuid = self.execute(ch, "park", first=first)
        ch.parked = True
        self.core.fire_channel(ch, "CHANNEL_PARK")

    def unpark(self, ch: EmulatedChannel, *, fire_unpark: bool = True) -> None:
        """Leave park: CHANNEL_UNPARK (if wanted) and the park app's CHANNEL_EXECUTE_COMPLETE."""
        if not ch.parked:
            return
        ch.parked = False
        if fire_unpark:
            self.core.fire_channel(ch, "CHANNEL_UNPARK")
        self.complete(ch, "park", "", ch.park_app_uuid or new_uuid())
