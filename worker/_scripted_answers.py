"""How the scripted LLM server answers: replies, OpenAI-shaped errors, faults and streams.

Pure functions from a request body and the script book to a :class:`_Plan` (a delay,
then a reply, and the request's log entry); the HTTP handler in
:mod:`duragent.worker._scripted_http` only writes plans out.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from duragent.worker._scripted_scripts import (
    DEFAULT_MODEL,
    RULE_STEP_BASE,
    FaultSpec,
    RecordedRequest,
    ScriptSpec,
    StepSpec,
    ToolCallShape,
    ToolCallSpec,
    UsageSpec,
    _matchable_text,
    _ScriptBook,
    _text_of,
)

_CONTEXT_WINDOW = 8192  # the limit quoted by context_length_exceeded faults
_STREAM_PIECE_CHARS = 16  # content and arguments are split into pieces this long

_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    # status: (message, type, code), as OpenAI words them
    400: ("Bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model", "invalid_request_error", None),
    404: ("The model does not exist", "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    503: ("The engine is currently overloaded, please try again later", "server_error", None),
}


# --- building answers ----------------------------------------------------------------


@dataclass(frozen=True)
class _JsonReply:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _StreamReply:
    events: tuple[dict[str, Any], ...]
    truncate_after: int | None = None  # drop the connection after this many events


@dataclass(frozen=True)
class _DropReply:
    """Close the connection without answering."""


_Reply = _JsonReply | _StreamReply | _DropReply


def _message_chars(message: Any) -> int:
    if not isinstance(message, dict):
        return 0
    chars = len(_text_of(message.get("content")))
    for call in message.get("tool_calls") or []:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        chars += len(str(function.get("name", ""))) + len(str(function.get("arguments", "")))
    return chars


def _estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    messages = body.get("messages")
    chars = sum(_message_chars(m) for m in messages) if isinstance(messages, list) else 0
    return max(1, chars // 4)


def _error_body(
    message: str, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """An OpenAI-shaped error body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _error(status: int, message: str | None = None, code: str | None = None) -> _JsonReply:
    default_message, type_, default_code = _STATUS_ERRORS.get(
        status,
        (f"HTTP {status}", "server_error" if status >= 500 else "invalid_request_error", None),
    )
    return _JsonReply(status, _error_body(message or default_message, type_, code or default_code))


def _fault_error(fault: FaultSpec, body: Mapping[str, Any]) -> _JsonReply:
    if fault.context_length_exceeded:
        tokens = max(_estimate_prompt_tokens(body), _CONTEXT_WINDOW + 1)
        message = fault.message or (
            f"This model's maximum context length is {_CONTEXT_WINDOW} tokens. However, your "
            f"messages resulted in {tokens} tokens. Please reduce the length of the messages."
        )
        body_ = _error_body(message, "invalid_request_error", "context_length_exceeded", "messages")
        return _JsonReply(400, body_)
    assert fault.status is not None  # FaultSpec guarantees one kind
    reply = _error(fault.status, fault.message)
    if fault.retry_after is None:
        return reply
    headers = (
        ("Retry-After", f"{fault.retry_after:g}"),
        ("retry-after-ms", str(round(fault.retry_after * 1000))),
    )
    return _JsonReply(reply.status, reply.body, headers)


@dataclass(frozen=True)
class _Answer:
    """The normal (fault-free) answer of one step, independent of streaming."""

    id: str
    model: str
    content: str | None
    tool_calls: tuple[dict[str, Any], ...]
    finish_reason: str
    usage: dict[str, int]
    reasoning: str | None = None
    reasoning_field: str = "reasoning_content"
    tool_call_shape: ToolCallShape = "indexed"


def _answer(spec: StepSpec, step: int, attempt: int, body: Mapping[str, Any]) -> _Answer:
    tool_calls = tuple(_tool_call(call, step, i) for i, call in enumerate(spec.tool_calls))
    completion_chars = len(spec.content or "") + sum(
        len(c["function"]["arguments"]) for c in tool_calls
    )
    return _Answer(
        id=f"chatcmpl-scripted-{step}-{attempt}",
        model=spec.model or str(body.get("model") or DEFAULT_MODEL),
        content=spec.content,
        tool_calls=tool_calls,
        finish_reason=spec.finish_reason or ("tool_calls" if tool_calls else "stop"),
        usage=_usage(spec.usage, _estimate_prompt_tokens(body), max(1, completion_chars // 4)),
        reasoning=spec.reasoning,
        reasoning_field=spec.reasoning_field,
        tool_call_shape=spec.stream_tool_calls,
    )


def _tool_call(call: ToolCallSpec, step: int, index: int) -> dict[str, Any]:
    arguments = call.arguments
    return {
        "id": call.id or f"call_{step}_{index}",
        "type": "function",
        "function": {
            "name": call.name,
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


def _usage(given: UsageSpec | None, prompt: int, completion: int) -> dict[str, int]:
    if given is not None:
        prompt = given.prompt_tokens if given.prompt_tokens is not None else prompt
        completion = given.completion_tokens if given.completion_tokens is not None else completion
    total = given.total_tokens if given is not None and given.total_tokens is not None else None
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion if total is None else total,
    }


def _completion(answer: _Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None}
    if answer.reasoning is not None:
        message[answer.reasoning_field] = answer.reasoning
    if answer.tool_calls:
        message["tool_calls"] = list(answer.tool_calls)
    return {
        "id": answer.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": answer.usage,
    }


def _pieces(text: str) -> list[str]:
    return [text[i : i + _STREAM_PIECE_CHARS] for i in range(0, len(text), _STREAM_PIECE_CHARS)]


def _deltas(answer: _Answer) -> Iterable[dict[str, Any]]:
    """The ``delta`` objects of a stream, before the one that carries ``finish_reason``."""
    yield {"role": "assistant", "content": "", "refusal": None}
    for piece in _pieces(answer.reasoning or ""):
        yield {answer.reasoning_field: piece}
    for piece in _pieces(answer.content or ""):
        yield {"content": piece}
    for index, call in enumerate(answer.tool_calls):
        for fragment in _call_fragments(call, answer.tool_call_shape):
            if answer.tool_call_shape in ("indexed", "repeat_name"):
                fragment["index"] = index
            elif answer.tool_call_shape == "reused_index":
                fragment["index"] = 0
            yield {"tool_calls": [fragment]}


def _call_fragments(call: dict[str, Any], shape: ToolCallShape) -> list[dict[str, Any]]:
    """One tool call as stream fragments, without their ``index``."""
    function = call["function"]
    name, arguments = function["name"], function["arguments"]
    head = {"id": call["id"], "type": "function"}
    if shape == "whole_no_index":
        return [{**head, "function": {"name": name, "arguments": arguments}}]
    pieces = _pieces(arguments)
    if shape == "repeat_name":
        return [{**head, "function": {"name": name, "arguments": p}} for p in pieces or [""]]
    first = {**head, "function": {"name": name, "arguments": ""}}
    return [first, *({"function": {"arguments": p}} for p in pieces)]


def _stream(answer: _Answer, include_usage: bool, truncate: bool) -> _StreamReply:
    base = {
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": answer.model,
        "system_fingerprint": None,
    }
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice], **extra}

    events = [chunk(delta, None) for delta in _deltas(answer)]
    # A truncated stream keeps the role chunk and about half of the rest.
    truncate_after = max(1, (len(events) + 1) // 2) if truncate else None
    events.append(chunk({}, answer.finish_reason))
    if include_usage:
        events.append({**base, "choices": [], "usage": answer.usage})
    return _StreamReply(tuple(events), truncate_after)


# --- planning an answer --------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """How to answer one chat-completions request: a delay, then a reply."""

    reply: _Reply
    record: RecordedRequest
    delay: float = 0.0
    pace: float = 0.0
    """Seconds between a stream's chunks."""


def _plan_completion(book: _ScriptBook, body: dict[str, Any]) -> _Plan:
    stream = body.get("stream") is True
    script = book.match(body)
    if script is None:
        reply = _error(400, book.no_match_message(), "no_script")
        return _Plan(reply, RecordedRequest(None, None, None, stream, body, 400))
    down = book.outage_status(script.name, _matchable_text(body.get("messages")))
    if down is not None:
        record = RecordedRequest(script.name, None, None, stream, body, down, fault="outage")
        return _Plan(_error(down, "The provider is unavailable (scripted outage)."), record)
    messages = body["messages"]
    rule = _matching_rule(script, messages)
    if rule is not None:
        step = RULE_STEP_BASE + rule
        attempt = book.next_attempt(script.name, step)
        record = RecordedRequest(script.name, step, attempt, stream, body, 200)
        return _plan_step(script.rules[rule].step, step, attempt, record, body)
    step = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
    attempt = book.next_attempt(script.name, step)
    record = RecordedRequest(script.name, step, attempt, stream, body, 200)
    if step >= len(script.steps) and script.after_last == "error":
        message = f"Script {script.name!r} has {len(script.steps)} steps; there is no step {step}."
        return _Plan(_error(400, message, "script_exhausted"), replace(record, status=400))
    spec = script.steps[min(step, len(script.steps) - 1)]
    return _plan_step(spec, step, attempt, record, body)


def _matching_rule(script: ScriptSpec, messages: list[Any]) -> int | None:
    if not script.rules or not messages or not isinstance(messages[-1], dict):
        return None
    last = _text_of(messages[-1].get("content"))
    return next((i for i, r in enumerate(script.rules) if re.search(r.when_last, last)), None)


def _plan_step(
    spec: StepSpec, step: int, attempt: int, record: RecordedRequest, body: dict[str, Any]
) -> _Plan:
    fault = spec.faults[attempt] if attempt < len(spec.faults) else None
    delay = spec.delay_seconds or 0.0
    answer = _answer(spec, step, attempt, body)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    pace = spec.chunk_seconds or 0.0
    if fault is None:
        return _Plan(_normal_reply(answer, record.stream, include_usage), record, delay, pace)
    if fault.delay_seconds is not None:
        reply = _normal_reply(answer, record.stream, include_usage)
        return _Plan(reply, replace(record, fault="delay"), delay + fault.delay_seconds, pace)
    if fault.truncate_stream and record.stream:
        reply = _stream(answer, include_usage, truncate=True)
        return _Plan(reply, replace(record, fault="truncate_stream"), delay, pace)
    if fault.truncate_stream:
        return _Plan(_DropReply(), replace(record, status=None, fault="truncate_stream"), delay)
    error = _fault_error(fault, body)
    kind = "context_length_exceeded" if fault.context_length_exceeded else "status"
    return _Plan(error, replace(record, status=error.status, fault=kind), delay)


def _normal_reply(answer: _Answer, stream: bool, include_usage: bool) -> _Reply:
    if stream:
        return _stream(answer, include_usage, truncate=False)
    return _JsonReply(200, _completion(answer))
