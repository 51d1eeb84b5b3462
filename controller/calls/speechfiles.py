"""Which ``mod_audio_stream::play`` files the controller plays: mod_audio_stream's own, and nothing else.

mod_audio_stream writes each ``streamAudio`` of the worker to ``<temp_dir>/<uuid>_<n>.tmp<suffix>`` and fires
``::play`` with that path in its JSON body (audio_stream_wire.txt, section 5: ``.r8`` … ``.r64`` for raw
audio, ``.wav .mp3 .ogg .pcmu .pcma`` for the others). ``temp_dir`` is FreeSWITCH's own (its ``-temp``
option; /tmp by default and in deploy/docker/freeswitch-tarball.Dockerfile, ``$FS_STATE/temp`` under
../shared/freeswitch/fsrun), set per node as ``freeswitch.<node>.temp_dir``.

The event proves nothing about who wrote the path: anyone with ESL access can fire a CUSTOM event with any
headers and body. So a file is broadcast only when it lies directly inside the node's temp directory and
is named for the channel the event is about (its uuid, a counter, one of those suffixes). Anything else (a
file elsewhere, ``..`` or ``.`` segments, doubled slashes, a subdirectory, another channel's file, a
``tone_stream://``) is refused; the caller (controller.calls.playback) logs it, notes it in the CDR
(``extra.play_refused``) and plays nothing.

What a name cannot show is whether the file is a symlink someone placed in the temp directory on the
FreeSWITCH host; the controller cannot look at that host's file system. Keep the temp directory writable
by FreeSWITCH alone (fsrun's ``$FS_STATE/temp`` is; on a shared /tmp any local user may create files).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Final

from pydantic import AfterValidator

__all__ = ["FREESWITCH_TEMP_DIR", "SpeechFiles", "TempDir", "shown_path"]

FREESWITCH_TEMP_DIR: Final = "/tmp"
"""FreeSWITCH's temp directory unless its ``-temp`` option says otherwise."""

_DIRECTORY: Final = re.compile(r"/|(/[A-Za-z0-9_.-]+)+")
_SUFFIX: Final = r"\.tmp\.(?:r8|r16|r24|r32|r48|r64|wav|mp3|ogg|pcmu|pcma)"
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NOT_SHOWN: Final = re.compile(r"[^A-Za-z0-9_./:@+#*%=,;()!~-]")
MAX_SHOWN: Final = 160


def _temp_dir(path: str) -> str:
    parts = path.split("/")[1:]
    if not _DIRECTORY.fullmatch(path) or (path != "/" and any(p in (".", "..") for p in parts)):
        raise ValueError(f"{path!r}: an absolute directory of A-Z a-z 0-9 _ . - without . or .. or a final /")
    return path


TempDir = Annotated[str, AfterValidator(_temp_dir)]
"""A FreeSWITCH temp directory setting: absolute, no ``.``/``..`` segment, no trailing slash."""


def shown_path(path: str) -> str:
    """``path`` as a log line or a CDR may show it: cut, odd characters (spaces included) as ``?``."""
    return _NOT_SHOWN.sub("?", path[:MAX_SHOWN]) or "?"


class SpeechFiles:
    """The temp directory of each node, and the rule a ``::play`` file must meet there.

    Args:
        temp_dirs: node name → its FreeSWITCH temp directory (a node not named: :data:`FREESWITCH_TEMP_DIR`).
    """

    def __init__(self, temp_dirs: Mapping[str, str] | None = None) -> None:
        self._prefixes = {node: path.rstrip("/") + "/" for node, path in (temp_dirs or {}).items()}

    def refusal(self, node: str, uuid: str, path: str) -> str | None:
        """Why the ``::play`` of ``path`` on channel ``uuid`` of ``node`` is not played (None: it is)."""
        prefix = self._prefixes.get(node, FREESWITCH_TEMP_DIR + "/")
        if not path.startswith(prefix):
            return f"not directly inside {prefix}"
        name = path[len(prefix) :]
        if not _UUID.fullmatch(uuid) or not re.fullmatch(re.escape(uuid) + r"_[0-9]{1,9}" + _SUFFIX, name):
            return f"{shown_path(name)!r} is not named <uuid of the channel>_<n>.tmp.<audio type>"
        return None
