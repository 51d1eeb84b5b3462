"""``uuid_hold [off|toggle] <uuid> [<display>]`` (mod_commands.c uuid_hold_function). Not captured.

switch_ivr.c switch_ivr_hold / switch_ivr_unhold: refused (``-ERR Operation failed``) when the call state is
already HELD / not HELD; an unknown uuid is not an error (switch_ivr_hold_uuid starts from SUCCESS). The
endpoint gets INDICATE_HOLD: mod_sofia sets CF_LEG_HOLDING and switch_channel.c turns that flag, on an
answered channel, into call state HELD (CHANNEL_CALLSTATE, Channel-Last-Hold) and, cleared, into UNHELD
(hold time accumulates). mod_loopback ignores the message, so a loopback leg's call state stays ACTIVE.
CHANNEL_HOLD / CHANNEL_UNHOLD fire last, with the channel's variables. (The hold music switch_ivr_hold
broadcasts to a bridged partner is not emulated.)
"""

from __future__ import annotations

from tests.fsemu.apps import Apps
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore, now_us

OK = "+OK Success\n"
FAILED = "-ERR Operation failed\n"
USAGE = "-USAGE: [off|toggle] <uuid> [<display>]\n"


class Holds:
    """Hold state of channels and the ``uuid_hold`` api."""

    def __init__(self, core: SwitchCore, apps: Apps) -> None:
        self.core = core
        self.apps = apps

    async def command(self, arg: str) -> str:
        """Run ``uuid_hold`` and return the reply body."""
        argv = arg.split()[:4]
        if not argv:
            return USAGE
        action = argv[0].lower()
        if action == "off":
            ch = self._find(argv[1] if len(argv) > 1 else None)
            ok = ch is None or self.unhold(ch)
        elif action == "toggle":
            ch = self._find(argv[1] if len(argv) > 1 else None)
            ok = ch is None or self._toggle(ch)
        else:
            ch = self._find(argv[0])
            ok = ch is None or self.hold(ch)
        return OK if ok else FAILED

    def _find(self, uuid: str | None) -> EmulatedChannel | None:
        ch = self.core.channels.get(uuid) if uuid else None
        return ch if ch is not None and ch.alive else None

    def _toggle(self, ch: EmulatedChannel) -> bool:
        # switch_ivr_hold_toggle_uuid: ACTIVE/UNHELD -> hold, HELD -> unhold, anything else: nothing, success.
        if ch.call_state in ("ACTIVE", "UNHELD"):
            return self.hold(ch)
        if ch.call_state == "HELD":
            return self.unhold(ch)
        return True

    def hold(self, ch: EmulatedChannel) -> bool:
        """switch_ivr_hold: CF_HOLD, INDICATE_HOLD (sofia: HELD), CHANNEL_HOLD."""
        if ch.call_state == "HELD":
            return False
        if ch.kind == "sofia" and ch.answered:
            stamp = now_us()
            self.apps.set_callstate(ch, "HELD")
            if ch.profile is not None:
                ch.profile["Channel-Last-Hold"] = str(stamp)
        self.core.fire_channel(ch, "CHANNEL_HOLD")
        return True

    def unhold(self, ch: EmulatedChannel) -> bool:
        """switch_ivr_unhold: only from HELD; INDICATE_UNHOLD (sofia: UNHELD), CHANNEL_UNHOLD."""
        if ch.call_state != "HELD":
            return False
        self.apps.set_callstate(ch, "UNHELD")
        profile = ch.profile
        if profile is not None:
            last = int(profile.get("Channel-Last-Hold", "0") or 0)
            accum = int(profile.get("Channel-Hold-Accum", "0") or 0)
            if last:
                profile["Channel-Hold-Accum"] = str(accum + now_us() - last)
        self.core.fire_channel(ch, "CHANNEL_UNHOLD")
        return True

    def check_hold(self, ch: EmulatedChannel) -> None:
        """switch_ivr_check_hold (before a transfer): a held leg is unheld."""
        if ch.call_state == "HELD":
            self.unhold(ch)
