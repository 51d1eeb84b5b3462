"""DTMF and uuid_bridge as esl_dtmf_and_bridge.txt shows them, and the ``show`` tables."""

from __future__ import annotations

import asyncio
import json
import time

from tests.fsemu.apps import Apps
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore, new_uuid, now_us
from tests.fsemu.wire import HeaderValue

DTMF_GAP = 0.02  # one DTMF event per digit, 20 ms apart, ~20 ms after the command
DTMF_DURATION = "2000"  # samples at 8 kHz (250 ms), FreeSWITCH's default

CHANNEL_COLUMNS = (
    "uuid", "direction", "created", "created_epoch", "name", "state", "cid_name", "cid_num", "ip_addr",
    "dest",
    "application", "application_data", "dialplan", "context", "read_codec", "read_rate", "read_bit_rate",
    "write_codec", "write_rate", "write_bit_rate", "secure", "hostname", "presence_id", "presence_data",
    "accountcode", "callstate", "callee_name", "callee_num", "callee_direction", "call_uuid",
    "sent_callee_name",
    "sent_callee_num", "initial_cid_name", "initial_cid_num", "initial_ip_addr", "initial_dest",
    "initial_dialplan", "initial_context",
)  # fmt: skip
_CALL_A = (
    "uuid", "direction", "created", "created_epoch", "name", "state", "cid_name", "cid_num", "ip_addr",
    "dest",
    "presence_id", "presence_data", "accountcode", "callstate", "callee_name", "callee_num",
    "callee_direction",
    "call_uuid", "hostname", "sent_callee_name", "sent_callee_num",
)  # fmt: skip
_CALL_B = tuple(c for c in _CALL_A if c not in ("call_uuid", "hostname"))


class Features:
    """DTMF, bridging and the ``show channels|calls as json`` views."""

    def __init__(self, core: SwitchCore, apps: Apps) -> None:
        self.core = core
        self.apps = apps

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
        """``show channels as json`` (FreeSWITCH's row_count/rows shape, every value a string)."""
        rows = [self._channel_row(ch) for ch in self._live()]
        return _rows_json(rows)

    def show_calls_json(self) -> str:
        """``show calls as json`` (basic_calls view: A columns, then b_* of the bridged peer)."""
        rows = []
        for ch in self._live():
            if ch.bridge_role == "originatee" and ch.bridged_to is not None:
                continue
            row = {k: v for k, v in self._channel_row(ch).items() if k in _CALL_A}
            row = {k: row.get(k, "") for k in _CALL_A}
            peer = ch.bridged_to
            peer_row = self._channel_row(peer) if peer is not None else {}
            row.update({f"b_{k}": peer_row.get(k, "") for k in _CALL_B})
            row["call_created_epoch"] = str(ch.times.bridged // 1_000_000) if peer is not None else ""
            rows.append(row)
        return _rows_json(rows)

    def _live(self) -> list[EmulatedChannel]:
        return sorted(self.core.channels.values(), key=lambda c: c.times.created)

    def _channel_row(self, ch: EmulatedChannel) -> dict[str, str]:
        profile = ch.profile or {}
        created = ch.times.created // 1_000_000
        values = {
            "uuid": ch.uuid, "direction": ch.direction,
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created)),
            "created_epoch": str(created),
            "name": ch.name, "state": ch.state, "cid_name": profile.get("Caller-ID-Name", ""),
            "cid_num": profile.get("Caller-ID-Number", ""), "ip_addr": profile.get("Network-Addr", ""),
            "dest": profile.get("Destination-Number", ""),
            "application": ch.get_var("current_application") or "",
            "application_data": ch.get_var("current_application_data") or "",
            "dialplan": profile.get("Dialplan", ""), "context": profile.get("Context", ""),
            "read_codec": ch.read_codec.name if ch.read_codec else "",
            "read_rate": str(ch.read_codec.rate) if ch.read_codec else "",
            "read_bit_rate": str(ch.read_codec.bit_rate) if ch.read_codec else "",
            "write_codec": ch.write_codec.name if ch.write_codec else "",
            "write_rate": str(ch.write_codec.rate) if ch.write_codec else "",
            "write_bit_rate": str(ch.write_codec.bit_rate) if ch.write_codec else "",
            "hostname": self.core.identity.hostname, "presence_id": ch.presence_id or "",
            "accountcode": ch.get_var("accountcode") or "", "callstate": ch.call_state,
            "callee_name": profile.get("Callee-ID-Name", ""),
            "callee_num": profile.get("Callee-ID-Number", ""),
            "call_uuid": ch.uuid, "initial_cid_name": profile.get("Caller-ID-Name", ""),
            "initial_cid_num": profile.get("Caller-ID-Number", ""),
            "initial_ip_addr": profile.get("Network-Addr", ""),
            "initial_dest": profile.get("Destination-Number", ""),
            "initial_dialplan": profile.get("Dialplan", ""),
            "initial_context": profile.get("Context", ""),
        }  # fmt: skip
        return {col: values.get(col, "") for col in CHANNEL_COLUMNS}


def _rows_json(rows: list[dict[str, str]]) -> str:
    # mod_commands show ... as json: cJSON_Print (formatted, tab-indented) of {"row_count":N,"rows":[...]};
    # with no rows the "rows" member is left out.
    if not rows:
        return '{\n\t"row_count":\t0\n}\n'
    rendered = ", ".join(_cjson_object(row, 2) for row in rows)
    return f'{{\n\t"row_count":\t{len(rows)},\n\t"rows":\t[{rendered}]\n}}\n'


def _cjson_object(row: dict[str, str], depth: int) -> str:
    inner = "\t" * (depth + 1)
    items = ",\n".join(
        f"{inner}{json.dumps(k, ensure_ascii=False)}:\t{json.dumps(v, ensure_ascii=False)}"
        for k, v in row.items()
    )
    return "{\n" + items + "\n" + "\t" * depth + "}"
