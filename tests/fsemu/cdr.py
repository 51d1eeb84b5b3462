"""Variables FreeSWITCH adds at CHANNEL_HANGUP_COMPLETE (switch_core_state_machine.c reporting state)."""

from __future__ import annotations

import time

from tests.fsemu.channel import Q850, ChannelTimes, EmulatedChannel
from tests.fsemu.wire import HeaderValue


def _stamp(us: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(us // 1_000_000))


def _durations(name: str, start: int, end: int) -> list[tuple[str, str]]:
    span = max(0, end - start) if start else 0
    return [
        (f"{name}sec", str(span // 1_000_000)),
        (f"{name}msec", str(span // 1000)),
        (f"{name}usec", str(span)),
    ]


def cdr_variables(ch: EmulatedChannel, times: ChannelTimes, digits: str) -> list[tuple[str, HeaderValue]]:
    """The CDR variables in the order of the captures (loopback and sofia legs)."""
    cause = ch.hangup_cause or "NORMAL_CLEARING"
    out: list[tuple[str, HeaderValue]] = [
        ("hangup_cause", cause),
        ("hangup_cause_q850", str(Q850.get(cause, 16))),
        ("digits_dialed", digits or "none"),
        ("start_stamp", _stamp(times.created)),
        ("profile_start_stamp", _stamp(times.created)),
    ]
    if times.answered:
        out.append(("answer_stamp", _stamp(times.answered)))
    if times.bridged:
        out.append(("bridge_stamp", _stamp(times.bridged)))
    if times.progress_media:
        out.append(("progress_media_stamp", _stamp(times.progress_media)))
    out.append(("end_stamp", _stamp(times.hangup)))
    for label, us in (
        ("start", times.created), ("profile_start", times.created), ("answer", times.answered),
        ("bridge", times.bridged), ("last_hold", 0), ("hold_accum", None), ("resurrect", 0), ("progress", 0),
        ("progress_media", times.progress_media), ("end", times.hangup),
    ):  # fmt: skip
        if us is None:
            out += [("hold_accum_seconds", "0"), ("hold_accum_usec", "0"), ("hold_accum_ms", "0")]
            continue
        out += [(f"{label}_epoch", str(us // 1_000_000)), (f"{label}_uepoch", str(us))]
    out += _app_and_durations(ch, times)
    return out


def _app_and_durations(ch: EmulatedChannel, times: ChannelTimes) -> list[tuple[str, HeaderValue]]:
    out: list[tuple[str, HeaderValue]] = []
    app = ch.get_var("current_application")
    if app:
        out.append(("last_app", app))
    arg = ch.get_var("current_application_data")
    if arg:
        out.append(("last_arg", arg))
    out.append(("caller_id", _caller_id(ch)))
    total = max(0, times.hangup - times.created)
    bill = max(0, times.hangup - times.answered) if times.answered else 0
    answer = max(0, times.answered - times.created) if times.answered else 0
    pmedia = max(0, times.progress_media - times.created) if times.progress_media else 0
    out += [("duration", str(total // 1_000_000)), ("billsec", str(bill // 1_000_000))]
    out += [
        ("progresssec", "0"),
        ("answersec", str(answer // 1_000_000)),
        ("waitsec", str(answer // 1_000_000)),
    ]
    out += [("progress_mediasec", str(pmedia // 1_000_000)), ("flow_billsec", str(total // 1_000_000))]
    out += [("mduration", str(total // 1000)), ("billmsec", str(bill // 1000)), ("progressmsec", "0")]
    out += [("answermsec", str(answer // 1000)), ("waitmsec", str(answer // 1000))]
    out += [("progress_mediamsec", str(pmedia // 1000)), ("flow_billmsec", str(total // 1000))]
    out += [("uduration", str(total)), ("billusec", str(bill)), ("progressusec", "0")]
    out += [("answerusec", str(answer)), ("waitusec", str(answer))]
    out += [("progress_mediausec", str(pmedia)), ("flow_billusec", str(total))]
    return out


def _caller_id(ch: EmulatedChannel) -> str:
    profile = ch.profile or {}
    name = profile.get("Caller-ID-Name", "")
    number = profile.get("Caller-ID-Number", "")
    return f'"{name}" <{number}>' if name else number


def rtp_stats(in_packets: int, out_packets: int, payload: int) -> list[tuple[str, HeaderValue]]:
    """The rtp_audio_* statistics a sofia leg reports at hangup (shape as captured)."""
    out: list[tuple[str, HeaderValue]] = [
        ("rtp_audio_in_raw_bytes", str(in_packets * payload)),
        ("rtp_audio_in_media_bytes", str(in_packets * payload)),
        ("rtp_audio_in_packet_count", str(in_packets)),
        ("rtp_audio_in_media_packet_count", str(in_packets)),
    ]
    for key in ("skip", "jitter", "dtmf", "cng", "flush"):
        out.append((f"rtp_audio_in_{key}_packet_count", "0"))
    out += [
        ("rtp_audio_in_largest_jb_size", "0"), ("rtp_audio_in_jitter_min_variance", "0.00"),
        ("rtp_audio_in_jitter_max_variance", "0.00"), ("rtp_audio_in_jitter_loss_rate", "0.00"),
        ("rtp_audio_in_jitter_burst_rate", "0.00"), ("rtp_audio_in_mean_interval", "0.00"),
        ("rtp_audio_in_flaw_total", "0"), ("rtp_audio_in_quality_percentage", "100.00"),
        ("rtp_audio_in_mos", "4.50"), ("rtp_audio_out_raw_bytes", str(out_packets * payload)),
        ("rtp_audio_out_media_bytes", str(out_packets * payload)),
        ("rtp_audio_out_packet_count", str(out_packets)),
        ("rtp_audio_out_media_packet_count", str(out_packets)),
        ("rtp_audio_out_skip_packet_count", "0"), ("rtp_audio_out_dtmf_packet_count", "0"),
        ("rtp_audio_out_cng_packet_count", "0"), ("rtp_audio_rtcp_packet_count", "0"),
        ("rtp_audio_rtcp_octet_count", "0"),
    ]  # fmt: skip
    return out
