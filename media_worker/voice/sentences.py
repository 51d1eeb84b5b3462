"""Cutting a streamed reply into sentences, so each one goes to TTS as soon as it is complete. Sans-IO.

A sentence ends at ``.``, ``!``, ``?`` or ``…`` (or a newline) followed by white space, or at the end of
the reply. Not ends: a full stop after a common abbreviation (``Mr.``, ``e.g.``), a single capital
(initials) or between digits (``3.5``, since no space follows). Very short pieces (``Hi.``) are joined to
the next sentence unless the reply ends, so TTS is not called for a syllable.
"""

from __future__ import annotations

import re

__all__ = ["SentenceSplitter"]

_END = re.compile(r"[.!?…]+[\"')\]]*\s+|\n+")
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "no", "vs", "etc", "e.g", "i.e", "approx", "dept", "jr", "sr", "inc"}
)
MIN_CHARS = 12  # a sentence shorter than this waits for the next one


class SentenceSplitter:
    """Feed text deltas; get complete sentences back."""

    def __init__(self, min_chars: int = MIN_CHARS) -> None:
        self._buffer = ""
        self._min_chars = min_chars

    def feed(self, delta: str) -> list[str]:
        """Add the next piece of text; returns the sentences it completed (stripped, in order)."""
        self._buffer += delta
        sentences: list[str] = []
        start = 0
        for match in _END.finditer(self._buffer):
            candidate = self._buffer[start : match.end()].strip()
            if _abbreviation_before(self._buffer, match.start()) or len(candidate) < self._min_chars:
                continue
            sentences.append(candidate)
            start = match.end()
        self._buffer = self._buffer[start:]
        return sentences

    def flush(self) -> str | None:
        """The rest of the reply (at its end), or None if nothing is left."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest or None


def _abbreviation_before(text: str, dot: int) -> bool:
    if text[dot] != ".":
        return False
    word = re.search(r"([A-Za-z][A-Za-z.]*)$", text[:dot])
    if word is None:
        return False
    token = word.group(1)
    return token.lower() in _ABBREVIATIONS or (len(token) == 1 and token.isupper())
