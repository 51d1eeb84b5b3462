"""The OpenAI chat completions agent against a loopback server speaking its API (tests/providerkit.py).

What the server observes is asserted (request path, auth header, body and tools), as well as what the
agent makes of the answers: streamed text and tool calls, retries only where they are safe, deadlines,
and the mapping of failures to ``ProviderError`` subclasses.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest

from media_worker.agent.base import ActionRequest, AgentEvent, Message, TextDelta
from media_worker.agent.openai import OpenAiAgent, OpenAiAgentSettings
from media_worker.errors import ProviderReplyError, ProviderTimeout, ProviderUnavailable
from tests.integration.voicenetkit import FAST_RETRY, drain
from tests.providerkit import ScriptedServer, chunk, split, sse, stall, status, streamed, tool_call

pytestmark = pytest.mark.timeout(10)

HISTORY = [Message("system", "You are a phone agent."), Message("user", "I want to talk to a human.")]
SSE = "text/event-stream"


def agent_settings(base: str, **overrides: Any) -> OpenAiAgentSettings:
    data = {"provider": "openai", "base_url": base, "model": "test-model", "api_key": "sk-test"}
    return OpenAiAgentSettings.model_validate({**data, "retry": FAST_RETRY, **overrides})


async def collect(events: AsyncIterator[AgentEvent]) -> list[AgentEvent]:
    return [event async for event in events]


def text_of(events: list[AgentEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


# ---- chat completions ---------------------------------------------------------------------------------

TRANSFER_STREAM = sse(
    {**chunk(content=""), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    chunk(content="Sure, I'll tr"),
    chunk(content="ansfer you to a col"),
    chunk(content="league now."),
    chunk(tool_calls=[tool_call(0, "transfer_call")]),
    chunk(tool_calls=[tool_call(0, arguments='{"exte')]),
    chunk(tool_calls=[tool_call(0, arguments='nsion": "20')]),
    chunk(tool_calls=[tool_call(0, arguments='01"}')]),
    chunk(finish="tool_calls"),
)


async def test_agent_streams_text_then_actions_and_sends_the_request_shape() -> None:
    server = ScriptedServer([streamed(split(TRANSFER_STREAM, 7), SSE)])
    async with (
        server.run() as base,
        aclosing(OpenAiAgent(agent_settings(base, temperature=0.5, max_tokens=120))) as agent,
    ):
        events = await collect(agent.reply(HISTORY))
    assert next(e for e in events if isinstance(e, TextDelta)) == TextDelta("Sure, I'll tr")
    assert text_of(events) == "Sure, I'll transfer you to a colleague now."
    assert events[-1] == ActionRequest("transfer", "2001")
    (request,) = server.received
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test"
    body = json.loads(request.body)
    assert body["model"] == "test-model"
    assert body["stream"] is True
    assert (body["temperature"], body["max_tokens"]) == (0.5, 120)
    assert body["messages"] == [{"role": m.role, "content": m.content} for m in HISTORY]
    names = [tool["function"]["name"] for tool in body["tools"]]
    assert names == ["transfer_call", "hang_up", "send_dtmf"]


async def test_agent_interleaved_tool_calls_and_default_extension() -> None:
    stream = sse(
        chunk(tool_calls=[tool_call(0, "send_dtmf"), tool_call(1, "transfer_call")]),
        chunk(tool_calls=[tool_call(0, arguments='{"digits":'), tool_call(1, arguments="{}")]),
        chunk(tool_calls=[tool_call(0, arguments=' "12#"}')]),
        chunk(tool_calls=[tool_call(2, "hang_up")]),
        chunk(finish="tool_calls"),
    )
    server = ScriptedServer([streamed(split(stream, 11), SSE)])
    async with (
        server.run() as base,
        aclosing(OpenAiAgent(agent_settings(base, transfer_extension="1000"))) as agent,
    ):
        events = await collect(agent.reply(HISTORY))
    assert events == [
        ActionRequest("dtmf", "12#"),
        ActionRequest("transfer", "1000"),
        ActionRequest("hangup"),
    ]


@pytest.mark.parametrize("first", [status(500, {"error": {"message": "boom"}}), status(429, {})])
async def test_agent_retries_a_5xx_or_429_then_succeeds(first: Any) -> None:
    server = ScriptedServer([first, streamed([TRANSFER_STREAM], SSE)])
    async with server.run() as base, aclosing(OpenAiAgent(agent_settings(base))) as agent:
        events = await collect(agent.reply(HISTORY))
    assert len(server.received) == 2
    assert events[-1] == ActionRequest("transfer", "2001")


async def test_agent_5xx_forever_is_unavailable_after_the_attempts() -> None:
    server = ScriptedServer([status(503, {"error": {"message": "overloaded"}})])
    async with server.run() as base, aclosing(OpenAiAgent(agent_settings(base))) as agent:
        with pytest.raises(ProviderUnavailable, match=r"overloaded.*after 3 attempts"):
            await collect(agent.reply(HISTORY))
    assert len(server.received) == 3


async def test_agent_401_is_a_reply_error_with_the_server_message_and_no_retry() -> None:
    server = ScriptedServer([status(401, {"error": {"message": "Incorrect API key provided"}})])
    async with server.run() as base, aclosing(OpenAiAgent(agent_settings(base))) as agent:
        with pytest.raises(ProviderReplyError, match="401: Incorrect API key provided"):
            await collect(agent.reply(HISTORY))
    assert len(server.received) == 1


async def test_agent_stalled_server_times_out_within_the_deadline() -> None:
    server = ScriptedServer([stall()])
    async with server.run() as base:
        async with aclosing(
            OpenAiAgent(agent_settings(base, timeout_s=0.3, retry={**FAST_RETRY, "attempts": 2}))
        ) as agent:
            started = time.monotonic()
            with pytest.raises(ProviderTimeout):
                await collect(agent.reply(HISTORY))
        elapsed = time.monotonic() - started
    assert len(server.received) == 2
    assert 0.6 <= elapsed < 1.5


async def test_agent_stall_after_text_times_out_between_chunks_without_retry() -> None:
    body = sse(chunk(content="Let me check"), done=False)
    server = ScriptedServer([streamed([body], SSE, then="stall")])
    async with (
        server.run() as base,
        aclosing(OpenAiAgent(agent_settings(base), chunk_timeout_s=0.2)) as agent,
    ):
        seen: list[AgentEvent] = []
        started = time.monotonic()
        with pytest.raises(ProviderTimeout):
            await drain(agent.reply(HISTORY), seen)
    assert seen == [TextDelta("Let me check")]
    assert len(server.received) == 1
    assert time.monotonic() - started < 1.0


async def test_agent_cut_after_text_is_unavailable_without_retry() -> None:
    body = sse(chunk(content="Hello the"), done=False)
    server = ScriptedServer([streamed([body], SSE, then="drop")])
    async with server.run() as base, aclosing(OpenAiAgent(agent_settings(base))) as agent:
        with pytest.raises(ProviderUnavailable):
            await collect(agent.reply(HISTORY))
    assert len(server.received) == 1


async def test_agent_cut_before_any_text_is_retried() -> None:
    partial = sse(chunk(tool_calls=[tool_call(0, "hang_up")]), done=False)
    server = ScriptedServer([streamed([partial], SSE), streamed([TRANSFER_STREAM], SSE)])
    async with server.run() as base, aclosing(OpenAiAgent(agent_settings(base))) as agent:
        events = await collect(agent.reply(HISTORY))
    assert len(server.received) == 2
    assert events[-1] == ActionRequest("transfer", "2001")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (sse(chunk(content="Hi"), '{"choices": [{"delta": {"content": "unterminated'), "not JSON"),
        (sse(chunk(tool_calls=[tool_call(0, "format_disk", "{}")], finish="tool_calls")), "unknown tool"),
        (
            sse(chunk(tool_calls=[tool_call(0, "send_dtmf", '{"digits": 12')], finish="tool_calls")),
            "not JSON",
        ),
        (sse({"error": {"message": "context length exceeded"}}), "context length exceeded"),
    ],
)
async def test_agent_malformed_stream_is_a_reply_error(body: bytes, match: str) -> None:
    server = ScriptedServer([streamed([body], SSE)])
    async with server.run() as base, aclosing(OpenAiAgent(agent_settings(base))) as agent:
        with pytest.raises(ProviderReplyError, match=match):
            await collect(agent.reply(HISTORY))
    assert len(server.received) == 1


async def test_agent_closed_early_by_the_caller_stops_cleanly() -> None:
    gate = asyncio.Event()  # never set: the rest of the answer is never sent
    head = sse(chunk(content="Sure, I'll tr"), done=False)
    server = ScriptedServer([streamed([head, TRANSFER_STREAM], SSE, gate=gate)])
    async with server.run() as base, aclosing(OpenAiAgent(agent_settings(base))) as agent:
        replies = agent.reply(HISTORY)
        assert isinstance(replies, AsyncGenerator)
        first = await anext(replies)
        await replies.aclose()  # barge-in
    assert first == TextDelta("Sure, I'll tr")
    assert not server.finished.is_set()
