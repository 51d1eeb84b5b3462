"""Providers by name: each ASR, TTS, agent and VAD provider is one module that declares itself.

A provider module in ``media_worker/asr/``, ``tts/``, ``agent/`` or ``vad/`` defines its settings model (a
:class:`ProviderSettings` whose ``provider`` field is a one-value ``Literal``: the name the settings file
uses) and a module attribute ``PROVIDER = Provider(TheSettings, make)``, ``make(settings, executor)``
building the provider. The :class:`Catalog` of a kind finds them by importing every module of its package
the first time it is asked, so adding a provider is adding its module: no list, union or branch to edit.

Because the controller validates the ``agents:`` section too, each provider module is imported where
settings are read: its top level imports only what its settings and light code need; the heavy engine
(faster-whisper, Piper, onnxruntime) is imported when ``make`` runs. A provider module must not import
``media_worker.voice.settings`` or ``media_worker.settings`` (they are built from the catalogs).

Exceptions::

    RegistryError (Exception)   two providers of a kind share a name, or a PROVIDER is malformed
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, get_args, get_origin

from pydantic_core import PydanticCustomError

from switchyard.settings import SettingsModel

__all__ = ["Catalog", "Provider", "ProviderSettings", "RegistryError"]

T = TypeVar("T")
S = TypeVar("S", bound="ProviderSettings")


class RegistryError(Exception):
    """A provider module declares itself wrongly (found when its catalog is first used)."""


class ProviderSettings(SettingsModel):
    """Base of a provider's settings; each subclass narrows ``provider`` to ``Literal["<its name>"]``."""

    provider: str


@dataclass(frozen=True, slots=True)
class Provider(Generic[S, T]):
    """One provider: its settings model and how it is built (with the process's inference executor)."""

    settings: type[S]
    make: Callable[[S, Executor], T]

    @property
    def name(self) -> str:
        """The one value of the settings' ``provider`` Literal."""
        annotation = self.settings.model_fields["provider"].annotation
        values = get_args(annotation) if get_origin(annotation) is Literal else ()
        if len(values) != 1 or not isinstance(values[0], str):
            raise RegistryError(f"{self.settings.__name__}.provider must be a Literal of one name")
        return values[0]


class Catalog(Generic[T]):
    """The providers of one kind, found in the modules of ``package``.

    Args:
        kind: what they provide (``asr``, ``tts``, ``agent``, ``vad``), for messages.
        package: the package whose modules are searched for ``PROVIDER``.
        implicit: the provider a settings block without ``provider`` means (None: it is required).
        base: what every provider's settings extend (the settings all of the kind share).
    """

    def __init__(
        self,
        kind: str,
        package: str,
        implicit: str | None = None,
        base: type[ProviderSettings] = ProviderSettings,
    ) -> None:
        self.kind = kind
        self.package = package
        self.implicit = implicit
        self.base = base
        self._found: dict[str, Provider[Any, T]] | None = None

    @property
    def providers(self) -> dict[str, Provider[Any, T]]:
        """Name → provider (the package is searched on first use)."""
        if self._found is None:
            self._found = self._search()
        return self._found

    def _search(self) -> dict[str, Provider[Any, T]]:
        found: dict[str, Provider[Any, T]] = {}
        package = importlib.import_module(self.package)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            module = importlib.import_module(f"{self.package}.{info.name}")
            provider = getattr(module, "PROVIDER", None)
            if provider is None:
                continue
            if not isinstance(provider, Provider) or not issubclass(provider.settings, self.base):
                raise RegistryError(f"{module.__name__}.PROVIDER is not a Provider of {self.base.__name__}")
            if provider.name in found:
                raise RegistryError(f"{self.kind} provider {provider.name!r} is declared twice")
            found[provider.name] = provider
        return found

    def parse(self, value: object) -> ProviderSettings:
        """Validate a settings block as the model its ``provider`` names (a pydantic validator).

        Raises:
            PydanticCustomError: no such provider; the chosen model's own errors come with their paths.
        """
        if isinstance(value, ProviderSettings):
            chosen = self.providers.get(value.provider)
            made_in_code = chosen is not None and isinstance(value, chosen.settings)
            if made_in_code:
                return value  # a default or a test's: already valid
            value = value.model_dump()
        if not isinstance(value, dict):
            raise PydanticCustomError("provider_block", "a mapping with a provider is expected")
        name = value.get("provider", self.implicit)
        provider = self.providers.get(name) if isinstance(name, str) else None
        if provider is None:
            known = ", ".join(sorted(self.providers))
            raise PydanticCustomError(
                "unknown_provider",
                "provider {name} is not a known {kind} provider ({known})",
                {"name": repr(name), "kind": self.kind, "known": known},
            )
        settings: ProviderSettings = provider.settings.model_validate({**value, "provider": name})
        return settings

    def default(self, name: str) -> Callable[[], ProviderSettings]:
        """A default factory: the settings of provider ``name`` with all their defaults."""
        return lambda: self.parse({"provider": name})

    def make(self, settings: ProviderSettings, executor: Executor) -> T:
        """Build the provider ``settings`` are for."""
        made: T = self.providers[settings.provider].make(settings, executor)
        return made
