"""How FreeSWITCH un-escapes an api argument (``switch_separate_string``), as mod_audio_stream receives it.

Measured on FreeSWITCH 1.10.12 + mod_audio_stream ec2a781 (``uuid_audio_stream <uuid> start <url> mono 16k
<metadata>`` against a recording worker, 2026-12-07), what arrived as the first text frame:

* ``\\\\`` -> ``\\``, ``\\"`` -> ``"``, ``\\'`` -> ``'``; ``\\n`` and ``\\t`` -> newline and tab
  (switch_utils.c ``unescape_char`` also maps ``\\r`` and ``\\s``); any other ``\\x`` stays as it is
  (``\\u0022``, ``\\/`` and a trailing ``\\`` arrive unchanged);
* single quotes in pairs are removed (``{'a':1}`` -> ``{a:1}``, ``'x y'`` -> ``x y``); a lone one stays
  (``it's``); double quotes, runs of spaces and UTF-8 (``é中😀``) arrive unchanged.

Sans-IO: a function of the argument text.
"""

from __future__ import annotations

from typing import Final

__all__ = ["unescape_argument"]

_ESCAPES: Final = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "s": " "}


def unescape_argument(text: str) -> str:
    """``text`` as FreeSWITCH hands the last argument of an api command to the module."""
    strip_quotes = _unescaped_quotes(text) % 2 == 0
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
            continue
        if not (char == "'" and strip_quotes):
            out.append(char)
        i += 1
    return "".join(out)


def _unescaped_quotes(text: str) -> int:
    count = 0
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            i += 2
            continue
        count += text[i] == "'"
        i += 1
    return count
