"""HTTP operations declared once: aiohttp route, request parsing, auth, errors and the OpenAPI 3.1 document.

Each ``Operation`` names its body, query and response pydantic models; ``ApiSpec.add`` registers the aiohttp
handler that parses and validates them (so a handler receives models and returns one), and ``document()``
builds the OpenAPI 3.1 document from the same models with pydantic's JSON Schema (draft 2020-12, the dialect
OpenAPI 3.1 uses). No schema is written by hand.

Every authenticated operation requires one scope (``Operation.scope``, shown in its OpenAPI ``security``); a
bearer token opens it when its ``scopes`` hold that scope or ``admin``. Bearers are the API tokens of the
settings (``api.tokens``), the media workers' tokens (heartbeat only) and the short-lived credentials of
signed-in browsers (``ApiSpec.session_check``, scope ``webrtc``).

Errors are JSON ``{"error": {"status", "field", "reason"}}``: 400 body not JSON, 401 missing/wrong bearer
token (or ``access_token`` query parameter, for operations that take one: browsers cannot set headers on a
WebSocket), 403 the token lacks the operation's scope, 404 unknown call/route, 409 conflicting state or
FreeSWITCH refused, 422 invalid field, 503 node down, 504 not confirmed in time. Operations marked
``idempotent`` take an ``Idempotency-Key`` header (``controller.api.idempotency``): 422 for a malformed
key or one reused with another body, 409 while the first request with it still runs.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic.json_schema import models_json_schema

from controller.api import idempotency as idem
from controller.calls.sender import (
    CallConflict,
    CallError,
    CommandRefused,
    NodeUnavailable,
    NotConfirmed,
    UnknownCall,
)
from controller.freeswitch.commands import InvalidCommand
from controller.settings import ApiToken, Scope

__all__ = [
    "ACCESS_SUBJECT",
    "PRINCIPAL",
    "ApiError",
    "ApiSpec",
    "ErrorBody",
    "Operation",
    "Principal",
    "Request",
]

ACCESS_SUBJECT = web.RequestKey("access_subject", str)
"""Who a valid ``?access_token=`` belongs to (absent when the bearer token was used)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a bearer token belongs to and what it may do."""

    name: str
    scopes: frozenset[Scope]
    user: str | None = None
    """The directory user (SIP extension) a signed-in browser acts as; None for API tokens."""

    def allows(self, scope: Scope) -> bool:
        """Whether this principal holds ``scope`` (``admin`` implies every scope)."""
        return scope in self.scopes or "admin" in self.scopes


PRINCIPAL = web.RequestKey("principal", Principal)
"""The principal of the bearer token that opened the operation (absent for ``?access_token=``)."""

_STATUS: Final[dict[type[CallError], int]] = {
    UnknownCall: 404,
    CallConflict: 409,
    CommandRefused: 409,
    NodeUnavailable: 503,
    NotConfirmed: 504,
}


class ErrorDetail(BaseModel):
    """What went wrong."""

    status: int = Field(description="the HTTP status code")
    field: str = Field(description="the request field at fault ('' when none)")
    reason: str = Field(description="why the request failed")


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """An error response: status, field, reason."""

    def __init__(self, status: int, reason: str, field: str = "", retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.field = status, reason, field
        self.retry_after = retry_after

    def response(self) -> web.Response:
        """The JSON error response."""
        body = ErrorBody(error=ErrorDetail(status=self.status, field=self.field, reason=self.reason))
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return web.Response(
            status=self.status, text=body.model_dump_json(), content_type="application/json", headers=headers
        )


def bearer(request: web.Request) -> str:
    """The ``Authorization: Bearer <token>`` value.

    Raises:
        ApiError: 401 when missing.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "missing bearer token", "Authorization")
    return given.strip()


def _any_match(given: bytes, tokens: Sequence[SecretStr]) -> bool:
    # Every token is compared (no early exit), each in constant time.
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given, token.get_secret_value().encode())
    return found


@dataclass(frozen=True)
class Request:
    """What a handler gets: the aiohttp request, path parameters, and the validated body / query."""

    http: web.Request
    path: dict[str, str]
    body: Any
    query: Any


Handler = Callable[[Request], Awaitable[BaseModel | web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    """One HTTP operation."""

    method: str
    path: str
    summary: str
    handler: Handler
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    scope: Scope = "admin"
    """The scope a bearer token needs (``admin`` implies every scope)."""
    tag: str = "calls"
    errors: tuple[int, ...] = ()
    media_types: tuple[str, ...] = ("application/json",)
    query_token: bool = False
    """Also accept ``?access_token=<token>`` (checked by ``ApiSpec.query_token_check``) for the header."""
    worker_token: bool = False
    """Also accept the media workers' bearer tokens (``ApiSpec.worker_tokens``), which open nothing else."""
    idempotent: bool = False
    """Honour an ``Idempotency-Key`` header (``controller.api.idempotency``, ``ApiSpec.idempotency``)."""
    statuses: tuple[int, ...] = ()
    """Other success statuses the handler may answer with (the same response body), e.g. 202."""


def _validation_error(exc: ValidationError, where: str) -> ApiError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or where
    return ApiError(422, f"{first['msg']}", field)


class ApiSpec:
    """The operations of the API and their OpenAPI document."""

    def __init__(
        self,
        title: str,
        version: str,
        tokens: Sequence[ApiToken],
        worker_tokens: Sequence[SecretStr] = (),
    ) -> None:
        self.title, self.version = title, version
        self.tokens = tuple(tokens)
        self.worker_tokens = tuple(worker_tokens)
        self.operations: list[Operation] = []
        self.session_check: Callable[[str], Principal | None] | None = None
        """The principal of a signed-in browser's bearer credential, else None (``controller.api.signin``)."""
        self.idempotency: idem.IdempotencyKeys | None = None
        """The keys of ``idempotent`` operations; None: the header is ignored."""
        self.query_token_check: Callable[[str], str | None] | None = None
        """The subject (e.g. a browser's SIP user) of a valid ``access_token`` of ``query_token`` operations,
        else None (no check: every one is refused). Handlers read it as ``request[ACCESS_SUBJECT]``."""

    def add(self, app: web.Application, op: Operation) -> None:
        """Register ``op`` on ``app``."""
        self.operations.append(op)
        app.router.add_route(op.method, op.path, self._wrap(op))

    def _wrap(self, op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                if op.auth:
                    self._authorize(op, request)
                body = await _parse_body(request, op.body) if op.body is not None else None
                query = _parse_query(request, op.query) if op.query is not None else None
                keys = self.idempotency if op.idempotent else None
                key = idem.request_key(request.headers) if keys is not None else None
                req = Request(request, dict(request.match_info), body, query)
                if keys is None or key is None:
                    return await self._respond(op, req)
                scope = (_holder(request), request.method, request.path, key)
                return await keys.respond(
                    scope, idem.fingerprint(body, query), lambda: self._respond(op, req)
                )
            except ApiError as exc:
                return exc.response()
            except idem.KeyRefused as exc:
                return ApiError(exc.status, exc.reason, idem.KEY_HEADER, exc.retry_after).response()

        return handle

    async def _respond(self, op: Operation, req: Request) -> web.StreamResponse:
        """Run the handler; its result or its error as the response."""
        try:
            result = await op.handler(req)
        except ApiError as exc:
            return exc.response()
        except CallError as exc:
            return ApiError(_STATUS.get(type(exc), 409), exc.reason, exc.field).response()
        except InvalidCommand as exc:  # a value the models let through but no command may carry
            return ApiError(422, exc.reason, exc.field).response()
        if isinstance(result, web.StreamResponse):
            return result
        return web.Response(status=op.status, text=result.model_dump_json(), content_type="application/json")

    def _authorize(self, op: Operation, request: web.Request) -> None:
        given = request.query.get("access_token") if op.query_token else None
        if given is None or "Authorization" in request.headers:
            principal = self._principal(op, bearer(request).encode())
            if not principal.allows(op.scope):
                raise ApiError(
                    403, f"the token {principal.name!r} lacks the scope {op.scope}", "Authorization"
                )
            request[PRINCIPAL] = principal
            return
        check = self.query_token_check
        subject = None if check is None else check(given)
        if subject is None:
            raise ApiError(401, "invalid or expired access_token", "access_token")
        request[ACCESS_SUBJECT] = subject

    def _principal(self, op: Operation, given: bytes) -> Principal:
        if op.worker_token and _any_match(given, self.worker_tokens):
            return Principal("worker", frozenset({op.scope}))
        found: ApiToken | None = None
        for token in self.tokens:  # every token is compared, each in constant time
            if hmac.compare_digest(given, token.token.get_secret_value().encode()):
                found = token
        if found is not None:
            return Principal(found.name, frozenset(found.scopes))
        session = None if self.session_check is None else self.session_check(given.decode(errors="replace"))
        if session is None:
            raise ApiError(401, "invalid bearer token", "Authorization")
        return session

    def document(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document."""
        models: list[tuple[type[BaseModel], Any]] = [(ErrorBody, "serialization")]
        for op in self.operations:
            if op.body is not None:
                models.append((op.body, "validation"))
            if op.response is not None:
                models.append((op.response, "serialization"))
            if op.query is not None:
                models.append((op.query, "validation"))
        refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            paths.setdefault(op.path, {})[op.method.lower()] = self._operation(op, refs, defs)
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "schemas": defs.get("$defs", {}),
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "access_token": {"type": "apiKey", "in": "query", "name": "access_token"},
                },
            },
        }

    def _operation(self, op: Operation, refs: dict[Any, Any], defs: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.method.lower() + re.sub(r"[^a-z0-9]+", "_", op.path.lower()).rstrip("_"),
            "tags": [op.tag],
            "parameters": _path_parameters(op.path)
            + _query_parameters(op, refs, defs)
            + ([idem.header_parameter()] if op.idempotent else []),
            "responses": _responses(op, refs),
        }
        if op.auth:
            scopes = [op.scope]
            doc["security"] = [{"bearer": scopes}] + ([{"access_token": scopes}] if op.query_token else [])
            doc["x-scope"] = op.scope
        if op.body is not None:
            schema = refs[(op.body, "validation")]
            doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        return doc


async def _parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ApiError(400, "body is not valid JSON", "body") from exc
        raise _validation_error(exc, "body") from exc


def _parse_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    query = request.query
    data = {key: query.getone(key) for key in query}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, "query") from exc


def _holder(request: web.Request) -> str:
    """Whose ``Idempotency-Key`` this is: the bearer token's name, else the access token's subject."""
    principal = request.get(PRINCIPAL)
    return f"token:{principal.name}" if principal is not None else f"subject:{request.get(ACCESS_SUBJECT)}"


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def _query_parameters(op: Operation, refs: dict[Any, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    if op.query is None:
        return []
    ref = refs[(op.query, "validation")]["$ref"].rsplit("/", 1)[-1]
    schema = defs["$defs"][ref]
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _responses(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}}
    responses: dict[str, Any] = {}
    if op.response is not None:
        schema = refs[(op.response, "serialization")]
        content = {
            media: {"schema": schema} if media == "application/json" else {"schema": {"type": "string"}}
            for media in op.media_types
        }
        responses[str(op.status)] = {"description": op.summary, "content": content}
        for status in op.statuses:
            responses[str(status)] = {"description": _REASONS.get(status, op.summary), "content": content}
    else:
        responses[str(op.status)] = {"description": op.summary}
    codes = (
        set(op.errors)
        | {400}
        | ({401, 403} if op.auth else set())
        | ({422} if op.body or op.query else set())
    )
    for code in sorted(codes):
        responses[str(code)] = {"description": _REASONS.get(code, "error"), **error}
    # aiohttp itself answers malformed HTTP (e.g. a request line over 8 KiB) with a plain-text 400.
    responses["400"]["content"] = {**error["content"], "text/plain": {"schema": {"type": "string"}}}
    return responses


_REASONS: Final = {
    202: "accepted, outcome not known yet (GET the resource for it)",
    400: "malformed request, or the body is not JSON",
    401: "missing or invalid bearer token",
    403: "the bearer token lacks the operation's scope",
    404: "not found",
    409: "conflicting state, or FreeSWITCH refused",
    422: "invalid field",
    429: "too many failed attempts (see Retry-After)",
    503: "FreeSWITCH node not connected",
    504: "FreeSWITCH did not confirm in time",
}
