"""The LLM activity: one Chat Completions call through the real ``openai`` client.

The client is built by the worker with ``max_retries=0``: Temporal owns retries, so
every attempt shows in history with its error, and a 429's ``Retry-After`` becomes the
activity's ``next_retry_delay`` (see :mod:`activities.errors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import LLMErrorType, llm_error_to_application_error
from activities.heartbeat import heartbeating
from activities.models import LLMRequest, LLMResult, Message, Role, TokenUsage, ToolCall
from activities.tools.registry import ToolRegistry


class LLMActivities:
    """LLM calls with an injected OpenAI-compatible client (built once per worker)."""

    def __init__(self, client: AsyncOpenAI, registry: ToolRegistry) -> None:
        if client.max_retries != 0:
            raise ValueError("build the OpenAI client with max_retries=0: Temporal retries")
        self._client = client
        self._registry = registry

    @activity.defn(name="duragent.llm_chat")
    async def chat(self, request: LLMRequest) -> LLMResult:
        """Send the prompt, return the assistant's turn with token usage."""
        kwargs = self._create_kwargs(request)
        try:
            async with heartbeating():
                if request.stream:
                    return await self._stream(kwargs)
                return await self._complete(kwargs)
        except openai.OpenAIError as err:
            raise llm_error_to_application_error(err) from err

    def _create_kwargs(self, request: LLMRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [to_openai_message(m) for m in request.messages],
        }
        tools = self._registry.schemas(request.tool_names)
        if tools:
            kwargs["tools"] = tools
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        return kwargs

    async def _complete(self, kwargs: dict[str, Any]) -> LLMResult:
        response = await self._client.chat.completions.create(**kwargs)
        if not response.choices:
            raise ApplicationError("LLM returned no choices", type=LLMErrorType.BAD_RESPONSE)
        choice = response.choices[0]
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "{}")
            for c in choice.message.tool_calls or []
            if c.type == "function"
        ]
        usage = response.usage
        return LLMResult(
            message=Message(role=Role.ASSISTANT, content=choice.message.content, tool_calls=calls),
            usage=TokenUsage(
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
            ),
            finish_reason=choice.finish_reason,
            model=response.model,
        )

    async def _stream(self, kwargs: dict[str, Any]) -> LLMResult:
        acc = _StreamAccumulator()
        stream = await self._client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
        async with stream:
            async for chunk in stream:
                activity.heartbeat()
                acc.add(chunk)
        return acc.result()


@dataclass
class _StreamAccumulator:
    """Assembles streamed ``chat.completion.chunk`` deltas into one assistant turn."""

    content: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish_reason: str | None = None
    model: str = ""
    usage: TokenUsage = field(default_factory=TokenUsage)

    def add(self, chunk: Any) -> None:
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.usage = TokenUsage(
                input_tokens=chunk.usage.prompt_tokens,
                output_tokens=chunk.usage.completion_tokens,
            )
        for choice in chunk.choices:
            self.finish_reason = choice.finish_reason or self.finish_reason
            delta = choice.delta
            if delta.content:
                self.content.append(delta.content)
            for tc in delta.tool_calls or []:
                slot = self.calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = tc.id or slot["id"]
                if tc.function is not None:
                    slot["name"] += tc.function.name or ""
                    slot["arguments"] += tc.function.arguments or ""

    def result(self) -> LLMResult:
        if self.finish_reason is None:
            # The stream closed before the model said it was done: a dropped connection.
            # Retrying gives a whole answer; acting on half of one would not.
            raise ApplicationError(
                "LLM stream ended before a finish_reason (truncated response)",
                type=LLMErrorType.BAD_RESPONSE,
            )
        calls = [
            ToolCall(id=s["id"], name=s["name"], arguments=s["arguments"] or "{}")
            for _, s in sorted(self.calls.items())
        ]
        return LLMResult(
            message=Message(
                role=Role.ASSISTANT, content="".join(self.content) or None, tool_calls=calls
            ),
            usage=self.usage,
            finish_reason=self.finish_reason,
            model=self.model,
        )


def to_openai_message(message: Message) -> dict[str, Any]:
    """A transcript message in the Chat Completions wire shape."""
    out: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.role is Role.TOOL and message.name:
        out["name"] = message.name
    return out
