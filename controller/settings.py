"""Switchyard settings: one pydantic model, built once in ``main()`` and passed down by parts.

The file format, the ``SWITCHYARD_*`` overrides and the errors are :mod:`switchyard.settings`'s; this is the
root model of the whole file (the controller reads all of it but ``trunks``, and of ``users`` only what
the browser sign-in checks; ``render`` and ``check-config`` all of it). The media worker's sections
(``media_worker``, ``agents``) are its own types, composed here; the worker loads them without this module.
Secrets (the ESL password) have no default: they
come from the file, the environment or a ``*_file`` path, and a missing one fails at start with the field
path. Library code never reads ``os.environ``; ``load_settings`` receives it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Final, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from controller.calls.contexts import MAX_BASE_LENGTH
from controller.calls.routes import HANGUP_CAUSES, Route, parse_action
from controller.calls.speechfiles import FREESWITCH_TEMP_DIR, TempDir
from controller.calls.transfers import route_entry_errors
from controller.calls.variables import VARIABLE_NAME
from controller.freeswitch.backlog import MAX_BACKLOG_BYTES, MAX_BACKLOG_EVENTS
from controller.freeswitch.protocol import MAX_BODY_BYTES, MAX_HEADER_BYTES
from controller.janus.settings import JanusSettings
from controller.render.settings import (
    EventSocketSettings,
    LineTest,
    SipSettings,
    SipUser,
    Trunk,
    read_secret,
)
from media_worker.settings import WorkerSettings
from media_worker.voice.settings import Agents, default_agents
from switchyard.httpserver import HttpLimits
from switchyard.retry import BackoffSettings
from switchyard.sections import CONTROLLER_SECTIONS, SECTIONS
from switchyard.settings import SettingsError, SettingsModel, load, unique
from switchyard.tls import TlsFiles

__all__ = [
    "CONTROLLER_SECTIONS",
    "SCOPES",
    "ApiSettings",
    "ApiTlsSettings",
    "ApiToken",
    "BackoffSettings",
    "CallSettings",
    "CdrSettings",
    "ControlDeadlines",
    "Deadlines",
    "FreeSwitchNodeSettings",
    "IdempotencySettings",
    "Scope",
    "Settings",
    "SettingsError",
    "SigninSettings",
    "WorkerPoolSettings",
    "load_settings",
]


MIN_TOKEN_LENGTH: Final = 16
"""Shortest API token accepted (deploy/check-env asks the same of every secret)."""


class Deadlines(SettingsModel):
    """How long each ESL step may take, in seconds."""

    connect: float = Field(5.0, gt=0)
    auth: float = Field(5.0, gt=0)
    command: float = Field(10.0, gt=0, description="api and plain commands")
    bgapi: float = Field(120.0, gt=0, description="bgapi until its BACKGROUND_JOB (originate rings)")
    resync: float = Field(10.0, gt=0)
    close: float = Field(2.0, gt=0)


class FreeSwitchNodeSettings(SettingsModel):
    """One FreeSWITCH node reached over inbound ESL."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9_.-]+$")
    host: str = "127.0.0.1"
    port: int = Field(8021, ge=1, le=65535)
    password: SecretStr | None = None
    password_file: Path | None = None
    keepalive: float = Field(15.0, ge=0, description="seconds between liveness probes (0 = off)")
    event_backlog: int = Field(
        MAX_BACKLOG_EVENTS,
        gt=0,
        description="events held for the controller; at this many the node stops reading from FreeSWITCH "
        "until half are consumed (TCP backpressure: no event is dropped; controller.freeswitch.backlog)",
    )
    event_backlog_bytes: int = Field(
        MAX_BACKLOG_BYTES,
        ge=64 * 1024,
        description="wire bytes of the events held for the controller; at this many reading stops as for "
        "event_backlog (a node holds at most this, one read of 256 KiB and one partial frame)",
    )
    max_header_bytes: int = Field(
        MAX_HEADER_BYTES,
        ge=1024,
        description="longest ESL frame header block; a longer one is a protocol error: logged, the "
        "connection dropped, the node reconnects",
    )
    max_body_bytes: int = Field(
        MAX_BODY_BYTES,
        ge=64 * 1024,
        description="largest ESL frame body (Content-Length; show channels on a loaded node is the "
        "largest); a larger one is a protocol error, like max_header_bytes",
    )
    temp_dir: TempDir = Field(
        FREESWITCH_TEMP_DIR,
        description="FreeSWITCH's temp directory (its -temp option), where mod_audio_stream writes the "
        "worker's speech: the controller plays a ::play file only if it is that channel's, directly in it",
    )
    deadlines: Deadlines = Deadlines()
    backoff: BackoffSettings = BackoffSettings()

    @model_validator(mode="after")
    def _password_given(self) -> Self:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("give exactly one of password or password_file (no default password)")
        return self

    def secret(self) -> str:
        """The ESL password, read from ``password_file`` when that is how it was given.

        Raises:
            SettingsError: the password file cannot be read or is empty.
        """
        try:
            return read_secret(self.password, self.password_file, f"freeswitch.{self.name}.password_file")
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc


Scope = Literal["calls:read", "calls:write", "originate", "cdrs:read", "admin", "webrtc"]
SCOPES: Final[tuple[Scope, ...]] = ("calls:read", "calls:write", "originate", "cdrs:read", "admin", "webrtc")
"""What an API token may do (``controller.api.spec``: each operation requires one; ``admin`` implies all)."""


class ApiToken(SettingsModel):
    """One bearer token of the API: who holds it and what it may do."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="who holds it (logs, 403 reasons)")
    token: SecretStr
    scopes: tuple[Scope, ...] = Field(min_length=1, description="what it opens; admin implies every scope")


class SigninSettings(SettingsModel):
    """Browser sign-in (``controller.api.signin``): how many failures, and how long invites live."""

    attempts: int = Field(5, ge=1, description="failed sign-ins per client IP and per extension in window_s")
    window_s: float = Field(300.0, gt=0, description="sliding window of the failure count")
    invite_ttl_s: float = Field(86_400.0, gt=0, description="an unused invite expires after this long")


class ApiTlsSettings(TlsFiles):
    """The API's HTTPS listener (page, API, event feed), beside the plain one on ``api.host:api.port``,
    which the controller's own peers keep using on a private network (workers' heartbeats, Janus's events,
    FreeSWITCH's directory lookups, Prometheus)."""

    host: str | None = Field(None, description="address the HTTPS listener binds to (default: api.host)")
    port: int = Field(8443, ge=0, le=65535, description="its port (0: any free one, for tests)")


class IdempotencySettings(SettingsModel):
    """``Idempotency-Key`` on POST /v1/calls (``controller.api.idempotency``), kept on disk."""

    path: Path | None = Field(
        None,
        description="SQLite file of the keys, so a restart keeps them (default: idempotency.sqlite3 beside "
        "cdr.path)",
    )
    ttl_s: float = Field(86_400.0, gt=0, description="a key's first answer is replayed this long")
    max_keys: int = Field(10_000, ge=1, description="keys remembered at most (the oldest is forgotten)")
    wait_s: float = Field(
        330.0,
        gt=0,
        description="a retry while the first request runs waits this long for its answer, then gets 409 "
        "(default: beyond the longest originate, 300 s of ringing plus margins)",
    )


class ApiSettings(SettingsModel):
    """The controller's HTTP API.

    ``tokens`` are ``{name, token, scopes}`` entries; a plain string is accepted as a full-scope token
    (``scopes: [admin]``, named ``token-<index>``), the form of earlier settings files.
    """

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_feed_subscribers: int = Field(100, ge=1, description="open /v1/events sockets (more get 503)")
    tokens: tuple[ApiToken, ...] = Field((), description="bearer tokens accepted by the API (none = closed)")
    worker_tokens: tuple[SecretStr, ...] = Field(
        (), description="bearer tokens that open only the media workers' POST /v1/workers/heartbeat"
    )
    signin: SigninSettings = SigninSettings()
    tls: ApiTlsSettings | None = Field(
        None, description="also serve the API over HTTPS (browsers' microphone needs a secure page)"
    )
    idempotency: IdempotencySettings = IdempotencySettings()
    http: HttpLimits = Field(
        HttpLimits(), description="request time and connection limits of the API server (both listeners)"
    )

    @field_validator("tokens", mode="before")
    @classmethod
    def _plain_tokens_are_admin(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        return [
            {"name": f"token-{i}", "token": item, "scopes": ["admin"]} if isinstance(item, str) else item
            for i, item in enumerate(value)
        ]

    @model_validator(mode="after")
    def _strong_tokens(self) -> Self:
        secrets = {
            "tokens": [t.token for t in self.tokens],
            "worker_tokens": list(self.worker_tokens),
        }
        for field, tokens in secrets.items():
            for i, token in enumerate(tokens):
                value = token.get_secret_value()
                if len(value) < MIN_TOKEN_LENGTH or value != "".join(value.split()):
                    raise ValueError(
                        f"{field}.{i}: a token needs at least {MIN_TOKEN_LENGTH} characters and no spaces"
                    )
        unique((t.name for t in self.tokens), "token name", "api.tokens")
        if self.http.max_connections <= self.max_feed_subscribers:
            raise ValueError(
                "http.max_connections must exceed max_feed_subscribers (each feed is a connection)"
            )
        return self

    @model_validator(mode="after")
    def _two_listeners(self) -> Self:
        if self.tls is not None and self.tls.port == self.port != 0:
            raise ValueError(f"tls.port: {self.port} is the plain listener's port (give each its own)")
        return self


class WorkerPoolSettings(SettingsModel):
    """How the controller uses the media workers."""

    missed_beats: int = Field(3, ge=1, description="a worker whose beats stop this many intervals is gone")
    suspect_s: float = Field(10.0, ge=0, description="a worker that failed a start is skipped this long")
    connect_timeout: float = Field(2.0, gt=0, description="start until mod_audio_stream::connect")
    max_attempts: int = Field(3, ge=1, description="workers tried per stream start")
    token_ttl_s: float = Field(
        30.0, gt=0, le=300, description="a stream start's token (media_worker.stream_secret) lasts this long"
    )
    wait_s: float = Field(
        3.0,
        ge=0,
        description="a stream start with no worker free waits this long for one to heartbeat in (after a "
        "controller restart the pool is empty until the workers' next beats)",
    )
    apology_prompt: str | None = Field(
        None,
        description="played while a call moves to another worker (a path or tone_stream:// on FreeSWITCH)",
    )
    liveness_s: float = Field(
        2.0,
        ge=0.5,
        le=60,
        description="a call streaming to a worker that froze (its beats stopped) or dropped the call (two "
        "beats without it) is moved within this long (0.5 s beats: media_worker.heartbeat_s)",
    )
    adopt_grace_s: float = Field(
        10.0,
        gt=0,
        description="after a restart, a stream found on a leg whose worker has not beaten within this long "
        "is moved to another worker (workers' beats resume within their backoff, at most 2 s)",
    )


class ControlDeadlines(SettingsModel):
    """How long a call-control operation waits for FreeSWITCH to confirm it, in seconds."""

    confirm: float = Field(5.0, gt=0, description="reply plus confirming event (answer, hangup, hold...)")
    originate_margin: float = Field(5.0, ge=0, description="added to an originate's ring timeout")
    originate_probe: float = Field(
        5.0,
        gt=0,
        description="an originate whose result was lost with the ESL connection waits this long for its "
        "leg's events before FreeSWITCH is asked (uuid_exists)",
    )


class CallSettings(SettingsModel):
    """Routing and control of calls."""

    routes: tuple[Route, ...] = Field((), description="tried in order; the first match wins")
    unknown_cause: str = Field("UNALLOCATED_NUMBER", description="hangup cause for unrouted destinations")
    context: str = Field(
        "switchyard",
        pattern=rf"^[A-Za-z0-9_.-]{{1,{MAX_BASE_LENGTH}}}$",
        description="dialplan context of desk users without outbound, and of originates to an extension "
        "and transfers that name none; the other dialing classes are <context>-pstn, -browser, -agent, "
        "-inbound (controller.calls.contexts)",
    )
    browser_outbound: bool = Field(
        False, description="browser users may dial the PSTN (the trunks' outbound rules)"
    )
    sip_domain: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9.-]+$",
        description="domain of SIP users (user/<ext>@<domain>); FreeSWITCH's default domain when unset",
    )
    recordings_dir: str = Field(
        "/var/lib/freeswitch/recordings",
        pattern=r"^/[A-Za-z0-9_./-]*$",
        description="where FreeSWITCH writes recordings (a path on the FreeSWITCH host)",
    )
    media_dirs: tuple[str, ...] = Field(
        ("/usr/share/freeswitch/sounds",),
        description="directories on the FreeSWITCH host whose files POST …/play may name (recordings_dir "
        "too)",
    )
    deadlines: ControlDeadlines = ControlDeadlines()
    api_variables: tuple[str, ...] = Field(
        (),
        description="channel variables POST /v1/calls may set besides the safe ones "
        "(controller.calls.variables.SAFE_VARIABLES): exact names, no wildcards",
    )

    @field_validator("api_variables")
    @classmethod
    def _exact_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.fullmatch(VARIABLE_NAME, name):
                raise ValueError(f"{name!r}: an exact variable name ([a-z][a-z0-9_]*), no wildcards")
        return value

    @model_validator(mode="after")
    def _distinct_route_names(self) -> Self:
        unique((route.name for route in self.routes if route.name), "route name", "routes")
        return self

    @model_validator(mode="after")
    def _absolute_media_dirs(self) -> Self:
        for i, path in enumerate(self.media_dirs):
            if not path.startswith("/") or any(part in ("..", ".") for part in path.split("/")):
                raise ValueError(f"media_dirs.{i}: {path!r} is not an absolute path without . or ..")
        return self

    @model_validator(mode="after")
    def _known_cause(self) -> Self:
        if self.unknown_cause not in HANGUP_CAUSES:
            raise ValueError(f"unknown_cause: {self.unknown_cause!r} is not a hangup cause")
        if self.context == "public":
            raise ValueError("context: 'public' is the trunks' context (rendered); choose another name")
        return self


class CdrSettings(SettingsModel):
    """Where call detail records are kept."""

    path: Path = Field(Path("var/cdrs.sqlite3"), description="SQLite database file (WAL mode)")
    busy_timeout_s: float = Field(5.0, ge=0, description="a write waits this long for another's lock")
    retry_initial_s: float = Field(0.05, gt=0, description="first wait before a failed write is retried")
    retry_max_s: float = Field(5.0, gt=0, description="longest wait between retries (doubling up to it)")
    surface_after: int = Field(
        3, ge=1, description="failed attempts of one write before it is an error (log, metric, /readyz)"
    )
    touch_every_s: float = Field(
        5.0, ge=0, description="open rows get last_seen_at this often (0: never); bounds an unseen end"
    )


class Settings(SettingsModel):
    """Everything Switchyard is configured with."""

    freeswitch: dict[str, FreeSwitchNodeSettings] = Field(
        default_factory=dict,
        description="FreeSWITCH nodes by name (lower case: environment names fold case); the controller "
        "needs at least one",
    )
    media_worker: WorkerSettings = Field(
        default_factory=WorkerSettings, description="a media worker process's own settings"
    )
    worker_pool: WorkerPoolSettings = WorkerPoolSettings()
    api: ApiSettings = ApiSettings()
    calls: CallSettings = CallSettings()
    cdr: CdrSettings = CdrSettings()
    agents: Agents = Field(default_factory=default_agents)
    sip: SipSettings = SipSettings()
    event_socket: EventSocketSettings = EventSocketSettings()
    users: tuple[SipUser, ...] = Field((), description="SIP users of FreeSWITCH's directory")
    line_tests: tuple[LineTest, ...] = Field(
        (), description="numbers FreeSWITCH answers itself with a tone (line checks, no controller)"
    )
    trunks: tuple[Trunk, ...] = Field(
        (), description="SIP trunks to the PSTN (gateways on the external profile)"
    )
    janus: JanusSettings = JanusSettings()

    @model_validator(mode="before")
    @classmethod
    def _name_nodes(cls, data: Any) -> Any:
        nodes = data.get("freeswitch") if isinstance(data, dict) else None
        if isinstance(nodes, dict):
            for name, node in nodes.items():
                if isinstance(node, dict):
                    node.setdefault("name", name)
        return data

    @model_validator(mode="after")
    def _names_match(self) -> Self:
        for key, node in self.freeswitch.items():
            if key != node.name:
                raise ValueError(f"freeswitch.{key}: name {node.name!r} differs from its key")
        unique([user.extension for user in self.users], "extension", "users")
        unique([test.number for test in self.line_tests], "number", "line_tests")
        unique([trunk.name for trunk in self.trunks], "name", "trunks")
        unique([did for trunk in self.trunks for did in trunk.dids], "DID", "trunks")
        return self

    @model_validator(mode="after")
    def _routes_name_agents(self) -> Self:
        """A route's ``agent <name>`` (action or fallback) must name an entry of ``agents``.

        ``agent $1`` takes its name from the call, so it cannot be checked here. Errors carry the route's
        field path (``calls.routes.0.action``), not the root's.
        """
        known = [agent.name for agent in self.agents]
        errors: list[InitErrorDetails] = []
        for i, route in enumerate(self.calls.routes):
            for field in ("action", "fallback"):
                text = getattr(route, field)
                action = parse_action(text) if text else None
                if action is None or action.kind != "agent" or "$" in action.arg or action.arg in known:
                    continue
                message = "agent {agent} is not in agents ({known})"
                context = {"agent": repr(action.arg), "known": ", ".join(known)}
                error = PydanticCustomError("unknown_agent", message, context)
                errors.append(InitErrorDetails(type=error, loc=("calls", "routes", i, field), input=text))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @model_validator(mode="after")
    def _transfers_name_routes(self) -> Self:
        """An agent's ``route:<name>`` transfer entry names a route that is not a reject."""
        errors = route_entry_errors(self.agents, self.calls.routes)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


def load_settings(
    environ: Mapping[str, str], path: Path | None = None, sections: Collection[str] | None = None
) -> Settings:
    """Build the settings from the YAML file and the environment (see :func:`switchyard.settings.load`).

    Args:
        environ: the process environment (``os.environ`` in ``main()``; a dict in tests).
        path: the YAML file; defaults to ``SWITCHYARD_CONFIG``, else ``switchyard.yaml`` if it exists.
        sections: the top-level sections this process reads (None: all). The others keep their defaults,
            so the ``${NAME}`` variables only they reference need not be in the process's environment.

    Raises:
        SettingsError: the file is unreadable or the settings are invalid (field path + reason).
    """
    return load(Settings, environ, path, SECTIONS if sections is None else sections)
