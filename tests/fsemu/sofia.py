"""An inbound SIP call on profile ``internal`` as SESSION 2 of esl_inbound_session.txt shows it.

The channel variables are the ones sofia sets for a registered user of the default configuration (the
capture's user 1000 calling 7102 with SIPp), parameterised by caller, destination, domain, codec and ptime.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fsemu.apps import Apps
from tests.fsemu.audio import EchoSource, PcmSource
from tests.fsemu.channel import Codec, EmulatedChannel, new_profile
from tests.fsemu.core import SwitchCore, new_uuid, now_us
from tests.fsemu.wire import HeaderValue

CODECS = {"PCMA": (8000, 64000, 8), "PCMU": (8000, 64000, 0), "G722": (16000, 64000, 9)}


@dataclass
class InboundCall:
    """Parameters of an injected SIP call."""

    caller: str = "1000"
    destination: str = "7102"
    codec: str = "PCMA"
    rate: int = 8000
    ptime_ms: int = 20
    audio: Path | None = None
    user_agent: str = "SIPp"
    sip_domain: str = "127.0.0.1"
    variables: dict[str, str] = field(default_factory=dict)
    echo_db: float | None = None  # line echo of what the channel plays, mixed into what it sends


def _remote_sdp(call: InboundCall) -> str:
    """The caller's offer (SIPp's, as captured)."""
    d, pt = call.sip_domain, CODECS.get(call.codec, (8000, 64000, 8))[2]
    return (
        f"v=0\r\no=user1 53655765 2353687637 IN IP4 {d}\r\ns=-\r\nc=IN IP4 {d}\r\nt=0 0\r\n"
        f"m=audio 6000 RTP/AVP {pt} 101\r\na=rtpmap:{pt} {call.codec}/{call.rate}\r\n"
        f"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
    )


def _create_vars(
    ch: EmulatedChannel, call: InboundCall, core: SwitchCore, session_id: int
) -> list[tuple[str, HeaderValue]]:
    c, d, ident = call.caller, call.sip_domain, core.identity
    stamp = ch.times.created
    tag = f"{random.randrange(10**5)}SIPpTag01{random.randrange(10)}"
    call_id = f"{random.randrange(1, 10**6)}-{random.randrange(10**5)}@{d}"
    sdp = _remote_sdp(call)
    secs = stamp // 1_000_000
    return [
        ("direction", "inbound"), ("uuid", ch.uuid), ("call_uuid", ch.uuid), ("session_id", str(session_id)),
        ("sip_from_user", c), ("sip_from_uri", f"{c}@{d}"), ("sip_from_host", d),
        ("video_media_flow", "disabled"), ("audio_media_flow", "disabled"), ("text_media_flow", "disabled"),
        ("channel_name", ch.name), ("sip_call_id", call_id), ("sip_local_network_addr", d),
        ("sip_network_ip", "127.0.0.1"), ("sip_network_port", "5070"), ("sip_invite_stamp", str(stamp)),
        ("sip_received_ip", "127.0.0.1"), ("sip_received_port", "5070"), ("sip_via_protocol", "udp"),
        ("sip_authorized", "true"), ("Event-Name", "REQUEST_PARAMS"), ("Core-UUID", ident.core_uuid),
        ("FreeSWITCH-Hostname", ident.hostname), ("FreeSWITCH-Switchname", ident.switchname),
        ("FreeSWITCH-IPv4", ident.ipv4), ("FreeSWITCH-IPv6", ident.ipv6),
        ("Event-Date-Local", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(secs))),
        ("Event-Date-GMT", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(secs))),
        ("Event-Date-Timestamp", str(stamp)), ("Event-Calling-File", "sofia.c"),
        ("Event-Calling-Function", "sofia_handle_sip_i_invite"), ("Event-Calling-Line-Number", "10723"),
        ("Event-Sequence", str(core.sequence)), ("sip_number_alias", c), ("sip_auth_username", c),
        ("sip_auth_realm", d), ("number_alias", c), ("requested_user_name", c), ("requested_domain_name", d),
        ("record_stereo", "true"), ("default_gateway", "example.com"), ("default_areacode", "918"),
        ("transfer_fallback_extension", "operator"), ("toll_allow", "domestic,international,local"),
        ("accountcode", c), ("user_context", "default"), ("effective_caller_id_name", f"Extension {c}"),
        ("effective_caller_id_number", c), ("outbound_caller_id_name", "FreeSWITCH"),
        ("outbound_caller_id_number", "0000000000"), ("callgroup", "techsupport"), ("user_name", c),
        ("domain_name", d), ("sip_from_user_stripped", c), ("sip_from_tag", tag),
        ("sofia_profile_name", "internal"), ("sofia_profile_url", f"sip:mod_sofia@{d}:5060"),
        ("recovery_profile_name", "internal"), ("sip_full_via", f"SIP/2.0/UDP {d}:5070;branch=z9hG4bK-1-1-4"),
        ("sip_full_from", f"<sip:{c}@{d}>;tag={tag}"), ("sip_full_to", f"<sip:{call.destination}@{d}:5060>"),
        ("sip_req_user", call.destination), ("sip_req_port", "5060"),
        ("sip_req_uri", f"{call.destination}@{d}:5060"), ("sip_req_host", d),
        ("sip_to_user", call.destination),
        ("sip_to_port", "5060"), ("sip_to_uri", f"{call.destination}@{d}:5060"), ("sip_to_host", d),
        ("sip_contact_user", c), ("sip_contact_port", "5070"), ("sip_contact_uri", f"{c}@{d}:5070"),
        ("sip_contact_host", d), ("rtp_use_codec_string", "OPUS,G722,PCMU,PCMA,H264,VP8"),
        ("sip_user_agent", call.user_agent), ("sip_via_host", d), ("sip_via_port", "5070"),
        ("max_forwards", "70"), ("presence_id", f"{c}@{d}"), ("switch_r_sdp", sdp),
        ("ep_codec_string", f"CORE_PCM_MODULE.{call.codec}@{call.rate}h@20i@64000b"),
        ("endpoint_disposition", "DELAYED NEGOTIATION"),
    ]  # fmt: skip


def _media_vars(ch: EmulatedChannel, call: InboundCall) -> list[tuple[str, HeaderValue]]:
    pt = str(CODECS.get(call.codec, (8000, 64000, 8))[2])
    name, rate = call.codec, str(call.rate)
    return [
        ("rtp_use_codec_string", ch.get_var("rtp_use_codec_string") or "OPUS,G722,PCMU,PCMA,H264,VP8"),
        ("remote_video_media_flow", "inactive"), ("remote_text_media_flow", "inactive"),
        ("remote_audio_media_flow", "sendrecv"), ("audio_media_flow", "sendrecv"), ("rtp_audio_recv_pt", pt),
        ("rtp_use_codec_name", name), ("rtp_use_codec_rate", rate), ("rtp_use_codec_ptime", "20"),
        ("rtp_use_codec_channels", "1"), ("rtp_last_audio_codec_string", f"{name}@{rate}h@20i@1c"),
        ("read_codec", name), ("original_read_codec", name), ("read_rate", rate),
        ("original_read_rate", rate),
        ("write_codec", name), ("write_rate", rate), ("dtmf_type", "rfc2833"),
        ("local_media_ip", "127.0.0.1"),
        ("local_media_port", str(random.randrange(16384, 32768, 2))), ("advertised_media_ip", "127.0.0.1"),
        ("rtp_use_timer_name", "soft"), ("rtp_use_pt", pt), ("rtp_use_ssrc", str(random.randrange(2**32))),
        ("rtp_2833_send_payload", "101"), ("rtp_2833_recv_payload", "101"), ("remote_media_ip", "127.0.0.1"),
        ("remote_media_port", "6000"), ("endpoint_disposition", "EARLY MEDIA"),
    ]  # fmt: skip


class Sofia:
    """Creates inbound SIP channels and handles their media state (pre-answer, answer)."""

    def __init__(self, core: SwitchCore, apps: Apps) -> None:
        self.core = core
        self.apps = apps
        self.calls: dict[str, InboundCall] = {}

    def create(self, call: InboundCall, session_id: int) -> EmulatedChannel:
        """Create the channel and fire CHANNEL_CREATE."""
        name = f"sofia/internal/{call.caller}@{call.sip_domain}"
        ch = EmulatedChannel(uuid=new_uuid(), name=name, direction="inbound", kind="sofia")
        ch.times.created = now_us()
        ch.hit_dialplan = True
        ch.presence_id = f"{call.caller}@{call.sip_domain}"
        ch.state, ch.state_number = "CS_INIT", 2
        ch.profile = new_profile(
            ch.uuid, name, ch.times.created, Direction="inbound", **{"Logical-Direction": "inbound"},
            Username=call.caller, Dialplan="XML",
            **{"Caller-ID-Name": call.caller, "Caller-ID-Number": call.caller},
            **{"Orig-Caller-ID-Name": call.caller, "Orig-Caller-ID-Number": call.caller},
            **{"Network-Addr": "127.0.0.1", "ANI": call.caller, "Destination-Number": call.destination},
            Source="mod_sofia", Context="default",
        )  # fmt: skip
        ch.set_vars(_create_vars(ch, call, self.core, session_id))
        ch.set_vars(list(call.variables.items()))
        ch.audio_source = PcmSource.from_wav(call.audio) if call.audio else None
        if call.echo_db is not None:
            ch.audio_source = EchoSource(ch.audio_source, call.echo_db)
        self.calls[ch.uuid] = call
        self.core.add_channel(ch)
        self.core.fire_channel(ch, "CHANNEL_CREATE")
        return ch

    def pre_answer(self, ch: EmulatedChannel) -> None:
        """Early media: codecs negotiated, CHANNEL_PROGRESS_MEDIA."""
        if ch.pre_answered or ch.answered:
            return
        call = self.calls[ch.uuid]
        rate, bit_rate, _ = CODECS.get(call.codec, (call.rate, 64000, 8))
        ch.read_codec = ch.write_codec = Codec(call.codec, call.rate or rate, bit_rate, 20)
        ch.set_vars(_media_vars(ch, call))
        ch.pre_answered = True
        ch.answer_state = "early"
        stamp = now_us()
        ch.times.progress_media = stamp
        if ch.profile is not None:
            ch.profile["Channel-Progress-Media-Time"] = str(stamp)
        self.core.fire_channel(ch, "CHANNEL_PROGRESS_MEDIA")
        self.apps.set_callstate(ch, "EARLY")

    def answer(self, ch: EmulatedChannel) -> None:
        """Answer: CHANNEL_ANSWER, CALLSTATE ACTIVE; then the caller's real ptime takes effect."""
        if ch.answered:
            return
        self.pre_answer(ch)
        call = self.calls[ch.uuid]
        port = ch.get_var("local_media_port") or "0"
        pt = str(CODECS.get(call.codec, (8000, 64000, 8))[2])
        sdp = (
            "v=0\r\no=FreeSWITCH 1795185547 1795185548 IN IP4 127.0.0.1\r\ns=FreeSWITCH\r\n"
            "c=IN IP4 127.0.0.1\r\n"
            f"t=0 0\r\nm=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {call.codec}/{call.rate}\r\n"
            f"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
        )
        ch.set_var("rtp_local_sdp_str", sdp)
        self.apps.mark_answered(ch)
        self._after_answer(ch, call)

    def _after_answer(self, ch: EmulatedChannel, call: InboundCall) -> None:
        """The ACK and first RTP after 200 OK: dialog variables re-set, then the caller's real ptime."""
        tag, dom = "ye0jeFvDHgtmB", call.sip_domain
        ch.set_vars([("endpoint_disposition", "ANSWER"), ("sip_to_tag", tag)])
        # Re-set with unchanged values: each moves to the end of the variable list (capture S2, ::connect).
        ch.set_var("sip_from_tag", ch.get_var("sip_from_tag"))
        ch.set_var("sip_cseq", "2")
        ch.set_var("sip_call_id", ch.get_var("sip_call_id"))
        ch.set_var("sip_full_via", f"SIP/2.0/UDP {dom}:5070;branch=z9hG4bK-1-1-9")
        ch.set_var("sip_full_from", ch.get_var("sip_full_from"))
        ch.set_var("sip_full_to", f"<sip:{call.destination}@{dom}:5060>;tag={tag}")
        if call.ptime_ms != 20:
            self.set_ptime(ch, call.ptime_ms)

    def set_ptime(self, ch: EmulatedChannel, ptime_ms: int) -> None:
        """The caller's packetisation changes (FreeSWITCH re-inits the codec: media-bug reads follow)."""
        call = self.calls[ch.uuid]
        name, rate = call.codec, str(call.rate)
        ch.set_var("rtp_h_X-Broken-PTIME", f"Adv=20;Sent={ptime_ms}")
        ch.set_vars(
            [
                ("rtp_use_codec_name", name),
                ("rtp_use_codec_rate", rate),
                ("rtp_use_codec_ptime", str(ptime_ms)),
            ]
        )
        ch.set_vars(
            [
                ("rtp_use_codec_channels", "1"),
                ("rtp_last_audio_codec_string", f"{name}@{rate}h@{ptime_ms}i@1c"),
            ]
        )
        ch.set_vars([("write_codec", name), ("write_rate", rate)])
        if ch.read_codec is not None:
            codec = ch.read_codec
            ch.read_codec = Codec(codec.name, codec.rate, codec.bit_rate, ptime_ms)
