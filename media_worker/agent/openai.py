"""An OpenAI-compatible chat model as the agent: streamed text, and tools for transfer, hang-up and DTMF.

Protocol (OpenAI API reference, "Create chat completion", ``stream: true``; vLLM, Ollama and llama.cpp's
server speak the same): ``POST {base_url}/chat/completions`` answers ``text/event-stream``, server-sent
events as the WHATWG HTML standard defines them (§9.2 "Server-sent events"): ``field: value`` lines, an
event ends at a blank line, lines starting with ``:`` are comments, and the payload is the event's
``data:`` lines. Each payload is one JSON chunk; ``data: [DONE]`` ends the stream. Of a chunk we read
``choices[0]``:

- ``delta.content``: the next piece of the reply (it may split a word) → a :class:`TextDelta` at once;
- ``delta.tool_calls``: fragments keyed by ``index``; the first of a call has ``id`` and
  ``function.name``, the next ones bring ``function.arguments`` (a JSON object, as string pieces to join);
- ``finish_reason`` (``stop``, ``length``, ``tool_calls``): the answer is complete; the tool calls then
  become :class:`ActionRequest` items (at ``[DONE]`` at the latest).

A chunk ``{"error": {"message": …}}`` is the server giving up mid-stream. Errors of this module::

    ProviderReplyError   HTTP 4xx, a malformed event or chunk, an unknown tool, bad tool arguments
    ProviderUnavailable  connection failures, HTTP 5xx/429, the stream cut before its answer was complete
    ProviderTimeout      waiting on the server for more than timeout_s, or chunk_timeout_s between chunks

A failed request is tried again (:mod:`media_worker.netretry`) only while no text went to the caller.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import Field, HttpUrl

from media_worker.agent.base import ActionRequest, Agent, AgentEvent, Message, TextDelta
from media_worker.errors import ProviderReplyError, ProviderUnavailable
from media_worker.netretry import LazySession, NetworkSettings, WaitBudget, posted, stream_with_retries
from media_worker.registry import Provider

__all__ = ["PROVIDER", "TOOLS", "ChatStreamParser", "OpenAiAgent", "OpenAiAgentSettings", "SseFramer"]

NAME = "openai-agent"
_MAX_LINE = 1 << 20  # an SSE line longer than this is not a chat chunk
_EXTENSION = re.compile(r"[0-9A-Za-z*#+_.-]+")  # as OpenAiAgentSettings.transfer_extension
_DTMF = re.compile(r"[0-9A-Da-d*#]+")  # RFC 4733 events 0-15
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "transfer_call",
            "description": "Transfer the caller to a human colleague (or to the given extension).",
            "parameters": {
                "type": "object",
                "properties": {"extension": {"type": "string", "description": "extension to ring"}},
                "required": [],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "hang_up",
            "description": "End the call, after saying goodbye.",
            "parameters": {"type": "object", "properties": {}, "required": []},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "send_dtmf",
            "description": "Send touch-tone digits on the call (0-9, *, #, A-D).",
            "parameters": {
                "type": "object",
                "properties": {"digits": {"type": "string", "description": "the digits to send"}},
                "required": ["digits"],
            },
        },
    },
]


class OpenAiAgentSettings(NetworkSettings):
    """An OpenAI-compatible ``POST {base_url}/chat/completions`` with ``stream: true`` and tools (OpenAI,
    vLLM, Ollama, llama.cpp server)."""

    provider: Literal["openai"]
    base_url: HttpUrl
    model: str
    temperature: float = Field(0.3, ge=0, le=2)
    max_tokens: int = Field(300, ge=1)
    transfer_extension: str = Field("1000", pattern=r"^[0-9A-Za-z*#+_.-]+$", description="default target")


class SseFramer:
    """Server-sent events framing, sans-IO: bytes in, the ``data`` payload of each complete event out.

    Lines end in CRLF, LF or CR (a CR at the end of the input waits for the next byte, which may be its
    LF). Only ``data`` fields count; their lines are joined with LF. Framing is on bytes, so a multi-byte
    character split across reads is harmless; decoding is the caller's business.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[bytes] | None = None
        self._started = False

    def feed(self, data: bytes) -> list[bytes]:
        """Take the next bytes of the stream; return the payloads of the events they complete.

        Raises:
            ProviderReplyError: a line longer than 1 MiB.
        """
        self._buffer += data
        if not self._started:
            if len(self._buffer) < len(_BOM) and _BOM.startswith(self._buffer):
                return []
            self._started = True
            if self._buffer.startswith(_BOM):
                del self._buffer[: len(_BOM)]
        payloads: list[bytes] = []
        while (line := self._next_line()) is not None:
            if not line:
                if self._data is not None:
                    payloads.append(b"\n".join(self._data))
                self._data = None
            elif not line.startswith(b":"):
                name, _, value = line.partition(b":")
                if name == b"data":
                    self._data = self._data if self._data is not None else []
                    self._data.append(value.removeprefix(b" "))
        if len(self._buffer) > _MAX_LINE:
            raise ProviderReplyError(NAME, "an event-stream line longer than 1 MiB")
        return payloads

    def _next_line(self) -> bytes | None:
        end = _LINE_END.search(self._buffer)
        if end is None or (end.group() == b"\r" and end.end() == len(self._buffer)):
            return None
        line = bytes(self._buffer[: end.start()])
        del self._buffer[: end.end()]
        return line


@dataclass(slots=True)
class _ToolCall:
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def _fail(reason: str) -> ProviderReplyError:
    return ProviderReplyError(NAME, reason)


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{what} is not a JSON object")
    return value


def _text(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(f"{what} is not a string")
    return value


class ChatStreamParser:
    """The chat-completion event stream, sans-IO: bytes in, :data:`AgentEvent` items out.

    Args:
        transfer_extension: the extension of a ``transfer_call`` that names none.
    """

    def __init__(self, transfer_extension: str) -> None:
        self._framer = SseFramer()
        self._default_extension = transfer_extension
        self._calls: dict[int, _ToolCall] = {}
        self._actions_sent = False
        self.answered = False
        """A ``finish_reason`` or ``[DONE]`` came: the answer is complete."""
        self.done = False
        """``[DONE]`` came: nothing follows."""

    def feed(self, data: bytes) -> list[AgentEvent]:
        """Take the next bytes of the response body; return the events they complete.

        Raises:
            ProviderReplyError: the stream breaks the chat-completion shape (and nothing else).
        """
        events: list[AgentEvent] = []
        for payload in self._framer.feed(data):
            if not self.done:
                events += self._on_payload(payload.strip())
        return events

    def _on_payload(self, payload: bytes) -> list[AgentEvent]:
        if payload == b"[DONE]":
            self.done = self.answered = True
            return self._actions()
        if not payload:
            return []
        try:
            chunk = _object(orjson.loads(payload), "a chunk")
        except orjson.JSONDecodeError as exc:
            raise _fail(f"a chunk is not JSON: {payload[:80]!r}") from exc
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise _fail(f"the server ended the stream: {message}")
        choices = chunk.get("choices")
        if choices is None or choices == []:  # e.g. the usage chunk
            return []
        if not isinstance(choices, list):
            raise _fail("choices is not a list")
        return self._on_choice(_object(choices[0], "choices[0]"))

    def _on_choice(self, choice: dict[str, Any]) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        delta = _object(choice.get("delta") or {}, "delta")
        if content := _text(delta.get("content"), "delta.content"):
            events.append(TextDelta(content))
        fragments = delta.get("tool_calls") or []
        if not isinstance(fragments, list):
            raise _fail("delta.tool_calls is not a list")
        for position, fragment in enumerate(fragments):
            self._add_fragment(_object(fragment, "a tool call"), position)
        if _text(choice.get("finish_reason"), "finish_reason"):
            self.answered = True
            events += self._actions()
        return events

    def _add_fragment(self, fragment: dict[str, Any], position: int) -> None:
        index = fragment.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool):
            raise _fail("a tool call's index is not an integer")
        call = self._calls.setdefault(index, _ToolCall())
        function = _object(fragment.get("function") or {}, "a tool call's function")
        call.name = call.name or _text(function.get("name"), "function.name")
        call.arguments.append(_text(function.get("arguments"), "function.arguments"))

    def _actions(self) -> list[AgentEvent]:
        if self._actions_sent:
            return []
        self._actions_sent = True
        return [self._action(self._calls[index]) for index in sorted(self._calls)]

    def _action(self, call: _ToolCall) -> ActionRequest:
        joined = "".join(call.arguments).strip() or "{}"
        try:
            arguments = _object(orjson.loads(joined), f"the arguments of {call.name}")
        except orjson.JSONDecodeError as exc:
            raise _fail(f"the arguments of {call.name} are not JSON: {joined[:80]!r}") from exc
        if call.name == "hang_up":
            return ActionRequest("hangup")
        if call.name == "transfer_call":
            extension = arguments.get("extension") or self._default_extension
            if isinstance(extension, int) and not isinstance(extension, bool):
                extension = str(extension)
            if not isinstance(extension, str) or not _EXTENSION.fullmatch(extension):
                raise _fail(f"transfer_call: not an extension: {extension!r}")
            return ActionRequest("transfer", extension)
        if call.name == "send_dtmf":
            digits = arguments.get("digits")
            if not isinstance(digits, str) or not _DTMF.fullmatch(digits.replace(" ", "")):
                raise _fail(f"send_dtmf: not DTMF digits: {digits!r}")
            return ActionRequest("dtmf", digits.replace(" ", ""))
        raise _fail(f"unknown tool {call.name!r}")


class OpenAiAgent(Agent):
    """A chat model behind an OpenAI-compatible ``/chat/completions``, streamed, with three tools.

    Args:
        settings: where the server is, the model, its sampling, deadlines and retries.
        chunk_timeout_s: the longest wait for the next piece of the stream once the response started.
    """

    name = NAME

    def __init__(self, settings: OpenAiAgentSettings, *, chunk_timeout_s: float = 5.0) -> None:
        self.settings = settings
        self.chunk_timeout_s = chunk_timeout_s
        self._url = f"{str(settings.base_url).rstrip('/')}/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if settings.api_key is not None:
            self._headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self._session = LazySession(settings.connect_timeout_s)

    def reply(self, history: Sequence[Message]) -> AsyncIterator[AgentEvent]:
        """The reply to ``history``: text pieces as they come, then the requested actions.

        Raises:
            ProviderError: see the module docstring.
        """
        body = orjson.dumps(
            {
                "model": self.settings.model,
                "messages": [{"role": m.role, "content": m.content} for m in history],
                "stream": True,
                "temperature": self.settings.temperature,
                "max_tokens": self.settings.max_tokens,
                "tools": TOOLS,
            }
        )
        return stream_with_retries(self.settings.retry, lambda: self._attempt(body))

    async def _attempt(self, body: bytes) -> AsyncGenerator[AgentEvent, None]:
        budget = WaitBudget(self.settings.timeout_s)
        parser = ChatStreamParser(self.settings.transfer_extension)
        request = self._session.get().post(self._url, data=body, headers=self._headers)
        async with posted(NAME, "POST /chat/completions", request, budget) as response:
            while not parser.done and (chunk := await self._read(response, budget, parser)):
                for event in parser.feed(chunk):
                    yield event
        if not parser.answered:
            raise ProviderUnavailable(NAME, "the stream ended before the answer was complete")

    async def _read(
        self, response: aiohttp.ClientResponse, budget: WaitBudget, parser: ChatStreamParser
    ) -> bytes:
        """The next piece of the body; ``b""`` at its end, or on a failure once the answer is complete
        (what follows ``finish_reason`` is only ``[DONE]``)."""
        try:
            return await budget.wait(response.content.readany(), self.chunk_timeout_s)
        except (TimeoutError, aiohttp.ClientError):
            if parser.answered:
                return b""
            raise

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._session.aclose()


PROVIDER = Provider(OpenAiAgentSettings, lambda settings, _executor: OpenAiAgent(settings))
