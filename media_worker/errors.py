"""Errors of the voice providers (ASR, agent, TTS), mapped once at each provider's boundary.

    ProviderError                 a provider could not do its part of the turn
    ├── ProviderTimeout           no (complete) answer within the provider's deadline
    ├── ProviderUnavailable       connection refused/reset, HTTP 5xx or 429 after the retries
    └── ProviderReplyError        an answer that breaks the API's shape, or an HTTP 4xx

Library exceptions (aiohttp, ctranslate2, onnxruntime, subprocesses) never leave a provider: each one is
raised again as one of these, ``from`` the original. The pipeline catches ``ProviderError`` and speaks its
apology instead of leaving the caller in dead air.
"""

from __future__ import annotations

__all__ = ["ProviderError", "ProviderReplyError", "ProviderTimeout", "ProviderUnavailable"]


class ProviderError(Exception):
    """A provider could not do its part of the turn."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason


class ProviderTimeout(ProviderError):
    """No (complete) answer within the deadline."""


class ProviderUnavailable(ProviderError):
    """Connection refused or reset, HTTP 5xx or 429, after the retries."""


class ProviderReplyError(ProviderError):
    """A reply that breaks the API's shape, or an HTTP 4xx."""
