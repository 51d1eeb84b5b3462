"""Speech synthesis with the espeak-ng command: formant synthesis, robotic but light and always there.

Each ``synthesize`` call runs ``espeak-ng -v <voice> -s <wpm> --stdout -- <text>`` as a subprocess (an
argument vector, never a shell; ``--`` ends the options, so a text starting with ``-`` is spoken, not
parsed) and reads the WAV it writes to stdout as it arrives.

espeak-ng writes mono 16-bit PCM at 22050 Hz. Its WAV header (``OpenWavFile`` in ``src/espeak-ng.c``) is
written before the audio with placeholder sizes: RIFF 0x7ffff024, data 0x7ffff000. The real sizes are
patched in on close only when the output can seek, which a pipe cannot. Other stream writers use 0 or
0xFFFFFFFF. So :class:`WavStream` treats the ``data`` chunk as running to the end of the stream and never
trusts its size. It is sans-IO: it is fed bytes and returns the PCM found so far.

Exceptions::

    WavFormatError (ValueError)   bytes that are not a mono 16-bit PCM WAV stream (the parser's error)
    ProviderError                 espeak-ng exited non-zero (its stderr is the reason), or the voice is bad
    ├── ProviderUnavailable       the binary cannot be started (missing, not executable)
    ├── ProviderTimeout           no output, or no exit, within ``deadline_s``
    └── ProviderReplyError        the output is not the WAV stream described above
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import Field

from media_worker.errors import ProviderError, ProviderReplyError, ProviderTimeout, ProviderUnavailable
from media_worker.registry import Provider, ProviderSettings
from media_worker.tts.base import TTS
from media_worker.tts.rate import ToRate16k

__all__ = ["PROVIDER", "EspeakTTS", "EspeakTtsSettings", "WavFormat", "WavFormatError", "WavStream"]

_RIFF_HEADER: Final = struct.Struct("<4sI4s")  # "RIFF", size, "WAVE"
_CHUNK_HEADER: Final = struct.Struct("<4sI")  # id, size
_FMT: Final = struct.Struct("<HHIIHH")  # format tag, channels, rate, byte rate, block align, bits
_PCM: Final = 1  # WAVE_FORMAT_PCM
_MAX_HEADER: Final = 64 * 1024  # more than this before the data chunk is not a speech stream
_VOICE: Final = re.compile(r"^[A-Za-z0-9_+-]+$")  # as EspeakTtsSettings.voice
_MAX_TEXT: Final = 32 * 1024  # bytes of text in one argument (Linux caps one argument at 128 KiB)
_READ: Final = 8192


class EspeakTtsSettings(ProviderSettings):
    """espeak-ng as a subprocess: light, robotic, always there."""

    provider: Literal["espeak"]
    voice: str = Field("en-us", pattern=r"^[A-Za-z0-9_+-]+$")
    words_per_minute: int = Field(165, ge=80, le=450)
    binary: str = "espeak-ng"


class WavFormatError(ValueError):
    """The bytes are not a mono 16-bit PCM WAV stream."""


@dataclass(frozen=True, slots=True)
class WavFormat:
    """What the ``fmt `` chunk says about the samples that follow."""

    rate: int
    channels: int
    bits: int


class WavStream:
    """A sans-IO reader of a streamed RIFF/WAVE: feed bytes, get PCM; the data chunk runs to the end.

    Chunks before ``data`` other than ``fmt `` (``LIST``, ``fact``…) are skipped by their size, padded to
    an even length as RIFF requires. Only mono 16-bit PCM is accepted.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._riff_checked = False
        self.format: WavFormat | None = None
        self.in_data = False

    def feed(self, data: bytes) -> bytes:
        """The PCM contained in ``data`` (and what was held back before it); b"" while in the header.

        Raises:
            WavFormatError: the stream is not a mono 16-bit PCM WAV.
        """
        if self.in_data:
            return data
        self._buffer += data
        while not self.in_data and self._next_header_part():
            pass
        if len(self._buffer) > _MAX_HEADER:
            raise WavFormatError(f"no data chunk within the first {_MAX_HEADER} bytes")
        if not self.in_data:
            return b""
        pcm = bytes(self._buffer)
        self._buffer.clear()
        return pcm

    def _next_header_part(self) -> bool:
        """Consume the RIFF header or one chunk header; False when more bytes are needed."""
        if not self._riff_checked:
            if len(self._buffer) < _RIFF_HEADER.size:
                return False
            riff, _size, wave = _RIFF_HEADER.unpack_from(self._buffer)
            if riff != b"RIFF" or wave != b"WAVE":
                raise WavFormatError(f"not a RIFF/WAVE stream: {bytes(self._buffer[:12])!r}")
            del self._buffer[: _RIFF_HEADER.size]
            self._riff_checked = True
            return True
        if len(self._buffer) < _CHUNK_HEADER.size:
            return False
        chunk_id, size = _CHUNK_HEADER.unpack_from(self._buffer)
        if chunk_id == b"data":
            if self.format is None:
                raise WavFormatError("data chunk before the fmt chunk")
            del self._buffer[: _CHUNK_HEADER.size]
            self.in_data = True  # its size is a placeholder in a stream: read to the end
            return True
        body = size + size % 2
        if len(self._buffer) < _CHUNK_HEADER.size + body:
            return False
        if chunk_id == b"fmt ":
            self.format = _parse_fmt(bytes(self._buffer[_CHUNK_HEADER.size : _CHUNK_HEADER.size + size]))
        del self._buffer[: _CHUNK_HEADER.size + body]
        return True


def _parse_fmt(body: bytes) -> WavFormat:
    if len(body) < _FMT.size:
        raise WavFormatError(f"fmt chunk of {len(body)} bytes, expected at least {_FMT.size}")
    tag, channels, rate, _byte_rate, _align, bits = _FMT.unpack_from(body)
    if tag != _PCM or channels != 1 or bits != 16 or rate == 0:
        raise WavFormatError(f"format {tag}, {channels} channels, {bits} bits, {rate} Hz: not mono L16")
    return WavFormat(rate=rate, channels=channels, bits=bits)


class EspeakTTS(TTS):
    """espeak-ng run once per utterance; its WAV stream converted to 16 kHz as it arrives.

    Args:
        settings: the espeak-ng voice, speed (words per minute) and binary.
        deadline_s: the longest wait for the process to start, for each read, and for its exit.
    """

    name = "espeak"

    def __init__(self, settings: EspeakTtsSettings, *, deadline_s: float = 5.0) -> None:
        self.settings = settings
        self._deadline_s = deadline_s

    async def synthesize(self, text: str, voice: str | None = None) -> AsyncGenerator[bytes, None]:
        """Yield ``text`` spoken by espeak-ng as 16 kHz L16 chunks, as the process writes them.

        Args:
            text: what to say (an empty or blank text yields nothing and starts no process).
            voice: an espeak-ng voice name (e.g. ``en-gb``); default: the configured one.

        Yields:
            16 kHz mono L16 chunks.

        Raises:
            ProviderUnavailable: the binary cannot be started.
            ProviderTimeout: no output or no exit within the deadline.
            ProviderReplyError: the output is not a mono 16-bit WAV stream.
            ProviderError: espeak-ng failed (exit status and stderr in the reason), or the voice or
                text cannot be passed to it.
        """
        if not text.strip():
            return
        process = await self._start(text, voice or self.settings.voice)
        wav = WavStream()
        try:
            async with aclosing(self._read(process, wav)) as chunks:
                async for pcm in chunks:
                    yield pcm
            await self._check_exit(process)
            if not wav.in_data:
                raise ProviderReplyError(self.name, "espeak-ng exited without writing a WAV data chunk")
        finally:
            await self._stop(process)

    async def _start(self, text: str, voice: str) -> asyncio.subprocess.Process:
        if not _VOICE.match(voice):
            raise ProviderError(self.name, f"voice {voice!r} is not an espeak-ng voice name")
        if len(text.encode()) > _MAX_TEXT or "\0" in text:
            raise ProviderError(self.name, f"text of {len(text)} characters cannot be an argument")
        s = self.settings
        argv = (s.binary, "-v", voice, "-s", str(s.words_per_minute), "--stdout", "--", text)
        try:
            async with asyncio.timeout(self._deadline_s):
                return await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
        except TimeoutError as exc:
            raise ProviderTimeout(
                self.name, f"{s.binary} did not start within {self._deadline_s:g} s"
            ) from exc
        except OSError as exc:
            raise ProviderUnavailable(self.name, f"cannot run {s.binary!r}: {exc.strerror or exc}") from exc

    async def _read(self, process: asyncio.subprocess.Process, wav: WavStream) -> AsyncGenerator[bytes, None]:
        """The process's stdout as 16 kHz PCM; each read has the deadline (never held over a yield)."""
        assert process.stdout is not None  # stdout=PIPE above
        to16k: ToRate16k | None = None
        while True:
            try:
                async with asyncio.timeout(self._deadline_s):
                    data = await process.stdout.read(_READ)
            except TimeoutError as exc:
                raise ProviderTimeout(self.name, f"no output within {self._deadline_s:g} s") from exc
            if not data:
                break
            try:
                pcm = wav.feed(data)
            except WavFormatError as exc:
                raise ProviderReplyError(self.name, f"unexpected output: {exc}") from exc
            if wav.format is not None and to16k is None:
                to16k = ToRate16k(wav.format.rate)
            if pcm and to16k is not None and (out := to16k.convert(pcm)):
                yield out
        if to16k is not None and (tail := to16k.finish()):
            yield tail

    async def _check_exit(self, process: asyncio.subprocess.Process) -> None:
        """After EOF: the exit status (bounded wait); non-zero raises with espeak-ng's own message."""
        assert process.stderr is not None  # stderr=PIPE above
        try:
            async with asyncio.timeout(self._deadline_s):
                status = await process.wait()
                message = (await process.stderr.read()).decode(errors="replace").strip()
        except TimeoutError as exc:
            raise ProviderTimeout(self.name, f"no exit within {self._deadline_s:g} s of its output") from exc
        if status != 0:
            raise ProviderError(self.name, f"espeak-ng exited with {status}: {message or 'no message'}")

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        """Kill the process if it still runs (closed early, failed), and reap it (bounded wait)."""
        if process.returncode is not None:
            return
        process.kill()
        try:
            async with asyncio.timeout(self._deadline_s):
                await process.wait()
        except TimeoutError as exc:
            raise ProviderTimeout(
                self.name, f"pid {process.pid} outlived SIGKILL by {self._deadline_s:g} s"
            ) from exc


PROVIDER = Provider(EspeakTtsSettings, lambda settings, _executor: EspeakTTS(settings))
