"""The ``conference`` application (mod_conference, profile ``default`` of the vanilla config). Not captured.

Source (v1.10.12): mod_conference.c conference_function pre-answers, creates the room if it is new
(conference_new: CUSTOM conference::maintenance ``conference-create``), answers, then conference_member_add
fires ``add-member``; the conference thread gives the floor to the first speaker (``floor-change``). The
member stays until hangup or transfer; conference_member_del fires ``floor-change`` (floor released) and
``del-member``; an empty dynamic room is destroyed (``conference-destroy``). Member events carry
conference_event_add_data + Floor + switch_channel_event_set_basic_data (verbose-events is off in the vanilla
profile) + the member flags (conference_member.c conference_member_add_event_data).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fsemu.apps import Apps
from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.core import SwitchCore, new_uuid
from tests.fsemu.wire import HeaderValue

MAINT = "conference::maintenance"
FLOOR_DELAY = 0.02  # the conference thread's next 20 ms tick picks the floor holder
ENERGY_LEVEL = "100"  # conf/vanilla/autoload_configs/conference.conf.xml, profile default


@dataclass
class Room:
    """One running conference."""

    name: str
    profile: str
    domain: str
    uuid: str = field(default_factory=new_uuid)
    members: dict[int, EmulatedChannel] = field(default_factory=dict)
    floor: int = 0


class Conferences:
    """Rooms by name and the ``conference`` application."""

    def __init__(
        self,
        core: SwitchCore,
        apps: Apps,
        pre_answer: Callable[[EmulatedChannel], None],
        answer: Callable[[EmulatedChannel], None],
    ) -> None:
        self.core = core
        self.apps = apps
        self.pre_answer, self.answer = pre_answer, answer  # endpoint-specific media
        self.rooms: dict[str, Room] = {}
        self.next_id = 0  # mod_conference.c next_member_id: one counter for every room

    async def run(self, ch: EmulatedChannel, data: str, first: bool = False) -> None:
        """``conference <room>[@<profile>][+flags]``: join and stay until hangup or transfer."""
        app_uuid = self.apps.execute(ch, "conference", data, first=first)
        self.pre_answer(ch)
        spec = data.split("+", 1)[0]
        name, _, profile = spec.partition("@")
        room = self.rooms.get(name)
        if room is None:
            room = self._create(ch, name, profile or "default")
        self.answer(ch)
        self.next_id += 1
        member_id = self.next_id
        room.members[member_id] = ch
        ch.set_vars([("conference_name", room.name), ("conference_member_id", str(member_id))])
        ch.set_vars([("conference_moderator", "false"), ("conference_ghost", "false")])
        ch.set_var("conference_uuid", room.uuid)
        self._maint(room, "add-member", ch, member_id, "CONF_ADD_MEMBER")
        floor = self.core.spawn(self._take_floor(room, member_id), name=f"conference-floor-{ch.uuid}")
        await ch.wait_released()
        floor.cancel()
        await asyncio.gather(floor, return_exceptions=True)
        self._leave(room, ch, member_id)
        self.apps.complete(ch, "conference", data, app_uuid)

    def _create(self, ch: EmulatedChannel, name: str, profile: str) -> Room:
        domain = ch.get_var("domain_name") or self.core.identity.ipv4
        room = self.rooms[name] = Room(name, profile, domain)
        headers = [*self._room_data(room), ("Action", "conference-create")]
        self.core.fire("CUSTOM", headers, calling="CONF_CREATE", subclass=MAINT)
        return room

    async def _take_floor(self, room: Room, member_id: int) -> None:
        await asyncio.sleep(FLOOR_DELAY)
        if room.floor == 0 and member_id in room.members:
            self._floor_change(room, member_id)

    def _floor_change(self, room: Room, new_id: int) -> None:
        old_id, room.floor = room.floor, new_id
        headers = [*self._room_data(room), ("Action", "floor-change"), ("Old-ID", str(old_id or "none"))]
        member = room.members.get(new_id)
        if member is not None:
            headers += self._member_data(room, member, new_id)
        headers.append(("New-ID", str(new_id or "none")))
        self.core.fire("CUSTOM", headers, calling="CONF_FLOOR_CHANGE", subclass=MAINT)

    def _leave(self, room: Room, ch: EmulatedChannel, member_id: int) -> None:
        if room.floor == member_id:
            self._floor_change(room, 0)
        room.members.pop(member_id, None)
        ch.set_var("conference_call_key", None)
        self._maint(room, "del-member", ch, member_id, "CONF_DEL_MEMBER")
        if room.members and room.floor == 0:  # the conference thread hands the floor on at its next tick
            heir = next(iter(room.members))
            self.core.spawn(self._take_floor(room, heir), name=f"conference-floor-{room.members[heir].uuid}")
        if not room.members:
            self.rooms.pop(room.name, None)
            headers = [*self._room_data(room), ("Action", "conference-destroy")]
            self.core.fire("CUSTOM", headers, calling="CONF_DESTROY", subclass=MAINT)

    def _maint(self, room: Room, action: str, ch: EmulatedChannel, member_id: int, calling: str) -> None:
        headers = [*self._member_data(room, ch, member_id), ("Action", action)]
        self.core.fire("CUSTOM", headers, calling=calling, subclass=MAINT)

    def _room_data(self, room: Room) -> list[tuple[str, HeaderValue]]:
        """conference_event.c conference_event_add_data."""
        return [
            ("Conference-Name", room.name),
            ("Conference-Domain", room.domain),
            ("Conference-Size", str(len(room.members))),
            ("Conference-Ghosts", "0"),
            ("Conference-Profile-Name", room.profile),
            ("Conference-Unique-ID", room.uuid),
        ]

    def _member_data(self, room: Room, ch: EmulatedChannel, member_id: int) -> list[tuple[str, HeaderValue]]:
        """conference_member.c conference_member_add_event_data (non-verbose: basic channel data)."""
        out = [*self._room_data(room), ("Floor", "true" if room.floor == member_id else "false")]
        out += ch.basic_headers()
        out += [
            ("Video", "false"),
            ("Hear", "true"),
            ("See", "true"),
            ("Speak", "true"),
            ("Talking", "false"),
        ]
        out += [("Mute-Detect", "false"), ("Hold", "false"), ("Member-ID", str(member_id))]
        out += [("Member-Type", "member"), ("Member-Ghost", "false"), ("Energy-Level", ENERGY_LEVEL)]
        out.append(("Current-Energy", "0"))
        return out
