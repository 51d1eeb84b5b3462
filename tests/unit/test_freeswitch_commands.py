"""The command builders: the exact lines FreeSWITCH gets, and refusal of every argument outside its allowlist.

The expected lines are the ones the controller sent before the builders existed (the emulator's API events
and the captures in ../shared/fixtures/freeswitch show the same). The Hypothesis property is the builders'
invariant: *build a line with the builder's word count and no control character, or raise InvalidCommand*.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from controller.freeswitch import commands as fc
from controller.freeswitch.commands import Command, InvalidCommand

A = "5f0c2b7e-9c1d-4b0e-8f5a-2d8c1e3f4a5b"
B = "11111111-2222-3333-4444-555555555555"
URL = "ws://127.0.0.1:8000/stream/c1"
V6 = "wss://[::1]:9/s"
TONE = "tone_stream://%(200,0,440);loops=-1"
SPACED = '{"a": "b c"}'  # the metadata is the last argument: spaces stay in it
DTMF_TEXT = '{"type":"dtmf","digit":"5"}'
BROWSER = "webrtc-0123456789ab@pbx.test"
META = '{"call_id":"c1","sample_rate":8000,"call_type":"sip","caller":"4000","callee":"8000"}'


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (fc.answer(A), "uuid_answer <A>"),
        (fc.kill(A), "uuid_kill <A> NORMAL_CLEARING"),
        (fc.kill(A, "USER_BUSY"), "uuid_kill <A> USER_BUSY"),
        (fc.park(A), "uuid_park <A>"),
        (fc.hold(A), "uuid_hold <A>"),
        (fc.hold(A, held=False), "uuid_hold off <A>"),
        (fc.bridge(A, B), f"uuid_bridge <A> {B}"),
        (fc.transfer(A, "7001", "switchyard"), "uuid_transfer <A> 7001 XML switchyard"),
        (fc.transfer(A, "1000@h"), "uuid_transfer <A> 1000@h"),
        (fc.transfer_inline(A, [("bridge", "user/1001@h")]), "uuid_transfer <A> bridge:user/1001@h inline"),
        (fc.transfer_inline(A, [("answer", ""), ("echo", "")]), "uuid_transfer <A> answer,echo inline"),
        (
            fc.transfer_inline(A, [("answer", ""), ("conference", "3000@default")]),
            "uuid_transfer <A> answer,conference:3000@default inline",
        ),
        (fc.send_dtmf(A, "12#w*aD"), "uuid_send_dtmf <A> 12#w*aD"),
        (fc.broadcast(A, "/tmp/ab-cd_12.tmp.r16"), "uuid_broadcast <A> /tmp/ab-cd_12.tmp.r16 aleg"),
        (fc.broadcast(A, TONE), f"uuid_broadcast <A> {TONE} aleg"),
        (fc.broadcast(A, "silence_stream://500,1400"), "uuid_broadcast <A> silence_stream://500,1400 aleg"),
        (fc.break_all(A), "uuid_break <A> all"),
        (fc.record_start(A, "/rec/c1/x-1.wav"), "uuid_record <A> start /rec/c1/x-1.wav"),
        (fc.record_stop_all(A), "uuid_record <A> stop all"),
        (fc.stream_start(A, URL, 8000, META), f"uuid_audio_stream <A> start {URL} mono 8k {META}"),
        (fc.stream_start(A, V6, 16000, SPACED), f"uuid_audio_stream <A> start {V6} mono 16k {SPACED}"),
        (fc.stream_stop(A), "uuid_audio_stream <A> stop"),
        (fc.stream_heartbeat(A, 1), "uuid_setvar <A> STREAM_HEART_BEAT 1"),
        (fc.stream_send_text(A, DTMF_TEXT), f"uuid_audio_stream <A> send_text {DTMF_TEXT}"),
        (fc.flush_inbound_reg(BROWSER), f"sofia profile internal flush_inbound_reg {BROWSER} reboot"),
        (fc.SHOW_CHANNELS, "show channels as json"),
        (fc.SHOW_CALLS, "show calls as json"),
        (fc.SHOW_REGISTRATIONS, "show registrations as json"),
        (fc.STATUS, "status"),
    ],
)  # fmt: skip
def test_lines_are_exact(command: Command, line: str) -> None:
    assert command.line == line.replace("<A>", A) == str(command)
    assert not command.background


def originate(target: fc.Target, destination: str, **kw: Any) -> Command:
    """``fc.originate`` for leg A with a 30 s ring timeout."""
    return fc.originate(target, destination, uuid=A, timeout_s=30, **kw)


def test_originate_lines_per_target() -> None:
    own = f"origination_uuid={A},originate_timeout=30"
    extension = originate(
        "extension",
        "7104",
        variables={"x": "1", "y": ""},
        caller_id_number="4000",
        caller_id_name="Front_Desk",
        tags={"switchyard_agent": "sales"},
        context="switchyard",
    )
    assert extension.line == (
        f"originate {{{own},x=1,y=,origination_caller_id_number=4000,origination_caller_id_name=Front_Desk,"
        "switchyard_agent=sales}loopback/7104/switchyard &park()"
    )
    assert extension.background
    user = originate("user", "1001", domain="pbx.test")
    assert user.line == f"originate {{{own}}}user/1001@pbx.test &park()"
    assert originate("user", "1001").line == f"originate {{{own}}}user/1001 &park()"
    gateway = originate("gateway", "+15551234", gateway="trunk-1")
    assert gateway.line == f"originate {{{own}}}sofia/gateway/trunk-1/+15551234 &park()"


@pytest.mark.parametrize("name", ["origination_uuid", "originate_timeout", "origination_caller_id_name"])
def test_originate_variables_cannot_replace_the_builders_own(name: str) -> None:
    with pytest.raises(InvalidCommand) as info:
        originate("user", "1001", variables={name: B})
    assert info.value.field == "variables"
    assert name in info.value.reason


UNPRINTABLE = [" ", "a b", "a\nb", "a\r", "a\n", "\n", "a\tb", "a\x00", "a\x7f", "a\x85", "a\u2028", "é"]
STRUCTURAL = ["{a}", "a}b", "a'b", 'a"b', "a$b", "a\\b"]  # variables, quoting, expansion, escapes
COMMA = ["a,b"]  # the next originate variable, the next inline application
EVERYTHING = (*UNPRINTABLE, *STRUCTURAL, *COMMA)

Build = Callable[[str], Command]
BUILDERS: dict[str, tuple[Build, str, tuple[str, ...]]] = {
    "answer uuid": (fc.answer, "uuid", EVERYTHING),
    "kill cause": (lambda v: fc.kill(A, v), "cause", EVERYTHING),
    "bridge other": (lambda v: fc.bridge(A, v), "other", EVERYTHING),
    "transfer destination": (lambda v: fc.transfer(A, v, "default"), "destination", EVERYTHING),
    "transfer context": (lambda v: fc.transfer(A, "7001", v), "context", EVERYTHING),
    "inline arg": (lambda v: fc.transfer_inline(A, [("bridge", f"user/{v}")]), "bridge", EVERYTHING),
    "inline app": (lambda v: fc.transfer_inline(A, [(v, "")]), "app", EVERYTHING),
    "dtmf": (lambda v: fc.send_dtmf(A, v), "digits", EVERYTHING),
    "broadcast": (lambda v: fc.broadcast(A, f"/tmp/{v}"), "file", (*UNPRINTABLE, *STRUCTURAL)),
    "record": (lambda v: fc.record_start(A, f"/rec/{v}"), "path", (*UNPRINTABLE, *STRUCTURAL)),
    "stream url": (lambda v: fc.stream_start(A, f"ws://h/{v}", 8000, "{}"), "url", EVERYTHING),
    "send_text": (lambda v: fc.stream_send_text(A, "{" + v + "}"), "text", tuple(UNPRINTABLE)),  # JSON
    "originate destination": (lambda v: originate("user", v), "destination", EVERYTHING),
    "originate context": (lambda v: originate("extension", "7", context=v), "context", EVERYTHING),
    "originate gateway": (lambda v: originate("gateway", "7", gateway=v), "gateway", EVERYTHING),
    "originate domain": (lambda v: originate("user", "7", domain="d" + v), "domain", EVERYTHING),
    "originate value": (lambda v: originate("user", "7", variables={"k": v}), "k", EVERYTHING),
    "originate name": (lambda v: originate("user", "7", variables={"k" + v: "1"}), "variables", EVERYTHING),
    "originate caller": (
        lambda v: originate("user", "7", caller_id_name=v),
        "origination_caller_id_name",
        EVERYTHING,
    ),
    "flush": (lambda v: fc.flush_inbound_reg(f"u{v}@d"), "address", EVERYTHING),
}
CASES = [(name, value) for name, (_, _, refused) in BUILDERS.items() for value in refused]


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}-{v!r}" for n, v in CASES])
def test_each_argument_refuses_hostile_text(name: str, value: str) -> None:
    build, field, _ = BUILDERS[name]
    with pytest.raises(InvalidCommand) as info:
        build(value)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: fc.answer(A.upper().replace("-", "")), "uuid"),
        (lambda: fc.answer(A + "0"), "uuid"),
        (lambda: fc.answer(""), "uuid"),
        (lambda: fc.transfer(A, ""), "destination"),
        (lambda: fc.send_dtmf(A, ""), "digits"),
        (lambda: fc.kill(A, "normal_clearing"), "cause"),
        (lambda: fc.send_dtmf(A, "1" * 33), "digits"),
        (lambda: fc.broadcast(A, "system::reboot"), "file"),
        (lambda: fc.broadcast(A, "${base_dir}/x.wav"), "file"),
        (lambda: fc.stream_start(A, "http://h/s", 8000, "{}"), "url"),
        (lambda: fc.stream_start(A, "ws://h/" + "s" * 512, 8000, "{}"), "url"),
        (lambda: fc.stream_start(A, "ws://h/s", 24000, "{}"), "rate"),
        (lambda: fc.stream_start(A, "ws://h/s", 8000, "[1]"), "metadata"),
        (lambda: fc.stream_start(A, "ws://h/s", 8000, "{"), "metadata"),
        (lambda: fc.stream_start(A, "ws://h/s", 8000, '{"a":"\n"}'), "metadata"),
        (lambda: fc.stream_start(A, "ws://h/s", 8000, '{"a":"b"}\n'), "uuid_audio_stream"),
        (lambda: fc.stream_send_text(A, "x" * 4097), "text"),
        (lambda: fc.stream_heartbeat(A, 0), "seconds"),
        (lambda: fc.transfer_inline(A, []), "apps"),
        (lambda: fc.transfer_inline(A, [("bridge", "sofia/gw/1:2")]), "bridge"),
        (lambda: originate("loopback", "7"), "target"),  # type: ignore[arg-type]
        (lambda: originate("user", "7", caller_id_number="4000 x"), "origination_caller_id_number"),
        (lambda: fc.originate("user", "7", uuid="x", timeout_s=30), "uuid"),
        (lambda: fc.originate("user", "7", uuid=A, timeout_s=0), "timeout_s"),
        (lambda: fc.flush_inbound_reg("u@d", "in ternal"), "profile"),
        (lambda: Command("bgapi", ("x",)), "verb"),
        (lambda: Command("uuid_kill", ("a b",)), "uuid_kill"),
        (lambda: Command("status", (), "x\r\nevent plain ALL"), "status"),
    ],
)  # fmt: skip
def test_refusals_name_the_field(build: Callable[[], Command], field: str) -> None:
    with pytest.raises(InvalidCommand) as info:
        build()
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


WORDS = {
    "answer uuid": 2, "kill cause": 3, "bridge other": 3, "transfer destination": 5, "transfer context": 5,
    "inline arg": 4, "inline app": 4, "dtmf": 3, "broadcast": 4, "record": 4, "send_text": 4,
    "originate destination": 3, "originate context": 3, "originate gateway": 3, "originate domain": 3,
    "originate value": 3, "originate name": 3, "originate caller": 3, "flush": 6, "stream url": 7,
}  # fmt: skip


@given(name=st.sampled_from(sorted(WORDS)), value=st.text(max_size=40))
@example(name="dtmf", value="1\n")
@example(name="transfer destination", value="1000\n")
@example(name="originate value", value="x,origination_uuid=y")
def test_build_exactly_the_named_words_or_refuse(name: str, value: str) -> None:
    build, _, _ = BUILDERS[name]
    try:
        command = build(value)
    except InvalidCommand:
        return
    line = command.line
    assert line.isprintable()
    assert line.isascii()
    assert len(line.split(" ")) == WORDS[name]
    assert "{" not in line or command.verb in ("originate", "uuid_audio_stream")


@given(metadata=st.text(max_size=60))
def test_stream_metadata_is_one_json_object_without_control_characters(metadata: str) -> None:
    try:
        command = fc.stream_start(A, "ws://h/s", 8000, metadata)
    except InvalidCommand:
        return
    assert command.line.count("\n") == command.line.count("\r") == 0
    assert command.line.split(" ", 6)[6] == metadata
