"""Browser sign-in: a directory user's extension + password, or a one-time invite, for a short credential.

``POST /v1/webrtc/signin {extension, password}`` checks the password against the directory user of the
settings (``users:``, constant-time) and answers a random bearer credential with the scope ``webrtc``, bound
to that user, living ``janus.session_ttl_s``: it opens ``POST /v1/webrtc/session`` (the browser identity then
calls with the user's caller id, so the routes limited to that caller apply) and nothing else; the phone page
never holds an API token. Failed attempts are counted per client IP and per extension (``api.signin``); past
the limit the answer is 429 with ``Retry-After``, before any password is compared.

``POST /v1/webrtc/invites {extension}`` (scope ``admin``) mints a one-time code, ``/phone?invite=<code>``;
``POST /v1/webrtc/signin {invite}`` redeems it once for the same credential. Codes and credentials are kept
by SHA-256 digest (a dict lookup's timing says nothing about the secret) and only in memory: a restart ends
them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Self

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from controller.api.spec import ApiError, ApiSpec, Operation, Principal, Request
from controller.render.settings import SipUser
from controller.settings import Scope, SigninSettings

__all__ = ["AttemptLimit", "BrowserSignin", "add_signin_routes"]

_WEBRTC: Final[frozenset[Scope]] = frozenset({"webrtc"})


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class AttemptLimit:
    """At most ``limit`` failures per key in a sliding ``window_s``."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float]) -> None:
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, None when it may now."""
        failures = self._failures.get(key)
        if failures is None:
            return None
        now = self._clock()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures[0] + self.window_s - now if len(failures) >= self.limit else None

    def failed(self, key: str) -> None:
        """Count one failure of ``key``."""
        self._failures.setdefault(key, deque()).append(self._clock())


class SigninBody(BaseModel):
    """A directory user's extension and SIP password, or an invite code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    extension: str | None = Field(None, pattern=r"^[0-9]{2,10}$", description="the directory user")
    password: SecretStr | None = Field(None, max_length=256, description="the user's SIP password")
    invite: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{16,64}$", description="a one-time invite code")

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.invite is None) == (self.extension is None or self.password is None):
            raise ValueError("give extension and password, or invite")
        return self


class SigninCredential(BaseModel):
    """A bearer credential for ``POST /v1/webrtc/session`` (scope ``webrtc``), bound to one user."""

    token: str = Field(description="Authorization: Bearer <token>; scope webrtc only")
    extension: str = Field(description="the directory user it acts as")
    expires_at: datetime


class InviteBody(BaseModel):
    """Who the invite signs in as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    extension: str = Field(pattern=r"^[0-9]{2,10}$", description="a directory user")


class Invite(BaseModel):
    """A one-time invite: open ``url`` (relative to the controller) once."""

    invite: str
    url: str = Field(description="/phone?invite=<code>")
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _Grant:
    extension: str
    expires_at: float


class BrowserSignin:
    """Directory users' sign-ins, invites and the credentials they hand out."""

    def __init__(
        self,
        users: Mapping[str, SipUser],
        settings: SigninSettings,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users, self.settings, self.ttl_s, self._clock = users, settings, ttl_s, clock
        self.by_ip = AttemptLimit(settings.attempts, settings.window_s, clock)
        self.by_extension = AttemptLimit(settings.attempts, settings.window_s, clock)
        self._sessions: dict[bytes, _Grant] = {}
        self._invites: dict[bytes, _Grant] = {}

    def principal(self, token: str) -> Principal | None:
        """The signed-in user of a live credential (``ApiSpec.session_check``), else None."""
        grant = self._live(self._sessions, _digest(token))
        return None if grant is None else Principal(f"user {grant.extension}", _WEBRTC, grant.extension)

    def _live(self, grants: dict[bytes, _Grant], key: bytes) -> _Grant | None:
        now = self._clock()
        for stale in [k for k, g in grants.items() if g.expires_at <= now]:
            del grants[stale]
        return grants.get(key)

    def _grant(self, extension: str) -> SigninCredential:
        token = secrets.token_urlsafe(24)
        expires_at = self._clock() + self.ttl_s
        self._sessions[_digest(token)] = _Grant(extension, expires_at)
        return SigninCredential(
            token=token, extension=extension, expires_at=datetime.fromtimestamp(expires_at, UTC)
        )

    async def signin(self, req: Request) -> SigninCredential:
        body: SigninBody = req.body
        ip = req.http.remote or "?"
        keys = [(self.by_ip, ip), (self.by_extension, body.extension or "invite")]
        waits = [w for limit, key in keys if (w := limit.retry_after(key)) is not None]
        if waits:
            retry = max(1, int(max(waits) + 0.999))
            raise ApiError(
                429, f"too many failed sign-ins: retry in {retry} s", "Retry-After", retry_after=retry
            )
        extension = self._redeem(body.invite) if body.invite is not None else self._check(body)
        if extension is None:
            for limit, key in keys:
                limit.failed(key)
            field = "invite" if body.invite is not None else "password"
            raise ApiError(
                401, "unknown or used invite" if body.invite else "wrong extension or password", field
            )
        return self._grant(extension)

    def _check(self, body: SigninBody) -> str | None:
        if body.extension is None or body.password is None:
            return None
        user = self.users.get(body.extension)
        expected = user.secret() if user is not None else secrets.token_urlsafe(18)  # same work when unknown
        ok = hmac.compare_digest(body.password.get_secret_value().encode(), expected.encode())
        return body.extension if ok and user is not None else None

    def _redeem(self, code: str) -> str | None:
        key = _digest(code)
        grant = self._live(self._invites, key)
        if grant is None:
            return None
        del self._invites[key]  # once
        return grant.extension

    async def invite(self, req: Request) -> Invite:
        body: InviteBody = req.body
        if body.extension not in self.users:
            raise ApiError(404, f"no directory user {body.extension}", "extension")
        code = secrets.token_urlsafe(24)
        expires_at = self._clock() + self.settings.invite_ttl_s
        self._invites[_digest(code)] = _Grant(body.extension, expires_at)
        return Invite(
            invite=code, url=f"/phone?invite={code}", expires_at=datetime.fromtimestamp(expires_at, UTC)
        )


def add_signin_routes(app: web.Application, spec: ApiSpec, signin: BrowserSignin) -> None:
    """Mount ``POST /v1/webrtc/signin`` (open, rate-limited) and ``POST /v1/webrtc/invites`` (admin)."""
    spec.session_check = signin.principal
    spec.add(
        app,
        Operation(
            "POST",
            "/v1/webrtc/signin",
            "Sign a browser in as a directory user (or by invite): a short-lived webrtc credential",
            signin.signin,
            body=SigninBody,
            response=SigninCredential,
            status=201,
            auth=False,
            tag="webrtc",
            errors=(401, 429),
        ),
    )
    spec.add(
        app,
        Operation(
            "POST",
            "/v1/webrtc/invites",
            "Mint a one-time invite link that signs a browser in as a directory user",
            signin.invite,
            body=InviteBody,
            response=Invite,
            status=201,
            tag="webrtc",
            errors=(404,),
            scope="admin",
        ),
    )
