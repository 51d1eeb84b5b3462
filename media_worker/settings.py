"""The media worker's settings: its own section (``media_worker:``) and the agents it runs (``agents:``).

A worker reads these two sections of the one ``switchyard.yaml`` through :mod:`switchyard.settings`
(:func:`load_worker_settings`) and nothing of the controller's; the controller composes the same types into
its ``Settings``, so ``switchyard check-config`` checks them too.

Defaults are the seeds the design names: VAD threshold 0.6 and a 500 ms end-of-turn silence for SIP/PSTN
legs, 0.5 / 300 ms for WebRTC legs; 512-sample (32 ms) Silero windows at 16 kHz scored in one batch per tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import Field, HttpUrl, PlainValidator, SecretStr, SerializeAsAny, model_validator

from media_worker.vad.model import VadSettings, parse_vad
from media_worker.voice.settings import Agents, default_agents
from switchyard.httpserver import HttpLimits
from switchyard.sections import WORKER_SECTIONS
from switchyard.settings import SettingsModel, load


class TurnProfile(SettingsModel):
    """VAD and turn-taking thresholds for one kind of leg."""

    threshold: float = Field(gt=0, lt=1, description="speech probability that starts speech")
    release: float = Field(0.15, gt=0, lt=1, description="hysteresis: speech ends below threshold - release")
    min_speech_ms: int = Field(96, ge=32, description="speech shorter than this is not a start")
    min_silence_ms: int = Field(160, ge=32, description="silence shorter than this does not end speech")
    turn_silence_ms: int = Field(gt=0, description="silence after speech that ends the caller's turn")
    snr_db: float = Field(8.0, ge=0, description="speech must be this far above the call's noise floor")
    noise_adapt: float = Field(
        0.15, ge=0, lt=1, description="threshold raise at a loud (-30 dBFS) noise floor, scaled linearly"
    )
    max_turn_ms: int = Field(30_000, gt=0, description="a turn longer than this is cut and handed over")


class BargeInSettings(SettingsModel):
    """When caller speech interrupts the agent."""

    enabled: bool = True
    echo_return_loss_db: float = Field(
        12.0, ge=0, description="assumed loss of the agent's own voice coming back (phone hybrid/handset)"
    )


VadChoice = Annotated[SerializeAsAny[VadSettings], PlainValidator(parse_vad)]
"""The ``vad:`` block: the settings of the VAD provider it names (Silero when it names none)."""


class WorkerSettings(SettingsModel):
    """One media worker process (the ``media_worker:`` section)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    worker_id: str = Field(
        "worker-1", pattern=r"^[A-Za-z0-9_.-]+$", description="'auto': the host name (a compose replica's)"
    )
    advertise_url: str | None = Field(None, description="ws:// base the controller streams to")
    controller_url: HttpUrl | None = Field(None, description="where the worker registers and heartbeats")
    controller_token: SecretStr | None = Field(None, description="bearer token for the controller's API")
    heartbeat_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="between beats to the controller, which moves a call whose worker falls silent for "
        "worker_pool.liveness_s: keep two beats within it",
    )
    stream_secret: SecretStr | None = Field(
        None, description="HMAC key of stream tokens, shared with the controller (none: refuse every stream)"
    )
    stream_secret_file: Path | None = Field(None, description="a file holding stream_secret")
    capacity: int = Field(200, ge=1, description="streams this worker accepts")
    metadata_timeout_s: float = Field(5.0, gt=0, description="first text frame must arrive within this")
    max_connections: int = Field(
        256, ge=1, description="open stream sockets, sessions or not yet (more are refused with 503)"
    )
    idle_timeout_s: float = Field(
        10.0, gt=0, description="a stream with no frame (audio, text or ping) for this long is closed"
    )
    liveness_s: float = Field(
        1.5,
        gt=1.0,
        description="a stream whose peer has pinged (STREAM_HEART_BEAT=1, set by the controller) is "
        "closed after this long with neither a frame nor a ping: FreeSWITCH's side is gone",
    )
    max_stream_s: float = Field(4 * 3600.0, gt=0, description="a stream open this long is closed")
    max_frame_bytes: int = Field(
        16_000, ge=320, description="larger binary frames close the stream (100 ms of 16 kHz stereo = 6400)"
    )
    chunk_ms: int = Field(1000, ge=100, le=1000, description="longest streamAudio message sent back")
    inference_threads: int = Field(
        2, ge=1, le=64, description="threads running ASR/TTS models, off the event loop"
    )
    speech_cache_bytes: int = Field(
        16 * 1024 * 1024,
        ge=0,
        description="speech kept per TTS configuration, so words said on many calls (greetings, reprompts, "
        "scripted answers) are synthesized once (16 MiB: about 8 minutes of 16 kHz audio; 0 = off)",
    )
    echo_unknown_agents: bool = Field(
        False,
        description="streams naming an agent not in agents: get the echo pipeline (tests), else refused",
    )
    vad: VadChoice = Field(default_factory=lambda: parse_vad({}))
    sip: TurnProfile = TurnProfile(threshold=0.6, turn_silence_ms=500)
    webrtc: TurnProfile = TurnProfile(threshold=0.5, turn_silence_ms=300)
    barge_in: BargeInSettings = BargeInSettings()
    http: HttpLimits = Field(
        HttpLimits(), description="request time and connection limits of the worker's HTTP server"
    )

    @model_validator(mode="after")
    def _token_with_controller(self) -> WorkerSettings:
        if self.controller_url is not None and self.controller_token is None:
            raise ValueError(
                "controller_token is required with controller_url (the API needs a bearer token)"
            )
        if self.stream_secret is not None and self.stream_secret_file is not None:
            raise ValueError("give at most one of stream_secret or stream_secret_file")
        if self.stream_secret is not None and len(self.stream_secret.get_secret_value()) < 16:
            raise ValueError("stream_secret: at least 16 characters")
        if self.http.max_connections <= self.max_connections:
            raise ValueError(
                "http.max_connections must exceed max_connections (the stream sockets), leaving room for "
                "/healthz and /metrics"
            )
        return self

    def stream_key(self) -> bytes | None:
        """The stream tokens' HMAC key (``stream_secret`` or the file's stripped text); ``None``: unset.

        Raises:
            ValueError: the file cannot be read or holds fewer than 16 characters.
        """
        if self.stream_secret is not None:
            return self.stream_secret.get_secret_value().encode()
        if self.stream_secret_file is None:
            return None
        try:
            text = self.stream_secret_file.read_text().strip()
        except OSError as exc:
            raise ValueError(f"media_worker.stream_secret_file: {exc}") from exc
        if len(text) < 16:
            raise ValueError(f"media_worker.stream_secret_file: {self.stream_secret_file} is too short")
        return text.encode()


class WorkerProcessSettings(SettingsModel):
    """All a media worker process reads of the settings file."""

    media_worker: WorkerSettings = Field(default_factory=WorkerSettings)
    agents: Agents = Field(default_factory=default_agents)


def load_worker_settings(environ: Mapping[str, str], path: Path | None = None) -> WorkerProcessSettings:
    """The worker's sections of the YAML file (``SWITCHYARD_CONFIG``) with the environment's overrides.

    Raises:
        SettingsError: the file is unreadable or the settings are invalid (field path + reason).
    """
    return load(WorkerProcessSettings, environ, path, WORKER_SECTIONS)
