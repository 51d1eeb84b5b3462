"""SpeechCache: words made once, shared while made, kept within a byte bound, stopped when nobody listens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from media_worker.errors import ProviderError
from media_worker.tts.base import TTS
from media_worker.tts.cache import MAX_TEXT, SpeechCache


class Paced(TTS):
    """A TTS that says ``text`` as one chunk per word, each released by ``step`` (or at once)."""

    name = "paced"

    def __init__(self, *, gated: bool = False, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.finished: list[str] = []  # syntheses whose generator was closed (done, failed or stopped)
        self.gate = asyncio.Semaphore(0) if gated else None
        self.fail_on = fail_on

    def step(self, words: int = 1) -> None:
        assert self.gate is not None
        for _ in range(words):
            self.gate.release()

    async def synthesize(self, text: str, voice: str | None = None) -> AsyncGenerator[bytes, None]:
        self.calls.append(text)
        try:
            for word in text.split():
                if self.gate is not None:
                    await self.gate.acquire()
                if word == self.fail_on:
                    raise ProviderError(self.name, f"cannot say {word!r}")
                yield f"{voice or ''}{word}".encode().ljust(8, b".")
        finally:
            self.finished.append(text)


async def said(speech: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in speech])


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_words_said_again_are_played_from_what_was_kept() -> None:
    inner = Paced()
    cache = SpeechCache(inner, 1024)
    first = await said(cache.synthesize("hello there caller"))
    again = await said(cache.synthesize("hello there caller"))
    other_voice = await said(cache.synthesize("hello there caller", "v2"))
    assert again == first == b"hello...there...caller.."
    assert other_voice.startswith(b"v2hello")
    assert inner.calls == ["hello there caller", "hello there caller"]  # once per voice
    assert (cache.hits, cache.misses, cache.shared) == (1, 2, 0)
    assert cache.bytes == len(first) + len(other_voice)


async def test_calls_asking_while_the_words_are_made_follow_one_synthesis() -> None:
    inner = Paced(gated=True)
    cache = SpeechCache(inner, 1024)
    first = asyncio.create_task(said(cache.synthesize("one two three")))
    inner.step()
    await settle()
    late = asyncio.create_task(said(cache.synthesize("one two three")))  # joins after the first word
    inner.step(2)
    assert await first == await late == b"one.....two.....three..."
    assert inner.calls == ["one two three"]
    assert (cache.misses, cache.shared) == (1, 1)


async def test_a_failure_reaches_every_follower_and_is_not_kept() -> None:
    inner = Paced(gated=True, fail_on="two")
    cache = SpeechCache(inner, 1024)
    followers = [asyncio.create_task(said(cache.synthesize("one two three"))) for _ in range(2)]
    await settle()
    inner.step(2)
    for follower in followers:
        with pytest.raises(ProviderError, match="cannot say 'two'"):
            await follower
    assert cache.bytes == 0
    inner.fail_on = None
    inner.step(3)
    assert await said(cache.synthesize("one two three")) == b"one.....two.....three..."
    assert len(inner.calls) == 2  # tried again


async def test_the_last_follower_closing_early_stops_the_synthesis_and_keeps_nothing() -> None:
    inner = Paced(gated=True)
    cache = SpeechCache(inner, 1024)
    speech = cache.synthesize("one two three")
    inner.step()
    assert await anext(speech) == b"one....."
    await speech.aclose()  # barge-in
    await settle()
    assert inner.finished == ["one two three"]  # the provider's generator was closed: its work stopped
    assert cache.bytes == 0
    inner.step(3)
    assert await said(cache.synthesize("one two three")) == b"one.....two.....three..."
    assert len(inner.calls) == 2


async def test_one_follower_closing_early_leaves_the_others_their_whole_speech() -> None:
    inner = Paced(gated=True)
    cache = SpeechCache(inner, 1024)
    leaving = cache.synthesize("one two three")
    staying = asyncio.create_task(said(cache.synthesize("one two three")))
    inner.step()
    assert await anext(leaving) == b"one....."
    await leaving.aclose()
    inner.step(2)
    assert await staying == b"one.....two.....three..."
    assert await said(cache.synthesize("one two three")) == b"one.....two.....three..."
    assert (cache.misses, cache.shared, cache.hits) == (1, 1, 1)


async def test_kept_speech_stays_within_its_bytes_least_recently_used_first() -> None:
    inner = Paced()
    cache = SpeechCache(inner, 48)  # 8 bytes a word: six words
    for text in ("a b", "c d", "e f"):
        await said(cache.synthesize(text))
    await said(cache.synthesize("a b"))  # a hit: now the most recent
    await said(cache.synthesize("g h"))  # evicts "c d"
    assert cache.bytes == 48
    calls = len(inner.calls)
    await said(cache.synthesize("a b"))
    await said(cache.synthesize("c d"))
    assert len(inner.calls) == calls + 1  # "a b" kept, "c d" made again
    await said(cache.synthesize("one two three four five six seven"))  # larger than the bound: not kept
    assert cache.bytes <= 48


async def test_long_texts_are_never_kept() -> None:
    inner = Paced()
    cache = SpeechCache(inner, 1 << 20)
    text = " ".join(["word"] * (MAX_TEXT // 5 + 1))
    assert len(text) > MAX_TEXT
    for _ in range(2):
        await said(cache.synthesize(text))
    assert len(inner.calls) == 2
    assert cache.bytes == 0


async def test_closing_the_cache_stops_what_is_being_made() -> None:
    inner = Paced(gated=True)
    cache = SpeechCache(inner, 1024)
    follower = asyncio.create_task(said(cache.synthesize("one two")))
    await settle()
    await cache.aclose()
    await settle()
    assert inner.finished == ["one two"]
    with pytest.raises(ProviderError, match="stopped"):
        await follower
