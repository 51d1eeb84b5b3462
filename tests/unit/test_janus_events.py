"""Janus event-handler bodies → typed events (``controller.janus.events``) and metrics (``JanusMetrics``).

The ``CAPTURED_*`` bodies are byte for byte what Janus 1.1.2 (Debian ``janus`` 1.1.2-1) posted through
``libjanus_sampleevh.so`` (``grouping = true``; ``json = "indented"`` or ``"compact"``) while a script drove
its HTTP API on 127.0.0.1: a session with an EchoTest handle fed an SDP offer, destroyed; a session left to
time out. ``SIP_CALL`` holds two events of the same capture (SIP plugin ``calling`` and ``hangup`` after a
503; the SDP shortened), regrouped. Shapes Janus only sends with live media (non-zero stats, ICE/DTLS
states) follow src/ice.c, src/dtls.c and src/rtcp.c of Janus 1.1.2.
"""

from __future__ import annotations

import copy
import json
from functools import partial

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.janus.events import (
    CoreEvent,
    HandleEvent,
    JanusEventError,
    MediaStats,
    MediaStatsEvent,
    OtherEvent,
    PluginEvent,
    SessionEvent,
    WebrtcStateEvent,
    decode_body,
    parse_event,
    parse_events,
    type_label,
)
from tests.januskit import janus_event

CAPTURED_INDENTED_TIMEOUT = (
    b'[\n   {\n      "emitter": "capture-janus",\n      "type": 1,\n      "timestamp": 1795227142726609,\n'
    b'      "session_id": 7157121324832310,\n      "event": {\n         "name": "timeout"\n      }\n   },\n'
    b'   {\n      "emitter": "capture-janus",\n      "type": 2,\n      "timestamp": 1795227142726688,\n'
    b'      "session_id": 7157121324832310,\n      "handle_id": 3694289515490503,\n'
    b'      "opaque_id": "cap-sip",\n      "event": {\n         "name": "detached",\n'
    b'         "plugin": "janus.plugin.sip",\n         "opaque_id": "cap-sip"\n      }\n   }\n]'
)
CAPTURED_COMPACT_CREATED = (
    b'[{"emitter":"capture-janus","type":1,"timestamp":1795227189212230,"session_id":8978195001812378,'
    b'"event":{"name":"created","transport":{"transport":"janus.transport.http","id":"16161512246380565496"}}}]'
)
CAPTURED_COMPACT_ATTACHED = (
    b'[{"emitter":"capture-janus","type":2,"timestamp":1795227189213601,"session_id":8978195001812378,'
    b'"handle_id":5625252063708973,"event":{"name":"attached","plugin":"janus.plugin.echotest"}}]'
)
CAPTURED_COMPACT_END = (
    b'[{"emitter":"capture-janus","type":32,"subtype":3,"timestamp":1795227192821640,'
    b'"session_id":8978195001812378,"handle_id":5625252063708973,"event":[{"mid":"0","mindex":0,'
    b'"media":"audio","base":48000,"rtt":0,"lost":0,"lost-by-remote":0,"jitter-local":0,"jitter-remote":0,'
    b'"in-link-quality":0,"in-media-link-quality":0,"out-link-quality":0,"out-media-link-quality":0,'
    b'"packets-received":0,"packets-sent":0,"bytes-received":0,"bytes-sent":0,"bytes-received-lastsec":0,'
    b'"bytes-sent-lastsec":0,"nacks-received":0,"nacks-sent":0,"retransmissions-received":0}]},'
    b'{"emitter":"capture-janus","type":16,"subtype":6,"timestamp":1795227192821806,'
    b'"session_id":8978195001812378,"handle_id":5625252063708973,"event":{"connection":"hangup",'
    b'"reason":"Detach"}},{"emitter":"capture-janus","type":1,"timestamp":1795227192821829,'
    b'"session_id":8978195001812378,"event":{"name":"destroyed"}},{"emitter":"capture-janus","type":2,'
    b'"timestamp":1795227192822012,"session_id":8978195001812378,"handle_id":5625252063708973,'
    b'"event":{"name":"detached","plugin":"janus.plugin.echotest"}}]'
)
CAPTURED_COMPACT_CANDIDATES = (
    b'[{"emitter":"capture-janus","type":16,"subtype":1,"timestamp":1795227189216136,'
    b'"session_id":8978195001812378,"handle_id":5625252063708973,"event":{"ice":"gathering","stream_id":1,'
    b'"component_id":1}},{"emitter":"capture-janus","type":16,"subtype":2,"timestamp":1795227189216370,'
    b'"session_id":8978195001812378,"handle_id":5625252063708973,"event":{"local-candidate":'
    b'"1 1 udp 2015363327 192.0.2.2 47010 typ host","stream_id":1,"component_id":0}}]'
)
SIP_CALL = (
    b'[{"emitter":"capture-janus","type":64,"timestamp":1795227170866483,"session_id":1401716684077504,'
    b'"handle_id":4223932026335384,"opaque_id":"cap-sip","event":{"plugin":"janus.plugin.sip","data":'
    b'{"event":"calling","callee":"sip:bob@127.0.0.1:5099","call-id":"Aap8kmpVrqXiZ6oQTj8eiRT",'
    b'"sdp":"v=0\\r\\no=- 4611731400430051336 2 IN IP4 1...."}}},'
    b'{"emitter":"capture-janus","type":64,"timestamp":1795227170867627,"session_id":1401716684077504,'
    b'"handle_id":4223932026335384,"opaque_id":"cap-sip","event":{"plugin":"janus.plugin.sip","data":'
    b'{"event":"hangup","call-id":"Aap8kmpVrqXiZ6oQTj8eiRT","code":503,"reason":"Service Unavailable"}}}]'
)
SESSION, HANDLE = 8978195001812378, 5625252063708973


event = partial(janus_event, session=SESSION, handle=HANDLE)


def stats(**values: object) -> dict[str, object]:
    """One medium's stats (src/ice.c ``janus_ice_outgoing_stats_handle``), zero unless given."""
    body: dict[str, object] = {"mid": "0", "mindex": 0, "media": "audio", "codec": "opus", "base": 48000}
    for name in ("rtt", "lost", "lost-by-remote", "jitter-local", "jitter-remote", "in-link-quality"):
        body[name] = 0
    body.update({"packets-received": 0, "packets-sent": 0, "bytes-received": 0, "bytes-sent": 0})
    body.update(values)
    return body


# --- parsing -------------------------------------------------------------------------------------------


def test_captured_session_end_compact() -> None:
    media, hangup, destroyed, detached = parse_events(CAPTURED_COMPACT_END)
    assert media == MediaStatsEvent(
        "capture-janus",
        1795227192821640,
        SESSION,
        HANDLE,
        (MediaStats("audio", "0", 0, 0, 0, None, 0, 0, 0, 0, 0, 0, 0, 0, 0),),
    )
    assert hangup == WebrtcStateEvent(
        "capture-janus", 1795227192821806, SESSION, HANDLE, "connection", "hangup", reason="Detach"
    )
    assert destroyed == SessionEvent("capture-janus", 1795227192821829, SESSION, "destroyed")
    assert destroyed.ended
    assert detached == HandleEvent(
        "capture-janus", 1795227192822012, SESSION, HANDLE, "detached", "janus.plugin.echotest"
    )
    assert [type_label(e.type) for e in (media, hangup, destroyed, detached)] == [
        "media",
        "webrtc",
        "session",
        "handle",
    ]


def test_captured_created_and_attached() -> None:
    (created,) = parse_events(CAPTURED_COMPACT_CREATED)
    assert created == SessionEvent(
        "capture-janus", 1795227189212230, SESSION, "created", "janus.transport.http"
    )
    assert not created.ended
    (attached,) = parse_events(CAPTURED_COMPACT_ATTACHED)
    assert isinstance(attached, HandleEvent)
    assert (attached.name, attached.plugin, attached.opaque_id) == ("attached", "janus.plugin.echotest", None)


def test_captured_indented_equals_compact() -> None:
    timeout, detached = parse_events(CAPTURED_INDENTED_TIMEOUT)
    assert timeout == SessionEvent("capture-janus", 1795227142726609, 7157121324832310, "timeout")
    assert timeout.ended
    assert detached == HandleEvent(
        "capture-janus",
        1795227142726688,
        7157121324832310,
        3694289515490503,
        "detached",
        "janus.plugin.sip",
        "cap-sip",
    )
    compact = orjson.dumps(orjson.loads(CAPTURED_INDENTED_TIMEOUT))
    assert parse_events(compact) == (timeout, detached)


def test_every_proper_prefix_is_rejected() -> None:
    """Fed a byte at a time, a body parses only once it is whole (an HTTP body is parsed whole)."""
    body = CAPTURED_INDENTED_TIMEOUT
    for end in range(len(body)):
        with pytest.raises(JanusEventError):
            parse_events(body[:end])
    assert len(parse_events(body)) == 2


def test_single_object_without_grouping() -> None:
    single = orjson.dumps(orjson.loads(CAPTURED_COMPACT_CREATED)[0])
    assert single.startswith(b"{")
    assert parse_events(single) == parse_events(CAPTURED_COMPACT_CREATED)
    assert parse_events(b"[]") == ()


def test_sip_plugin_call_id() -> None:
    calling, hangup = parse_events(SIP_CALL)
    assert isinstance(calling, PluginEvent)
    assert (calling.plugin, calling.sip_event, calling.sip_call_id) == (
        "janus.plugin.sip",
        "calling",
        "Aap8kmpVrqXiZ6oQTj8eiRT",
    )
    assert calling.data["callee"] == "sip:bob@127.0.0.1:5099"
    assert isinstance(hangup, PluginEvent)
    assert (hangup.sip_event, hangup.sip_call_id, hangup.data["code"]) == ("hangup", hangup.sip_call_id, 503)
    assert hangup.sip_call_id == "Aap8kmpVrqXiZ6oQTj8eiRT"
    other_plugin = event(64, {"plugin": "janus.plugin.echotest", "data": {"call-id": "x", "event": "y"}})
    echo = parse_event(other_plugin)
    assert isinstance(echo, PluginEvent)
    assert (echo.sip_event, echo.sip_call_id) == (None, None)
    # Plugins may notify outside any session or handle (src/events.c leaves both ids out).
    detached = parse_event({"type": 64, "timestamp": 1, "event": {"plugin": "janus.plugin.sip", "data": {}}})
    assert isinstance(detached, PluginEvent)
    assert (detached.session_id, detached.handle_id) == (None, None)


def test_webrtc_states_and_candidates() -> None:
    gathering, candidate = parse_events(CAPTURED_COMPACT_CANDIDATES)
    assert isinstance(gathering, WebrtcStateEvent)
    assert (gathering.kind, gathering.state, gathering.stream_id, gathering.component_id) == (
        "ice",
        "gathering",
        1,
        1,
    )
    assert isinstance(candidate, OtherEvent)
    assert (candidate.type, candidate.subtype) == (16, 2)
    assert candidate.body == {
        "local-candidate": "1 1 udp 2015363327 192.0.2.2 47010 typ host",
        "stream_id": 1,
        "component_id": 0,
    }
    dtls = parse_event(
        event(16, {"dtls": "connected", "stream_id": 1, "component_id": 1, "retransmissions": 0}, 5)
    )
    assert isinstance(dtls, WebrtcStateEvent)
    assert (dtls.kind, dtls.state) == ("dtls", "connected")
    up = parse_event(event(16, {"connection": "webrtcup"}, 6))
    assert isinstance(up, WebrtcStateEvent)
    assert (up.kind, up.state, up.reason) == ("connection", "webrtcup", None)


def test_media_stats_single_and_combined() -> None:
    video = stats(media="video", mid="1", mindex=1, codec="vp8", rtt=35, lost=4, **{"packets-received": 900})
    video["jitter-local"], video["jitter-remote"], video["lost-by-remote"] = 12, 7, 3
    (single,) = parse_events(orjson.dumps([event(32, video, 3)]))
    assert isinstance(single, MediaStatsEvent)
    (medium,) = single.streams
    assert (medium.media, medium.mid, medium.mindex, medium.codec) == ("video", "1", 1, "vp8")
    assert (medium.rtt_ms, medium.lost, medium.lost_by_remote) == (35, 4, 3)
    assert (medium.jitter_local_ms, medium.jitter_remote_ms, medium.packets_received) == (12, 7, 900)
    data = {"mid": "2", "mindex": 2, "media": "data", "packets-received": 5, "packets-sent": 6}
    combined = parse_event(event(32, [stats(), data], 3))
    assert isinstance(combined, MediaStatsEvent)
    assert [m.media for m in combined.streams] == ["audio", "data"]
    assert combined.streams[1].rtt_ms is None
    # No subtype (not sent when 0): stats are still recognised by shape.
    assert isinstance(parse_event(event(32, stats())), MediaStatsEvent)


def test_events_not_acted_on_stay_raw() -> None:
    receiving = parse_event(event(32, {"media": "audio", "mid": "0", "receiving": False, "seconds": 2}, 1))
    slow = parse_event(event(32, {"mid": "0", "media": "video", "slow_link": "uplink", "lost_lastsec": 9}, 2))
    jsep = parse_event(event(8, {"owner": "local", "jsep": {"type": "answer", "sdp": "v=0"}}))
    transport = parse_event({"type": 128, "event": {"transport": "janus.transport.http", "id": "1"}})
    external = parse_event({"type": 4, "event": {"schema": "my.schema", "data": {"a": 1}}})
    unknown = parse_event({"type": 512, "event": "anything", "session_id": 3})
    for item, code in (
        (receiving, 32),
        (slow, 32),
        (jsep, 8),
        (transport, 128),
        (external, 4),
        (unknown, 512),
    ):
        assert isinstance(item, OtherEvent)
        assert item.type == code
    assert isinstance(unknown, OtherEvent)
    assert (unknown.body, unknown.session_id, type_label(unknown.type)) == ("anything", 3, "other")
    assert [type_label(c) for c in (1, 2, 4, 8, 16, 32, 64, 128, 256, 3, 0)] == [
        "session", "handle", "external", "jsep", "webrtc", "media", "plugin", "transport", "core",
        "other", "other",
    ]  # fmt: skip


def test_core_events() -> None:
    started = parse_event(
        {"emitter": "j", "type": 256, "subtype": 1, "timestamp": 5, "event": {"status": "started"}}
    )
    assert started == CoreEvent("j", 5, "started")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"{'type': 1}", "not valid JSON"),
        (b"42", "neither"),
        (b'"text"', "neither"),
        (b"[1, 2]", "neither"),
        (b'[{"type": 1, "session_id": 1, "event": {"name": "created"}}, null]', "neither"),
        (b'{"event": {}}', "'type' is missing"),
        (b'{"type": "1"}', "'type' must be an integer"),
        (b'{"type": true}', "'type' must be an integer"),
        (b'{"type": 1.0}', "'type' must be an integer"),
        (b'{"type": 1, "event": {"name": "created"}}', "'session_id' is missing"),
        (b'{"type": 1, "session_id": 1}', "'event' must be a JSON object"),
        (b'{"type": 1, "session_id": 1, "event": {"name": 5}}', "'name' must be a string"),
        (b'{"type": 2, "session_id": 1, "event": {"name": "attached"}}', "'handle_id' is missing"),
        (b'{"type": 16, "session_id": 1, "handle_id": 2, "event": {"ice": null}}', "'ice' is missing"),
        (
            b'{"type": 32, "subtype": 3, "session_id": 1, "handle_id": 2, "event": {"media": "audio"}}',
            "missing",
        ),
        (b'{"type": 32, "subtype": 3, "session_id": 1, "handle_id": 2, "event": [7]}', "JSON object"),
        (b'{"type": 32, "subtype": 3, "session_id": 1, "handle_id": 2, "event": "x"}', "media stats"),
        (b'{"type": 64, "event": {"plugin": "janus.plugin.sip", "data": []}}', "'data' must be"),
        (b'{"type": 64, "event": {"plugin": "janus.plugin.sip", "data": {"call-id": 1}}}', "'call-id'"),
        (b'{"type": 256, "event": []}', "'event' must be"),
    ],
)
def test_malformed_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(JanusEventError, match=reason):
        parse_events(body)


def test_negative_count_rejected() -> None:
    with pytest.raises(JanusEventError, match="negative"):
        parse_event(event(32, stats(**{"packets-sent": -1}), 3))


def test_decode_body_keeps_objects() -> None:
    assert decode_body(b'[{"type": 99}, {"type": 1}]') == ({"type": 99}, {"type": 1})
    with pytest.raises(JanusEventError, match="JSON object"):
        parse_event([1])


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_parse_or_raise_janus_event_error(data: bytes) -> None:
    try:
        events = parse_events(data)
    except JanusEventError:
        return
    assert isinstance(events, tuple)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ODD: st.SearchStrategy[object] = st.sampled_from([None, "1", True, 1.5, -1, 2**64, [], {}, "failed", 0])
DELETE = object()


def _body_keys(item: dict[str, object]) -> list[str]:
    body = item["event"]
    first = body[0] if isinstance(body, list) and body else body
    return [*first, "data"] if isinstance(first, dict) else []


TEMPLATES = [
    *(orjson.loads(body)[0] for body in (CAPTURED_COMPACT_CREATED, CAPTURED_COMPACT_ATTACHED, SIP_CALL)),
    *orjson.loads(CAPTURED_COMPACT_END),
    *orjson.loads(CAPTURED_COMPACT_CANDIDATES),
    event(32, stats(**{"packets-received": 5}), 3),
    event(16, {"dtls": "connected", "stream_id": 1, "component_id": 1, "retransmissions": 0}, 5),
    {"emitter": "j", "type": 256, "subtype": 1, "timestamp": 5, "event": {"status": "started"}},
]
FIELDS = sorted({k for t in TEMPLATES for k in t} | {k for t in TEMPLATES for k in _body_keys(t)})


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(TEMPLATES),
    st.lists(
        st.tuples(st.sampled_from(FIELDS), st.one_of(ODD, JSON, st.just(DELETE))), min_size=1, max_size=3
    ),
)
def test_mutated_janus_events_parse_or_raise_janus_event_error(
    template: dict[str, object], mutations: list[tuple[str, object]]
) -> None:
    """Real events with fields removed or replaced by anything: parsed, or ``JanusEventError``."""
    item = json.loads(json.dumps(template))
    for key, replacement in mutations:
        body = item.get("event")
        target = body[0] if isinstance(body, list) and body else body
        where = item if key in item or not isinstance(target, dict) else target
        if replacement is DELETE:
            where.pop(key, None)
        else:  # a copy: ODD's shared [] and {} must not be filled in, nor nested into themselves
            where[key] = copy.deepcopy(replacement)
    data = json.dumps(item).encode()  # the stdlib also writes integers beyond 64 bits
    try:
        events = parse_events(data)
    except JanusEventError:
        return
    assert len(events) == 1
