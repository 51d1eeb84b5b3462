"""``WebrtcLinks`` (Janus SIP handle ↔ SIP Call-ID, media statistics), ``call_type_of`` with both Janus user
agents, and the directory answers mod_xml_curl gets (``directory_answer``).

Events are shaped as Janus 1.1.2 posts them (tests/unit/test_janus_events.py holds the captures).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import pytest

from controller.api.directory import NOT_FOUND, directory_answer
from controller.calls.channel import Channel
from controller.calls.router import call_type_of
from controller.janus.browsers import BrowserUsers
from controller.janus.events import parse_event
from controller.janus.link import WebrtcLinks

EMITTER, SESSION, HANDLE = "janus-a", 1401716684077504, 4223932026335384


def sip_event(call_id: str, name: str = "calling", **ids: Any) -> dict[str, Any]:
    return {
        "emitter": ids.get("emitter", EMITTER), "type": 64, "timestamp": 1795227170866483,
        "session_id": ids.get("session", SESSION), "handle_id": ids.get("handle", HANDLE),
        "event": {"plugin": "janus.plugin.sip", "data": {"event": name, "call-id": call_id}},
    }  # fmt: skip


def stats_event(
    *, rtt: int | None, lost: int, lost_out: int, jitter: tuple[int, int], **ids: Any
) -> dict[str, Any]:
    audio: dict[str, Any] = {
        "mid": "0", "mindex": 0, "media": "audio", "codec": "opus", "base": 48000, "lost": lost,
        "lost-by-remote": lost_out, "jitter-local": jitter[0], "jitter-remote": jitter[1],
        "packets-received": 500, "packets-sent": 498, "bytes-received": 40000, "bytes-sent": 39000,
    }  # fmt: skip
    if rtt is not None:
        audio["rtt"] = rtt
    video = {"mid": "1", "media": "video", "lost": 900, "jitter-local": 99, "packets-received": 1,
             "packets-sent": 1, "rtt": 999}  # fmt: skip
    return {
        "emitter": ids.get("emitter", EMITTER), "type": 32, "subtype": 3, "timestamp": 1795227192821640,
        "session_id": ids.get("session", SESSION), "handle_id": ids.get("handle", HANDLE),
        "event": [audio, video],
    }  # fmt: skip


def feed(links: WebrtcLinks, events: Sequence[dict[str, Any]]) -> None:
    for item in events:
        links.apply(parse_event(item))


def test_stats_of_a_linked_handle_aggregate_under_its_call_id() -> None:
    links = WebrtcLinks()
    feed(links, [
        stats_event(rtt=50, lost=9, lost_out=9, jitter=(9, 9)),  # before any call: not linked, dropped
        sip_event("call-A"),
        stats_event(rtt=20, lost=1, lost_out=0, jitter=(4, 2)),
        stats_event(rtt=None, lost=3, lost_out=2, jitter=(1, 11)),
        stats_event(rtt=40, lost=5, lost_out=2, jitter=(6, 3)),
        stats_event(rtt=70, lost=8, lost_out=8, jitter=(50, 50), handle=HANDLE + 1),  # another handle
        sip_event("call-A", "hangup"),
    ])  # fmt: skip
    assert links.linked("call-A")
    stats = links.take(["fs-side-unknown", "call-A"])
    assert stats is not None
    assert stats.model_dump() == {
        "janus_session": SESSION, "janus_handle": HANDLE, "rtt_ms_avg": 30.0, "jitter_ms_max": 11.0,
        "packets_lost_in": 5, "packets_lost_out": 2, "reports": 3,
    }  # fmt: skip
    assert links.take(["call-A"]) is None  # taken once
    assert len(links) == 0


def test_a_new_call_on_the_handle_starts_new_stats_and_emitters_are_apart() -> None:
    links = WebrtcLinks()
    feed(links, [
        sip_event("call-1"),
        stats_event(rtt=10, lost=7, lost_out=1, jitter=(1, 1)),
        sip_event("call-2"),
        stats_event(rtt=30, lost=1, lost_out=0, jitter=(2, 2)),
        stats_event(rtt=99, lost=99, lost_out=99, jitter=(99, 99), emitter="janus-b"),
    ])  # fmt: skip
    first, second = links.take(["call-1"]), links.take(["call-2"])
    assert first is not None
    assert second is not None
    assert (first.rtt_ms_avg, first.packets_lost_in, first.reports) == (10.0, 7, 1)
    assert (second.rtt_ms_avg, second.packets_lost_in, second.reports) == (30.0, 1, 1)


def test_session_end_unlinks_and_capacity_bounds_memory() -> None:
    links = WebrtcLinks(capacity=2)
    feed(links, [
        sip_event("call-1"),
        {"emitter": EMITTER, "type": 1, "session_id": SESSION, "event": {"name": "destroyed"}},
        stats_event(rtt=10, lost=7, lost_out=1, jitter=(1, 1)),
    ])  # fmt: skip
    stats = links.take(["call-1"])
    assert stats is not None
    assert stats.reports == 0
    feed(links, [sip_event(f"c{n}", handle=n) for n in range(3)])
    assert [links.linked(f"c{n}") for n in range(3)] == [False, True, True]


def test_plugin_events_without_call_id_or_of_other_plugins_do_not_link() -> None:
    links = WebrtcLinks()
    other = sip_event("x")
    other["event"]["plugin"] = "janus.plugin.echotest"
    no_call = sip_event("y")
    del no_call["event"]["data"]["call-id"]
    feed(links, [other, no_call])
    assert len(links) == 0


@pytest.mark.parametrize(
    ("agent", "kind"),
    [
        ("Janus WebRTC Server SIP Plugin 1.1.2", "webrtc"),  # janus_sip.c default user_agent
        ("Switchyard-Janus-SIP", "webrtc"),  # the rendered janus.plugin.sip.jcfg
        ("SIPp", "sip"),
        ("", "sip"),
    ],
)
def test_call_type_of_recognises_both_janus_user_agents(agent: str, kind: str) -> None:
    ch = Channel("u1", "fs1", "u1", variables={"sip_user_agent": agent})
    assert call_type_of(ch) == kind


class TokenLedger:
    """A local Admin API stand-in holding the tokens (the real one is tested against Janus)."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()

    async def add_token(self, token: str, plugins: Sequence[str] = ()) -> None:
        self.tokens.add(token)

    async def remove_token(self, token: str) -> None:
        self.tokens.remove(token)


def form(user: str, domain: str = "pbx.test", **more: str) -> dict[str, str]:
    """A sip_auth lookup as mod_xml_curl posts it (mod_xml_curl.c xml_url_fetch, sofia_reg.c)."""
    return {
        "hostname": "fs1", "section": "directory", "tag_name": "domain", "key_name": "name",
        "key_value": domain, "Event-Name": "REQUEST_PARAMS", "action": "sip_auth", "sip_profile": "internal",
        "sip_auth_username": user, "sip_auth_realm": domain, "user": user, "domain": domain, **more,
    }  # fmt: skip


async def test_directory_answers_live_browser_users_only() -> None:
    ledger, now = TokenLedger(), [1000.0]
    users = BrowserUsers(ledger, "pbx.test", 60, clock=lambda: now[0])
    user = await users.create('Ann "A" & co')
    assert ledger.tokens == {user.janus_token}
    root = ET.fromstring(directory_answer(form(user.username), users, "switchyard"))
    assert (root.tag, root.get("type")) == ("document", "freeswitch/xml")
    found = root.find(
        f"section[@name='directory']/domain[@name='pbx.test']/users/user[@id='{user.username}']"
    )
    assert found is not None
    password = found.find("params/param[@name='password']")
    assert password is not None
    assert password.get("value") == user.password
    variables = {v.get("name"): v.get("value") for v in found.iterfind("variables/variable")}
    assert variables["effective_caller_id_name"] == 'Ann "A" & co'
    assert variables["user_context"] == "switchyard"
    others = (form("1000"), form(user.username, "other.test"), {**form(user.username), "section": "dialplan"})
    for other in others:
        assert directory_answer(other, users, "switchyard") == NOT_FOUND
    # switch_xml.c switch_xml_locate: this exact shape makes FreeSWITCH fall back to its static XML.
    result = ET.fromstring(NOT_FOUND).find("section[@name='result']/result")
    assert result is not None
    assert result.get("status") == "not found"
    assert users.feed_subject(user.feed_token) == user.username
    assert users.feed_subject("nope") is None
    now[0] += 61  # expired by the clock before the timer runs
    assert directory_answer(form(user.username), users, "switchyard") == NOT_FOUND
    assert users.feed_subject(user.feed_token) is None
    assert await users.expire(user.username)
    assert ledger.tokens == set()
