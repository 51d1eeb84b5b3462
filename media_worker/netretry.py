"""Network policy of the voice providers: which failures are retried, how long to wait, how errors map.

Every HTTP or WebSocket provider (OpenAI-compatible ASR/TTS/chat, Deepgram) goes through here, so the
policy lives in one place:

- **Retries** (:func:`with_retries`, :func:`stream_with_retries`): up to ``RetrySettings.attempts`` tries
  in all, waiting by the one backoff policy of :mod:`switchyard.retry` — the n-th wait is uniform in
  ``[0, min(maximum_s, initial_s * 2**(n-1))]`` (full jitter). Only :class:`ProviderUnavailable` and
  :class:`ProviderTimeout` are retried; a :class:`ProviderReplyError` (HTTP 4xx, a reply of the wrong
  shape) would fail the same way again. A stream is retried only until its first item reached the caller:
  after that, a retry would repeat words the caller already heard.
- **Mapping** (:func:`mapped_errors`, :func:`check_status`): library exceptions become our tree of
  :mod:`media_worker.errors`, always ``from`` the original::

      TimeoutError (asyncio.timeout, aiohttp's ServerTimeoutError)  → ProviderTimeout
      ClientResponseError (incl. WebSocket handshake) by status     → see below
      ClientConnectionError, ClientPayloadError (reset, truncated)  → ProviderUnavailable
      any other ClientError (bad URL, …)                            → ProviderReplyError

      HTTP 5xx, 429 → ProviderUnavailable;  other 4xx → ProviderReplyError (with the server's
      ``{"error": {"message": …}}`` when it sent one, the OpenAI error shape)
- **Deadlines across yields** (:class:`WaitBudget`): a streamed reply is an async generator, and an
  ``asyncio.timeout`` must not stay open across a ``yield`` (it would fire in the caller's code). The budget
  bounds each network wait instead and adds them up, so the time the caller spends between items is not
  counted against the provider.

``asyncio.CancelledError`` is never caught here: it is not an ``Exception`` subclass we name.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TypeVar

import aiohttp
import orjson
from pydantic import Field, SecretStr

from media_worker.errors import ProviderError, ProviderReplyError, ProviderTimeout, ProviderUnavailable
from media_worker.registry import ProviderSettings
from switchyard.retry import Backoff, RetrySettings

__all__ = [
    "RETRYABLE",
    "LazySession",
    "NetworkSettings",
    "Sleep",
    "WaitBudget",
    "check_status",
    "error_for_status",
    "mapped_errors",
    "posted",
    "stream_with_retries",
    "with_retries",
]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

RETRYABLE: tuple[type[ProviderError], ...] = (ProviderUnavailable, ProviderTimeout)
_ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error body we read to find its message


class NetworkSettings(ProviderSettings):
    """What every network provider has: credentials, a deadline per request, retries."""

    api_key: SecretStr | None = Field(None, description="bearer token (none for local servers)")
    timeout_s: float = Field(10.0, gt=0, description="deadline of one request, until the last byte")
    connect_timeout_s: float = Field(3.0, gt=0)
    retry: RetrySettings = RetrySettings()


def _exhausted(exc: ProviderError, attempts: int) -> ProviderError:
    return type(exc)(exc.provider, f"{exc.reason} (after {attempts} attempts)")


async def with_retries(
    settings: RetrySettings,
    attempt: Callable[[], Awaitable[T]],
    *,
    sleep: Sleep = asyncio.sleep,
    rng: Callable[[], float] = random.random,
) -> T:
    """Run ``attempt()`` until it succeeds, retrying :data:`RETRYABLE` errors with backoff.

    Args:
        settings: how many attempts and how long to wait between them.
        attempt: makes a fresh awaitable per try (a request body cannot be sent twice).
        sleep: the backoff wait (tests pass a recording fake).
        rng: the jitter's uniform draw in ``[0, 1)``.

    Returns:
        What the first successful attempt returned.

    Raises:
        ProviderError: a non-retryable error at once, or the last retryable one after every attempt.
    """
    backoff = Backoff(settings.backoff(), rng)
    for tried in range(1, settings.attempts + 1):
        try:
            return await attempt()
        except RETRYABLE as exc:
            if tried == 1 == settings.attempts:
                raise
            if tried == settings.attempts:
                raise _exhausted(exc, tried) from exc
        await sleep(backoff.next_delay())
    raise AssertionError("unreachable: attempts >= 1")  # pragma: no cover


async def stream_with_retries(
    settings: RetrySettings,
    attempt: Callable[[], AsyncGenerator[T, None]],
    *,
    sleep: Sleep = asyncio.sleep,
    rng: Callable[[], float] = random.random,
) -> AsyncGenerator[T, None]:
    """Iterate ``attempt()``, starting over on a retryable error only while nothing was yielded yet.

    Args:
        settings: how many attempts and how long to wait between them.
        attempt: opens one fresh stream per try.
        sleep: the backoff wait.
        rng: the jitter's uniform draw in ``[0, 1)``.

    Yields:
        The items of the first attempt that got one out (then of that attempt only).

    Raises:
        ProviderError: a non-retryable error, any error after the first item, or the last retryable one.
    """
    backoff = Backoff(settings.backoff(), rng)
    started = False
    for tried in range(1, settings.attempts + 1):
        inner = attempt()
        try:
            while True:
                try:
                    item = await anext(inner)
                except StopAsyncIteration:
                    return
                except RETRYABLE as exc:
                    if started or tried == 1 == settings.attempts:
                        raise
                    if tried == settings.attempts:
                        raise _exhausted(exc, tried) from exc
                    break
                started = True
                yield item
        finally:
            await inner.aclose()
        await sleep(backoff.next_delay())


class WaitBudget:
    """The time a request may spend waiting on its server, spent over awaits that straddle ``yield``.

    Each :meth:`wait` runs under ``asyncio.timeout`` for what is left of the budget (or ``gap_s``, the
    bound between two pieces of a stream, if smaller); the time it took is then taken off the budget.
    """

    def __init__(self, total_s: float) -> None:
        self.remaining_s = total_s

    async def wait(self, awaitable: Awaitable[T], gap_s: float | None = None) -> T:
        """Await ``awaitable`` within the budget; ``TimeoutError`` when it runs out."""
        loop = asyncio.get_running_loop()
        limit = self.remaining_s if gap_s is None else min(self.remaining_s, gap_s)
        started = loop.time()
        try:
            async with asyncio.timeout(max(limit, 0.0)):
                return await awaitable
        finally:
            self.remaining_s -= loop.time() - started


def error_for_status(provider: str, status: int, message: str) -> ProviderError:
    """Our error for an HTTP error status: 5xx and 429 are retryable, any other 4xx is not."""
    reason = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status >= 500 or status == 429:
        return ProviderUnavailable(provider, reason)
    return ProviderReplyError(provider, reason)


def _error_message(body: bytes) -> str:
    """The OpenAI error shape ``{"error": {"message": …}}`` (or ``{"error": "…"}``), else the text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return body[:200].decode("utf-8", "replace").strip()


async def check_status(provider: str, response: aiohttp.ClientResponse) -> None:
    """Raise our error for an HTTP error status (reading the error body for its message); else nothing.

    Run it under the request's deadline and inside :func:`mapped_errors`: it reads from the network.
    """
    if response.status < 400:
        return
    body = bytearray()
    while len(body) < _ERROR_BODY_LIMIT and (piece := await response.content.read(_ERROR_BODY_LIMIT)):
        body += piece
    raise error_for_status(provider, response.status, _error_message(bytes(body)))


@contextmanager
def mapped_errors(provider: str, what: str) -> Iterator[None]:
    """Raise aiohttp's and asyncio's exceptions from the block again as our errors (``from`` them).

    Args:
        provider: the provider's name, for the error.
        what: the operation, e.g. ``"POST /audio/speech"``, for the error's reason.
    """
    try:
        yield
    except TimeoutError as exc:  # before ClientConnectionError: ServerTimeoutError is both
        raise ProviderTimeout(provider, f"{what}: timed out") from exc
    except aiohttp.ClientResponseError as exc:
        raise error_for_status(provider, exc.status, exc.message) from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise ProviderUnavailable(provider, f"{what}: {exc!r}") from exc
    except aiohttp.ClientError as exc:
        raise ProviderReplyError(provider, f"{what}: {exc!r}") from exc


@asynccontextmanager
async def posted(
    provider: str, what: str, request: Awaitable[aiohttp.ClientResponse], budget: WaitBudget
) -> AsyncIterator[aiohttp.ClientResponse]:
    """A streamed POST's response, its status checked, within ``budget``; released on exit.

    The block runs inside :func:`mapped_errors` too, so reading the body raises our errors.

    Args:
        provider: the provider's name, for the errors.
        what: the operation, e.g. ``"POST /audio/speech"``.
        request: the ``session.post(...)`` to await.
        budget: the request's deadline, spent across the reads of the body.
    """
    with mapped_errors(provider, what):
        response = await budget.wait(request)
        try:
            await budget.wait(check_status(provider, response))
            yield response
        finally:
            response.release()  # back to the pool if the body was read to its end, else closed


class LazySession:
    """A provider's one ``aiohttp.ClientSession``, made on first use (inside the event loop) and closed
    by :meth:`aclose`; it bounds connecting by ``connect_timeout_s``, the rest is the caller's deadline."""

    def __init__(self, connect_timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        """The session (made now if there is none)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def aclose(self) -> None:
        """Close the session, if one was made."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
