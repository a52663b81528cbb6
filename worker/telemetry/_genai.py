"""Span attributes of LLM and tool calls, after the OpenTelemetry GenAI conventions.

https://opentelemetry.io/docs/specs/semconv/gen-ai/ : an LLM call is a ``chat {model}``
client span, a tool call an ``execute_tool {name}`` span. Message contents are opt-in
attributes (``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.tool.call.arguments``, ``gen_ai.tool.call.result``), JSON in the conventions'
message shape: a role and a list of typed parts.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from typing import Any

from opentelemetry.util.types import AttributeValue

from duragent.activities.models import (
    LLMRequest,
    LLMResult,
    Message,
    Role,
    SummarizeRequest,
    SummarizeResult,
    ToolRequest,
    ToolResult,
)

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

Attributes = dict[str, AttributeValue]


def server_attributes(base_url: str | None) -> Attributes:
    """``server.address`` and ``server.port`` of the LLM endpoint (OpenAI when unset)."""
    parsed = urllib.parse.urlsplit(base_url or "https://api.openai.com/v1")
    attributes: Attributes = {SERVER_ADDRESS: parsed.hostname or ""}
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    attributes[SERVER_PORT] = port
    return attributes


def llm_request_attributes(request: LLMRequest | SummarizeRequest, *, content: bool) -> Attributes:
    """What is known before the call: the model, the sampling, optionally the prompt."""
    attributes: Attributes = {
        OPERATION: "chat",
        PROVIDER: "openai",
        REQUEST_MODEL: request.model,
    }
    if isinstance(request, LLMRequest):
        attributes[REQUEST_STREAM] = request.stream
        attributes["duragent.llm.tools_offered"] = len(request.tool_names)
        if request.temperature is not None:
            attributes[REQUEST_TEMPERATURE] = request.temperature
        if request.base_ref is not None:
            # The messages are the part added since a stored transcript, not the whole
            # prompt: the reader of the content attributes needs to know.
            attributes["duragent.llm.continues_stored_transcript"] = True
    if content:
        system = request.system if isinstance(request, LLMRequest) else None
        if system:
            attributes[SYSTEM_INSTRUCTIONS] = _json([{"type": "text", "content": system}])
        attributes[INPUT_MESSAGES] = _json([_message(m) for m in request.messages])
    return attributes


def llm_result_attributes(result: LLMResult | SummarizeResult, *, content: bool) -> Attributes:
    """What the provider answered: usage, finish reason, optionally the completion."""
    attributes: Attributes = {
        INPUT_TOKENS: result.usage.input_tokens,
        OUTPUT_TOKENS: result.usage.output_tokens,
    }
    if isinstance(result, LLMResult):
        if result.model:
            attributes[RESPONSE_MODEL] = result.model
        if result.finish_reason:
            attributes[FINISH_REASONS] = [result.finish_reason]
        if content:
            output = _message(result.message) | {"finish_reason": result.finish_reason or ""}
            attributes[OUTPUT_MESSAGES] = _json([output])
    elif content:
        output = {"role": "assistant", "parts": [{"type": "text", "content": result.summary}]}
        attributes[OUTPUT_MESSAGES] = _json([output])
    return attributes


def tool_request_attributes(request: ToolRequest, *, content: bool) -> Attributes:
    """The tool, the call id, optionally the arguments."""
    call = request.call
    attributes: Attributes = {
        OPERATION: "execute_tool",
        TOOL_NAME: call.name,
        TOOL_CALL_ID: call.id,
        TOOL_TYPE: "function",
    }
    if content:
        attributes[TOOL_ARGUMENTS] = call.arguments
    return attributes


def tool_result_attributes(result: ToolResult, *, content: bool) -> Attributes:
    """The result's status, its error code, optionally the result itself."""
    attributes: Attributes = {"duragent.tool.status": result.status.value}
    if result.error_code:
        attributes[ERROR_TYPE] = result.error_code
    if result.artifact:
        attributes["duragent.tool.artifact"] = result.artifact
    if content:
        attributes[TOOL_RESULT] = result.content
    return attributes


def _message(message: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if message.role is Role.TOOL:
        response = {"type": "tool_call_response", "id": message.tool_call_id or ""}
        parts.append(response | {"response": message.content or ""})
    elif message.content:
        parts.append({"type": "text", "content": message.content})
    parts.extend(
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": _arguments(c.arguments)}
        for c in message.tool_calls
    )
    return {"role": message.role.value, "parts": parts}


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # malformed arguments are shown as the model wrote them


def _json(value: Sequence[Any]) -> str:
    return json.dumps(value, ensure_ascii=False)
