"""Deepgram's live API messages, sans-IO: server text frames in, our transcripts out.

``Results`` messages (Deepgram API reference "Live Audio" ``/v1/listen``) carry ``is_final``,
``from_finalize``, ``start``, ``duration`` and ``channel.alternatives[0]`` with ``transcript`` and
``words[]``; the other kinds are skipped. :class:`UtteranceGatherer` joins the ``is_final`` pieces of one
utterance into the one final transcript a flush is answered with (see :mod:`media_worker.asr.deepgram`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from media_worker.asr.base import Transcript, Word
from media_worker.errors import ProviderReplyError

__all__ = ["NAME", "DeepgramResult", "UtteranceGatherer", "parse_message", "reply_error"]

NAME: Final = "deepgram"


@dataclass(frozen=True, slots=True)
class DeepgramResult:
    """One ``Results`` message: the first alternative's text and words, and where it lies."""

    text: str
    words: tuple[Word, ...]
    is_final: bool
    from_finalize: bool
    start_s: float
    end_s: float


def reply_error(reason: str) -> ProviderReplyError:
    """A malformed or refusing reply of the server."""
    return ProviderReplyError(NAME, reason)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise reply_error(f"{what} is not a number")
    return float(value)


def _word(item: object) -> Word:
    if not isinstance(item, dict):
        raise reply_error("a word is not an object")
    text = item.get("punctuated_word", item.get("word"))
    if not isinstance(text, str):
        raise reply_error("a word has no text")
    return Word(text, _number(item.get("start"), "word start"), _number(item.get("end"), "word end"))


def _result(message: dict[str, Any]) -> DeepgramResult:
    channel = message.get("channel")
    alternatives = channel.get("alternatives") if isinstance(channel, dict) else None
    if not isinstance(alternatives, list) or not alternatives or not isinstance(alternatives[0], dict):
        raise reply_error("Results without channel.alternatives")
    best = alternatives[0]
    text, words = best.get("transcript", ""), best.get("words", [])
    if not isinstance(text, str) or not isinstance(words, list):
        raise reply_error("an alternative without transcript or words")
    start_s = _number(message.get("start", 0.0), "start")
    return DeepgramResult(
        text=text.strip(),
        words=tuple(_word(word) for word in words),
        is_final=message.get("is_final") is True,
        from_finalize=message.get("from_finalize") is True,
        start_s=start_s,
        end_s=start_s + _number(message.get("duration", 0.0), "duration"),
    )


def parse_message(data: str | bytes) -> DeepgramResult | None:
    """A server message: the ``Results`` it carries, or ``None`` for the kinds we skip.

    Raises:
        ProviderReplyError: not JSON, or a malformed ``Results``.
    """
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise reply_error(f"a message is not JSON: {data[:80]!r}") from exc
    if not isinstance(message, dict):
        raise reply_error("a message is not a JSON object")
    if message.get("type") == "Results":
        return _result(message)
    return None  # Metadata, SpeechStarted, UtteranceEnd, and kinds added later


class UtteranceGatherer:
    """The final pieces of the utterance under way (sans-IO): results in, transcripts out."""

    def __init__(self) -> None:
        self._pieces: list[DeepgramResult] = []

    def partial(self, result: DeepgramResult) -> Transcript:
        """Take a result that does not end the utterance; the partial transcript so far."""
        if result.is_final:
            self._pieces.append(result)
            return self._transcript(self._pieces, final=False)
        return self._transcript([*self._pieces, result], final=False)

    def final(self, result: DeepgramResult | None = None) -> Transcript:
        """The utterance's final transcript (with ``result``, its last piece); the next one starts empty."""
        pieces = [*self._pieces, *([result] if result is not None else [])]
        self._pieces.clear()
        return self._transcript(pieces, final=True)

    @staticmethod
    def _transcript(pieces: list[DeepgramResult], *, final: bool) -> Transcript:
        spoken = [piece for piece in pieces if piece.text]
        if not spoken:
            return Transcript("", final)
        words = tuple(word for piece in spoken for word in piece.words)
        return Transcript(
            " ".join(piece.text for piece in spoken), final, spoken[0].start_s, spoken[-1].end_s, words
        )
