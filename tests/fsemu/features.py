"""DTMF and uuid_bridge as esl_dtmf_and_bridge.txt shows them, and the ``show`` tables."""

from __future__ import annotations

import asyncio
import json

from tests.fsemu.apps import Apps
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore, new_uuid, now_us
from tests.fsemu.coredb import CoreDb
from tests.fsemu.wire import HeaderValue

DTMF_GAP = 0.02  # one DTMF event per digit, 20 ms apart, ~20 ms after the command
DTMF_DURATION = "2000"  # samples at 8 kHz (250 ms), FreeSWITCH's default


class Features:
    """DTMF, bridging and the ``show channels|calls as json`` views (rows from ``db``, coredb.py)."""

    def __init__(self, core: SwitchCore, apps: Apps, db: CoreDb) -> None:
        self.core = core
        self.apps = apps
        self.db = db

    def send_dtmf(self, ch: EmulatedChannel, digits: str) -> None:
        """``uuid_send_dtmf``: the digits leave ``ch``; only a loopback peer reports them (a sofia leg sends
        them to its SIP endpoint as RFC 2833: no DTMF event on any channel)."""
        target = ch.loopback_peer
        if target is not None:
            self.core.spawn(self._dtmf(target, digits, "UNKNOWN"), name=f"dtmf-{target.uuid}")

    def recv_dtmf(self, ch: EmulatedChannel, digits: str) -> None:
        """``uuid_recv_dtmf``: DTMF on ``ch`` itself (DTMF-Source: APP), relayed across a bridge."""
        self.core.spawn(self._recv(ch, digits), name=f"dtmf-{ch.uuid}")

    async def _recv(self, ch: EmulatedChannel, digits: str) -> None:
        for digit in digits:
            await asyncio.sleep(DTMF_GAP)
            if not ch.alive:
                return
            self._fire_dtmf(ch, digit, "APP")
            peer = ch.bridged_to
            # Across a bridge the digit goes out of the bridge peer to its loopback peer (capture finding 4).
            relay = peer.loopback_peer if peer is not None else None
            if relay is not None and relay.alive:
                self._fire_dtmf(relay, digit, "APP", relayed=True)

    async def _dtmf(self, ch: EmulatedChannel, digits: str, source: str) -> None:
        for digit in digits:
            await asyncio.sleep(DTMF_GAP)
            if ch.alive:
                self._fire_dtmf(ch, digit, source)

    def _fire_dtmf(self, ch: EmulatedChannel, digit: str, source: str, *, relayed: bool = False) -> None:
        ch.digits += digit
        post: list[tuple[str, HeaderValue]] = [("DTMF-Digit", digit), ("DTMF-Duration", DTMF_DURATION)]
        post.append(("DTMF-Source", source))
        self.core.fire_channel(ch, "DTMF", post=post)
        if source == "APP" and ch.bridged_to is None and not relayed:
            ch.set_var("last_dtmf_duration", "1000")

    async def bridge(self, a: EmulatedChannel, b: EmulatedChannel) -> None:
        """``uuid_bridge A B`` on two parked legs: both are transferred (new caller profile), unparked,
        execute uuid_bridge, and ONE CHANNEL_BRIDGE fires on A (esl_dtmf_and_bridge.txt finding 3)."""
        await asyncio.sleep(0.02)
        a.set_var("uuid_bridge", b.uuid)
        a.bridge_role, b.bridge_role = "originator", "originatee"
        for ch, other, kind in ((a, b, "originatee"), (b, a, "originator")):
            self._transfer(ch, other)
            ch.other_leg = (kind, other)
            ch.state_number = 8
            self.apps.unpark(ch)
        await asyncio.sleep(0.04)
        a.set_var("uuid_bridge", None)
        b.set_var("call_uuid", b.uuid)
        for ch, other in ((a, b), (b, a)):
            ch.state, ch.state_number = "CS_SOFT_EXECUTE", 3
            post: list[tuple[str, HeaderValue]] = [
                ("Application", "uuid_bridge"),
                ("Application-Data", other.uuid),
            ]
            self.core.fire_channel(ch, "CHANNEL_EXECUTE", post=post, calling="UUID_BRIDGE_EXECUTE")
        self.join(a, b)

    def join(self, a: EmulatedChannel, b: EmulatedChannel) -> None:
        """The bridge itself: one CHANNEL_BRIDGE on originator ``a`` (esl_dtmf_and_bridge.txt finding 3)."""
        a.bridged_to, b.bridged_to = b, a
        a.bridge_role, b.bridge_role = "originator", "originatee"
        a.other_leg, b.other_leg = ("originatee", b), ("originator", a)
        stamp = now_us()
        for ch in (a, b):
            ch.times.bridged = stamp
            if ch.profile is not None:
                ch.profile["Channel-Bridged-Time"] = str(stamp)
        pre = [("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)]
        self.core.fire_channel(a, "CHANNEL_BRIDGE", pre=pre)
        # The originatee's side of the bridge (shows up in its later events, e.g. CHANNEL_HANGUP).
        b.set_vars([("call_uuid", a.uuid), ("bridge_to", a.uuid), ("last_bridge_to", a.uuid)])
        b.set_vars([("bridge_channel", a.name), ("bridge_uuid", a.uuid), ("signal_bond", a.uuid)])
        callee = (a.profile or {}).get("Caller-ID-Name", ""), (a.profile or {}).get("Caller-ID-Number", "")
        b.set_vars([("last_sent_callee_id_name", callee[0]), ("last_sent_callee_id_number", callee[1])])
        b.set_var("last_bridge_role", "originatee")
        for ch in (a, b):
            ch.state, ch.state_number = "CS_EXECUTE", 4

    def _transfer(self, ch: EmulatedChannel, other: EmulatedChannel) -> None:
        """switch_ivr_uuid_bridge transfers each leg: new profile (index 2) and transfer_* variables."""
        ch.set_vars(
            [("bridge_channel", other.name), ("bridge_uuid", other.uuid), ("signal_bond", other.uuid)]
        )
        profile = ch.profile or {}
        source = f"{now_us() // 1_000_000}:{new_uuid()}:uuid_br:{other.uuid}"
        ch.set_vars([("original_destination_number", profile.get("Destination-Number", ""))])
        ch.set_vars([("original_caller_id_name", profile.get("Caller-ID-Name", ""))])
        ch.set_vars([("original_caller_id_number", profile.get("Caller-ID-Number", ""))])
        ch.set_vars([("transfer_history", source), ("transfer_source", source)])
        if ch.profile is not None:
            ch.profile.update(
                {"Logical-Direction": "inbound", "Transfer-Source": source, "Profile-Index": "2"}
            )
            ch.profile["Profile-Created-Time"] = str(now_us())

    # -- show -----------------------------------------------------------------------------------
    def show_channels_json(self) -> str:
        """``show channels as json``: the ``channels`` table."""
        return _rows_json(self.db.channel_rows())

    def show_calls_json(self) -> str:
        """``show calls as json``: the ``basic_calls`` view."""
        return _rows_json(self.db.call_rows())


def _rows_json(rows: list[dict[str, str]]) -> str:
    # mod_commands.c show_function: cJSON_PrintUnformatted of {"row_count":N,"rows":[...]} (every value a
    # string), no trailing newline; no row at all -> the literal "{\"row_count\": 0}\n" (show_json.txt).
    if not rows:
        return '{"row_count": 0}\n'
    return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"), ensure_ascii=False)
