"""Speech made once: another TTS's audio of each (text, voice), kept in memory and shared.

An agent says the same words on many calls: its greeting, its reprompts, a scripted agent's answers. The
worker synthesizes each of those once; later calls play the kept audio at once, and calls asking for the
same words while they are being made follow that one synthesis chunk by chunk instead of starting their
own. On a loaded worker this is what keeps CPU for the words that differ (ASR and the LLM's answers).

Policy:
- Only a synthesis that ended normally is kept; a failure reaches every caller following it and is not
  kept, so the next call tries again.
- A synthesis runs as long as one caller follows it: when the last one closes early (barge-in), it is
  cancelled, as the provider contract asks, and nothing is kept.
- Kept audio is bounded by ``max_bytes`` (least recently used goes first); texts longer than ``MAX_TEXT``
  characters are never kept (an LLM's long sentences seldom repeat).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Final

from media_worker.errors import ProviderError
from media_worker.tts.base import TTS
from switchyard.tasks import cancel_all

__all__ = ["MAX_TEXT", "SpeechCache"]

log = logging.getLogger("switchyard.worker.tts")

MAX_TEXT: Final = 400
_Key = tuple[str, str | None]


class _Making:
    """One synthesis in progress: its chunks so far, for every caller following it."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.error: Exception | None = None
        self.done = False
        self.followers = 0
        self.task: asyncio.Task[None] | None = None
        self._news = asyncio.Event()

    def add(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self._wake()

    def end(self, error: Exception | None) -> None:
        self.error = error
        self.done = True
        self._wake()

    def _wake(self) -> None:
        news, self._news = self._news, asyncio.Event()
        news.set()

    async def follow(self) -> AsyncGenerator[bytes, None]:
        """Every chunk from the first, as it is made; raises the synthesis's failure."""
        sent = 0
        while True:
            while sent < len(self.chunks):
                yield self.chunks[sent]
                sent += 1
            if self.done:
                if self.error is not None:
                    raise self.error
                return
            # No deadline of its own: the provider bounds each chunk (its deadline_s) and then fails.
            await self._news.wait()


class SpeechCache(TTS):
    """``inner``'s speech, each (text, voice) made once and kept within ``max_bytes``."""

    def __init__(self, inner: TTS, max_bytes: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0  # played from what was kept
        self.shared = 0  # followed a synthesis another call started
        self.misses = 0  # synthesized
        self._kept: OrderedDict[_Key, tuple[bytes, ...]] = OrderedDict()
        self._making: dict[_Key, _Making] = {}

    def __contains__(self, key: object) -> bool:
        """Whether the speech of ``(text, voice)`` is kept."""
        return key in self._kept

    async def synthesize(self, text: str, voice: str | None = None) -> AsyncGenerator[bytes, None]:
        """``text`` spoken: the kept audio, the synthesis in progress, or a new one."""
        if len(text) > MAX_TEXT:
            self.misses += 1
            async for chunk in self.inner.synthesize(text, voice):
                yield chunk
            return
        key = (text, voice)
        kept = self._kept.get(key)
        if kept is not None:
            self.hits += 1
            self._kept.move_to_end(key)
            for chunk in kept:
                yield chunk
            return
        making = self._making.get(key)
        if making is None:
            self.misses += 1
            making = self._start(key)
        else:
            self.shared += 1
        making.followers += 1
        try:
            async for chunk in making.follow():
                yield chunk
        finally:
            making.followers -= 1
            if making.followers == 0 and not making.done and making.task is not None:
                del self._making[key]  # nobody listens any more: no one joins it, its work stops
                making.task.cancel()

    def _start(self, key: _Key) -> _Making:
        making = self._making[key] = _Making()
        making.task = asyncio.get_running_loop().create_task(self._make(key, making), name="speech synthesis")
        return making

    async def _make(self, key: _Key, making: _Making) -> None:
        error: Exception | None = None
        try:
            async for chunk in self.inner.synthesize(*key):
                making.add(chunk)
        except asyncio.CancelledError:  # the cache is closing (or nobody follows): no truncated speech
            error = ProviderError(self.name, "speech synthesis stopped")
            raise
        except Exception as exc:  # a provider's failure goes to every follower
            error = exc
        finally:
            if self._making.get(key) is making:
                del self._making[key]
            making.end(error)
        if error is None:
            self._keep(key, tuple(making.chunks))

    def _keep(self, key: _Key, chunks: tuple[bytes, ...]) -> None:
        size = sum(len(chunk) for chunk in chunks)
        if size > self.max_bytes:
            return
        self._kept[key] = chunks
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self._kept.popitem(last=False)
            self.bytes -= sum(len(chunk) for chunk in dropped)

    async def aclose(self) -> None:
        """Stop the syntheses in progress, forget what is kept, close ``inner``."""
        log.info(
            "speech cache of %s: %d played from memory, %d shared while made, %d made; %d bytes kept",
            self.name, self.hits, self.shared, self.misses, self.bytes,
        )  # fmt: skip
        tasks = [m.task for m in self._making.values() if m.task is not None]
        await cancel_all(tasks)
        self._kept.clear()
        self.bytes = 0
        await self.inner.aclose()
