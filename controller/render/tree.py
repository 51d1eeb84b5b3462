"""Write rendered configuration trees: ``<out>/freeswitch/conf`` and ``<out>/janus/conf``.

A tree is written whole into a sibling directory and then swapped in, so a server never reads a half-written
configuration and files a previous render made but this one does not are gone. Files hold secrets (ESL,
SIP and Janus passwords): they are created ``0600``, directories ``0700``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

__all__ = ["write_tree"]


def _checked(relative: str) -> PurePosixPath:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"rendered file name {relative!r} leaves its tree")
    return path


def write_tree(files: Mapping[str, str], target: Path) -> list[Path]:
    """Replace directory ``target`` by exactly ``files`` (relative path → text); returns the paths written.

    Raises:
        ValueError: a file name is absolute or climbs out with ``..``.
        OSError: the directory cannot be written.
    """
    paths = [_checked(name) for name in files]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + ".new")
    retired = target.with_name(target.name + ".old")
    for leftover in (staging, retired):
        shutil.rmtree(leftover, ignore_errors=True)
    written = []
    for relative, text in zip(paths, files.values(), strict=True):
        path = staging.joinpath(*relative.parts)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        written.append(target.joinpath(*relative.parts))
    staging.mkdir(mode=0o700, exist_ok=True)
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
    return written
