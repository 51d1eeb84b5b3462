"""The settings base of every Switchyard process: one model class, one file format, one way to override it.

Sources, lowest priority first: ``switchyard.yaml`` (path from ``SWITCHYARD_CONFIG``; ``${NAME}`` in its
strings is taken from the environment), then environment variables ``SWITCHYARD_<FIELD>`` with ``__``
between nested fields. Each process validates only its own sections of the file (:mod:`switchyard.sections`)
into its own root model (the controller's ``Settings``, the worker's ``WorkerProcessSettings``). Library code
never reads ``os.environ``; :func:`load` receives it.

Exceptions::

    SettingsError       the file is unreadable or a value is invalid; the message names the field path
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from switchyard.sections import RENAMED, SECTIONS

__all__ = ["SettingsError", "SettingsModel", "config_path", "format_errors", "load", "unique"]

_ENV_PREFIX: Final = "SWITCHYARD_"
_REFERENCE: Final = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

M = TypeVar("M", bound=BaseModel)


class SettingsError(Exception):
    """Settings are missing or invalid; the message names the field path and the reason."""


class SettingsModel(BaseModel):
    """Base of every settings model: unknown keys are refused (a typo is an error), values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def unique(values: Iterable[str], what: str, field: str | None = None) -> None:
    """Refuse a value used twice (names of agents, users, trunks...).

    Raises:
        ValueError: naming the value, and ``field`` when given (from a validator above the field).
    """
    seen: set[str] = set()
    for value in values:
        if value in seen:
            prefix = f"{field}: " if field else ""
            raise ValueError(f"{prefix}the {what} {value!r} is used twice")
        seen.add(value)


def format_errors(exc: ValidationError) -> str:
    """One line per error: ``field.path: reason``."""
    lines = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "<root>"
        lines.append(f"{path}: {error['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def _renamed(key: str, where: str) -> SettingsError:
    new, meaning = RENAMED[key]
    return SettingsError(f"{where}: the section {key!r} is now {new!r} ({meaning}); rename it")


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``SWITCHYARD_A__B=v`` → ``{"a": {"b": v}}``; a value starting with ``[`` or ``{`` is JSON."""
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(_ENV_PREFIX) or key == "SWITCHYARD_CONFIG":
            continue
        path = key[len(_ENV_PREFIX) :].lower().split("__")
        if path[0] in RENAMED:
            new = f"{_ENV_PREFIX}{'__'.join([RENAMED[path[0]][0], *path[1:]]).upper()}"
            raise SettingsError(f"{_renamed(path[0], key)}: {new}")
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SettingsError(f"{key}: conflicts with another SWITCHYARD_ variable")
            node = child
        parsed: Any = value
        if value[:1] in ("[", "{"):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                raise SettingsError(f"{key}: not valid JSON: {exc}") from exc
        node[path[-1]] = parsed
    return tree


def _substitute(value: Any, environ: Mapping[str, str], path: str) -> Any:
    """``${NAME}`` in the file's strings replaced from the environment (``$$`` is a literal ``$``).

    Raises:
        SettingsError: a referenced variable is not set (names the field and the variable).
    """
    if isinstance(value, dict):
        return {k: _substitute(v, environ, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, environ, f"{path}.{i}") for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in environ:
            raise SettingsError(f"{path}: ${{{name}}} is not set in the environment")
        return environ[name]

    return _REFERENCE.sub(replace, value)


def _only(tree: dict[str, Any], sections: Collection[str]) -> dict[str, Any]:
    """``tree`` without the known sections outside ``sections`` (an unknown key stays, to be refused)."""
    dropped = SECTIONS - set(sections)
    return {key: value for key, value in tree.items() if key not in dropped}


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def config_path(environ: Mapping[str, str], path: Path | None = None) -> Path | None:
    """The settings file: ``path``, else ``SWITCHYARD_CONFIG``, else ``switchyard.yaml`` if it exists."""
    if path is not None:
        return path
    configured = environ.get("SWITCHYARD_CONFIG")
    if configured:
        return Path(configured)
    default = Path("switchyard.yaml")
    return default if default.exists() else None


def _read(path: Path, environ: Mapping[str, str], sections: Collection[str]) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(f"{path}: top level must be a mapping")
    for key in loaded:
        if key in RENAMED:
            raise _renamed(key, str(path))
    result: dict[str, Any] = _substitute(_only(loaded, sections), environ, "")
    return result


def load(
    model: type[M],
    environ: Mapping[str, str],
    path: Path | None = None,
    sections: Collection[str] = SECTIONS,
) -> M:
    """Build ``model`` from the sections ``sections`` of the YAML file and the environment.

    Args:
        model: the process's root settings model (its fields are ``sections``).
        environ: the process environment (``os.environ`` in ``main()``; a dict in tests).
        path: the YAML file; defaults to :func:`config_path`'s choice.
        sections: the top-level sections this process reads. The others keep their defaults, so the
            ``${NAME}`` variables only they reference need not be in the process's environment.

    Raises:
        SettingsError: the file is unreadable, uses a renamed key, or the settings are invalid.
    """
    file = config_path(environ, path)
    data = {} if file is None else _read(file, environ, sections)
    try:
        return model.model_validate(_merge(data, _only(_env_overrides(environ), sections)))
    except ValidationError as exc:
        raise SettingsError(format_errors(exc)) from exc
