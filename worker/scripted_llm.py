r"""A scripted, OpenAI-compatible Chat Completions server for tests and the offline demo.

The engine talks to this server with the real ``openai`` client over real HTTP, exactly
as it talks to OpenAI, vLLM or LiteLLM. Instead of a model, *scripts* decide what the
assistant answers. Scripts are plain data (a dict, or a JSON file), so a test or a demo
can describe a whole agent run without writing code::

    {"name": "demo", "match": "some marker text",
     "steps": [
       {"content": "thinking...",
        "tool_calls": [{"name": "write_file",
                        "arguments": {"path": "a.txt", "content": "hi"}}]},
       {"faults": [{"status": 500}, {"status": 429, "retry_after": 1}],
        "tool_calls": [{"name": "_task_finish", "arguments": {"message": "done"}}]}
     ],
     "after_last": "repeat_last"}

Choosing the script
    ``match`` is a substring searched in the system (and developer) messages and in the
    first user message of a request. The first registered script that matches wins.
    A script whose ``match`` is ``"*"`` or absent is a default, tried only after every
    specific script. When nothing matches, the server answers 400 with an
    OpenAI-shaped error that says so.

Choosing the step
    The step is derived from the request itself: **step index = number of ``assistant``
    messages already in ``messages``**. The server keeps no conversation state, so a
    retried or replayed request always gets the same step. Past the last step,
    ``after_last`` decides: ``"repeat_last"`` (default) answers with the last step
    again, ``"error"`` answers 400.

A step
    ``content`` (text) and/or ``tool_calls`` (at least one of the two). Each tool call
    is ``{"name", "arguments", "id"?}``; ``arguments`` given as an object is serialised
    with ``json.dumps``, given as a string it is sent verbatim, which is how a test sends
    malformed JSON such as ``"{\"path\": "``. Tool-call ids default to
    ``call_<step>_<i>``. Optional fields: ``usage`` (any of ``prompt_tokens``,
    ``completion_tokens``, ``total_tokens``; missing ones are estimated as
    characters // 4, at least 1), ``finish_reason`` (default ``tool_calls`` when there
    are tool calls, else ``stop``), ``delay_seconds`` (sleep before every answer of this
    step), ``chunk_seconds`` (a stream's pause between its chunks, as a model that
    generates slowly; the request log keeps when each chunk left) and ``model`` (the
    model name reported; default: the requested one).

Stream shapes
    Real servers stream differently; a step can answer the way they do. ``reasoning``
    (text) is sent as ``reasoning_content`` deltas before the content (or in the
    message, when not streaming); ``reasoning_field: "reasoning"`` names it as
    OpenRouter and Ollama do. ``stream_tool_calls`` shapes the tool-call deltas:
    ``"indexed"`` (default, as OpenAI: id and name first, then argument pieces, each
    with its ``index``), ``"no_index"`` (the same pieces without ``index``),
    ``"whole_no_index"`` (each call whole in one delta, without ``index``),
    ``"repeat_name"`` (id and name repeated in every delta) and ``"reused_index"``
    (every call at index 0, told apart by its id).

Rules
    ``rules`` (optional) are checked before the index: ``{"when_last": "<regex>",
    "step": {...}}``; the first rule whose pattern is found in the text of the request's
    last message answers (recorded as step ``1000 + i``). Long-run tests use them to end
    or branch a run on what happened, since compaction changes the message count.

Faults
    ``faults`` lists what goes wrong on the first attempts of a step. Attempts are
    counted by the server per (script name, step index), from 0: attempt ``k`` gets
    ``faults[k]`` while ``k < len(faults)``, later attempts get the normal answer.
    A fault is exactly one of:

    - ``{"status": 429, "retry_after": 1, "message": "..."}``: an HTTP error with an
      OpenAI-shaped body; ``retry_after`` sets the ``Retry-After`` (seconds) and
      ``retry-after-ms`` headers.
    - ``{"delay_seconds": 5}``: a slow answer, then the normal response.
    - ``{"truncate_stream": true}``: a stream sends some chunks and then drops the
      connection, with no ``finish_reason`` and no ``[DONE]``; a non-streaming request
      gets its connection closed without any response.
    - ``{"context_length_exceeded": true}``: 400 with code ``context_length_exceeded``
      and OpenAI's "This model's maximum context length is ..." message.

HTTP surface
    ``POST /v1/chat/completions`` (``stream`` and ``stream_options.include_usage``
    honoured), ``GET /v1/models``, ``POST /_scripts`` (register a script at run time),
    ``POST /_outage`` (``{"script", "seconds", "status"?}``: every request of that
    script, or whose matched text contains ``script``, answers ``status``, default 503,
    for that long — a provider outage),
    ``GET /_requests`` (the request log), ``GET /healthz``. With an ``api_key``, the
    ``/v1`` endpoints answer 401 ``invalid_api_key`` to any other bearer token; the
    underscore endpoints are for the test harness and take no key. Streams use chunked
    transfer encoding, so a dropped stream is an error the client can see, not a short
    but well-formed body.

Run it in-process with :class:`ScriptedLLMServer`, or as a process::

    python -m duragent.worker.scripted_llm --port 8000 --script demo.json --api-key K
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "DEFAULT_MODEL",
    "RecordedRequest",
    "ScriptSpec",
    "ScriptedLLMServer",
    "load_scripts",
    "main",
    "parse_script",
]

_log = logging.getLogger(__name__)

DEFAULT_MODEL = "scripted"
"""Model name listed by ``GET /v1/models`` besides those named in scripts."""

RULE_STEP_BASE = 1000
"""Requests answered by rule ``i`` are recorded as step ``RULE_STEP_BASE + i``."""
_CONTEXT_WINDOW = 8192  # the limit quoted by context_length_exceeded faults
_STREAM_PIECE_CHARS = 16  # content and arguments are split into pieces this long
_SERVE_POLL_SECONDS = 0.05  # keeps stop() quick; serve_forever checks for shutdown this often

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


# --- script models -------------------------------------------------------------------


class _Spec(BaseModel):
    # Unknown keys are errors: a typo in a script file must not pass silently.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolCallSpec(_Spec):
    """One tool call the assistant makes."""

    name: str = Field(min_length=1)
    """Function name."""
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    """An object (sent as ``json.dumps``) or a raw string (sent verbatim, may be malformed)."""
    id: str | None = None
    """Tool-call id; default ``call_<step>_<i>``."""


class UsageSpec(_Spec):
    """Token usage to report; missing numbers are estimated."""

    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    total_tokens: int | None = Field(default=None, ge=0)


class FaultSpec(_Spec):
    """What goes wrong on one attempt; exactly one kind per fault."""

    status: int | None = Field(default=None, ge=400, le=599)
    """HTTP error status answered with an OpenAI-shaped error body."""
    retry_after: float | None = Field(default=None, ge=0)
    """Seconds for the ``Retry-After`` header (with ``status`` only)."""
    message: str | None = None
    """Error message (with ``status`` or ``context_length_exceeded``)."""
    delay_seconds: float | None = Field(default=None, ge=0)
    """Answer normally, but only after this many seconds."""
    truncate_stream: bool = False
    """Drop the connection mid-stream (or before any response when not streaming)."""
    context_length_exceeded: bool = False
    """Answer 400 ``context_length_exceeded``."""

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [
            self.status is not None,
            self.delay_seconds is not None,
            self.truncate_stream,
            self.context_length_exceeded,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "a fault needs exactly one of 'status', 'delay_seconds', "
                "'truncate_stream': true, 'context_length_exceeded': true"
            )
        if self.retry_after is not None and self.status is None:
            raise ValueError("'retry_after' only goes with 'status'")
        return self


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
ToolCallShape = Literal["indexed", "no_index", "whole_no_index", "repeat_name", "reused_index"]


class StepSpec(_Spec):
    """The answer to the request that carries ``index`` assistant messages."""

    content: str | None = None
    tool_calls: list[ToolCallSpec] = Field(default_factory=list)
    usage: UsageSpec | None = None
    finish_reason: FinishReason | None = None
    delay_seconds: float | None = Field(default=None, ge=0)
    chunk_seconds: float | None = Field(default=None, ge=0, le=60)
    """Pause between a stream's chunks (a slow model); not streamed: no effect."""
    model: str | None = None
    faults: list[FaultSpec] = Field(default_factory=list)
    reasoning: str | None = None
    """The model's reasoning, sent apart from the content (see "Stream shapes")."""
    reasoning_field: Literal["reasoning_content", "reasoning"] = "reasoning_content"
    stream_tool_calls: ToolCallShape = "indexed"
    """How tool calls are cut into stream deltas (see "Stream shapes")."""

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if self.content is None and not self.tool_calls:
            raise ValueError("a step needs 'content' or 'tool_calls' (use \"\" for an empty reply)")
        return self


class RuleSpec(_Spec):
    """A step chosen by what the request's last message says, before any index."""

    when_last: str = Field(min_length=1)
    """Regular expression searched in the text of the request's last message."""
    step: StepSpec

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        re.compile(self.when_last)
        return self


class ScriptSpec(_Spec):
    """A named sequence of steps, chosen by a marker in the request."""

    name: str = Field(min_length=1)
    match: str | None = None
    """Substring of the system messages or first user message; ``"*"``/absent = default."""
    steps: list[StepSpec] = Field(min_length=1)
    after_last: Literal["repeat_last", "error"] = "repeat_last"
    rules: list[RuleSpec] = Field(default_factory=list)
    """Checked first, in order; the first whose pattern is in the last message answers.
    Lets a long run end or branch on what happened (a counter in a tool result, a
    reply) when compaction makes step indexes meaningless."""

    @property
    def is_default(self) -> bool:
        """Whether this script is a fallback for requests no other script matches."""
        return self.match is None or self.match == "*"


def parse_script(script: Mapping[str, Any]) -> ScriptSpec:
    """Validate one script, turning pydantic's report into a ``ValueError`` that names it.

    Raises:
        ValueError: The script does not follow the format in the module docstring.
    """
    try:
        return ScriptSpec.model_validate(script)
    except ValidationError as err:
        name = script.get("name", "<unnamed>") if isinstance(script, Mapping) else "<not a dict>"
        raise ValueError(f"invalid script {name!r}: {err}") from None


def load_scripts(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON file holding one script (an object) or several (an array).

    Raises:
        ValueError: The file is not JSON or holds neither an object nor an array.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from None
    scripts = data if isinstance(data, list) else [data]
    if not all(isinstance(s, dict) for s in scripts):
        raise ValueError(f"{path}: expected a script object or an array of them")
    return scripts


# --- request log ---------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One ``POST /v1/chat/completions`` as the server saw and answered it."""

    script: str | None
    """Name of the script that answered; ``None`` when none did (auth error, no match)."""
    step: int | None
    """Step index (assistant messages in the request)."""
    attempt: int | None
    """0-based attempt number for this (script, step)."""
    stream: bool
    """Whether the request asked for a stream."""
    body: dict[str, Any]
    """The parsed request body."""
    status: int | None
    """HTTP status answered; ``None`` when the connection was dropped without a response."""
    fault: str | None = None
    """Kind of fault injected: ``status``, ``delay``, ``truncate_stream``,
    ``context_length_exceeded``; ``None`` for a normal answer."""
    chunk_times: list[float] = field(default_factory=list)
    """When each chunk of a streamed answer was written (``time.time()``), as it goes."""


class _ScriptBook:
    """Registered scripts, attempt counters and the request log, shared by handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: list[ScriptSpec] = []
        self._attempts: dict[tuple[str, int], int] = {}
        self._log: list[RecordedRequest] = []
        self._outages: dict[str, tuple[float, int]] = {}

    def add(self, script: Mapping[str, Any]) -> ScriptSpec:
        spec = parse_script(script)
        with self._lock:
            if any(s.name == spec.name for s in self._scripts):
                raise ValueError(f"a script named {spec.name!r} is already registered")
            self._scripts.append(spec)
        return spec

    def match(self, body: Mapping[str, Any]) -> ScriptSpec | None:
        text = _matchable_text(body.get("messages"))
        with self._lock:
            scripts = list(self._scripts)
        for spec in scripts:
            if not spec.is_default and spec.match is not None and spec.match in text:
                return spec
        return next((s for s in scripts if s.is_default), None)

    def no_match_message(self) -> str:
        with self._lock:
            markers = [s.match for s in self._scripts if not s.is_default]
        return (
            "No script matched this request (scripted LLM server): none of the markers "
            f"{markers} occurs in its system messages or first user message, and no "
            "default script (match '*' or none) is registered."
        )

    def model_names(self) -> list[str]:
        with self._lock:
            named = {step.model for s in self._scripts for step in s.steps if step.model}
        return [DEFAULT_MODEL, *sorted(named - {DEFAULT_MODEL})]

    def next_attempt(self, script: str, step: int) -> int:
        with self._lock:
            attempt = self._attempts.get((script, step), 0)
            self._attempts[(script, step)] = attempt + 1
        return attempt

    def attempts(self, script: str) -> int:
        with self._lock:
            return sum(n for (name, _), n in self._attempts.items() if name == script)

    def start_outage(self, script: str, seconds: float, status: int) -> None:
        with self._lock:
            self._outages[script] = (time.monotonic() + seconds, status)

    def outage_status(self, script: str, text: str) -> int | None:
        """The status of an outage keyed by the script's name or by a marker in ``text``."""
        now = time.monotonic()
        with self._lock:
            outages = list(self._outages.items())
        for key, (until, status) in outages:
            if now < until and (key == script or key in text):
                return status
        return None

    def record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)


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


def _text_of(content: Any) -> str:
    """Text of a message's ``content``: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _matchable_text(messages: Any) -> str:
    """System/developer messages and the first user message, joined."""
    if not isinstance(messages, list):
        return ""
    dicts = [m for m in messages if isinstance(m, dict)]
    texts = [_text_of(m.get("content")) for m in dicts if m.get("role") in ("system", "developer")]
    first_user = next((m for m in dicts if m.get("role") == "user"), None)
    if first_user is not None:
        texts.append(_text_of(first_user.get("content")))
    return "\n".join(texts)


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


# --- the HTTP server -----------------------------------------------------------------


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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], book: _ScriptBook, api_key: str | None) -> None:
        super().__init__(address, _Handler)
        self.book = book
        self.api_key = api_key
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket) -> bool:
        """Register an open connection; ``False`` when the server is stopping."""
        with self._connections_lock:
            if self.stopping.is_set():
                return False
            self._connections.add(connection)
            return True

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections, so stop() ends."""
        with self._connections_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the peer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; JSON carries Content-Length, streams are chunked
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers, body and stream chunks are separate small writes; without this, Nagle's
        # algorithm meets the client's delayed ACK and every answer takes ~40 ms longer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.server.track(self.connection):
            self.close_connection = True

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        """Serve the read-only endpoints."""
        self._guarded(self._route_get)

    def do_POST(self) -> None:
        """Serve chat completions and script registration."""
        self._guarded(self._route_post)

    def _guarded(self, route: Callable[[], None]) -> None:
        try:
            route()
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (a cancelled call, a timeout): nothing to answer.
            self.close_connection = True

    def _route_get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send_json(200, {"status": "ok"})
        elif path == "/_requests":
            self._send_json(200, {"requests": [asdict(r) for r in self.server.book.requests()]})
        elif path == "/v1/models" and self._authorized():
            self._send_models()
        elif path != "/v1/models":
            self._send_reply(_error(404, f"Unknown request URL: GET {path}", "unknown_url"))

    def _route_post(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self._read_json()
        if body is None:
            self._send_reply(_error(400, "The request body is not a JSON object."))
        elif path == "/_scripts":
            self._register(body)
        elif path == "/_outage":
            self._outage(body)
        elif path == "/v1/chat/completions" and self._authorized():
            self._complete(body)
        elif path != "/v1/chat/completions":
            self._send_reply(_error(404, f"Unknown request URL: POST {path}", "unknown_url"))

    def _authorized(self) -> bool:
        key = self.server.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send_reply(_error(401))
        return False

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def _register(self, body: dict[str, Any]) -> None:
        try:
            spec = self.server.book.add(body)
        except ValueError as err:
            self._send_reply(_error(400, str(err), "invalid_script"))
        else:
            self._send_json(200, {"registered": spec.name})

    def _outage(self, body: dict[str, Any]) -> None:
        script, seconds, status = body.get("script"), body.get("seconds"), body.get("status", 503)
        if not isinstance(script, str) or not isinstance(seconds, int | float):
            self._send_reply(_error(400, "an outage needs 'script' and 'seconds'"))
            return
        self.server.book.start_outage(script, float(seconds), int(status))
        self._send_json(200, {"outage": script, "seconds": seconds, "status": status})

    def _send_models(self) -> None:
        models = [
            {"id": name, "object": "model", "created": 0, "owned_by": "duragent"}
            for name in self.server.book.model_names()
        ]
        self._send_json(200, {"object": "list", "data": models})

    def _complete(self, body: dict[str, Any]) -> None:
        if not isinstance(body.get("messages"), list):
            self._send_reply(_error(400, "'messages' must be an array.", "invalid_messages"))
            return
        plan = _plan_completion(self.server.book, body)
        # Logged on arrival, before any delay: a test can see that a call is in flight
        # (and kill its worker then), and a client that got its answer finds it here.
        self.server.book.record(plan.record)
        if plan.delay and self.server.stopping.wait(plan.delay):
            self.close_connection = True  # stopping: give up on the slow answer
            return
        self._send_reply(plan.reply, plan)

    def _send_reply(self, reply: _Reply, plan: _Plan | None = None) -> None:
        if isinstance(reply, _JsonReply):
            self._send_json(reply.status, reply.body, reply.headers)
        elif isinstance(reply, _StreamReply):
            self._send_stream(reply, plan)
        else:
            self.close_connection = True

    def _send_json(
        self, status: int, body: Mapping[str, Any], headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, reply: _StreamReply, plan: _Plan | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pace = plan.pace if plan else 0.0
        for n, event in enumerate(reply.events):
            if n == reply.truncate_after or (n and pace and self.server.stopping.wait(pace)):
                # No terminating chunk: the client sees an incomplete body, not an early end.
                self.close_connection = True
                return
            self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
            if plan is not None:
                plan.record.chunk_times.append(time.time())
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


class ScriptedLLMServer:
    """An OpenAI-compatible Chat Completions server that answers from scripts.

    Serves on a background daemon thread; see the module docstring for the script
    format. Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with ScriptedLLMServer(api_key="test", scripts=[script]) as llm:
            client = AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)

    Args:
        host: Interface to bind.
        port: TCP port; 0 picks a free one (read it back from :attr:`base_url`).
        api_key: When set, ``/v1`` requests must carry ``Authorization: Bearer <api_key>``.
        scripts: Scripts registered before serving, in matching order.

    Raises:
        ValueError: A script is malformed or its name is registered twice.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        scripts: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self._address = (host, port)
        self._api_key = api_key
        self._book = _ScriptBook()
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        for script in scripts:
            self.add_script(script)

    def start(self) -> None:
        """Bind the socket and serve on a daemon thread.

        Raises:
            RuntimeError: The server is already running.
        """
        if self._http is not None:
            raise RuntimeError("the scripted LLM server is already running")
        self._http = _HTTPServer(self._address, self._book, self._api_key)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": _SERVE_POLL_SECONDS},
            name=f"scripted-llm:{self._http.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, drop open connections and wait for handler threads; idempotent."""
        http, thread = self._http, self._thread
        if http is None or thread is None:
            return
        http.stopping.set()
        http.shutdown()
        http.close_connections()
        http.server_close()  # joins the handler threads
        thread.join()
        self._http = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:8000/v1``.

        Raises:
            RuntimeError: The server is not running.
        """
        if self._http is None:
            raise RuntimeError("the scripted LLM server is not running; call start() first")
        host, port = self._http.server_address[:2]
        return f"http://{_url_host(str(host))}:{port}/v1"

    def add_script(self, script: Mapping[str, Any]) -> None:
        """Register a script after those already registered.

        Raises:
            ValueError: The script is malformed or its name is already registered.
        """
        self._book.add(script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the chat-completions request log, oldest first."""
        return self._book.requests()

    def attempts(self, script: str) -> int:
        """How many chat-completions requests the named script has answered (any step)."""
        return self._book.attempts(script)

    def outage(self, script: str, seconds: float, status: int = 503) -> None:
        """Answer every request of ``script`` with ``status`` for the next ``seconds``.

        A provider outage as agents meet it: time-based, whatever the step or attempt.
        ``script`` is a script's name, or a marker: then the outage hits the requests
        whose system or first user message contain it, whichever script answers them.
        ``seconds=0`` ends an outage at once.
        """
        self._book.start_outage(script, seconds, status)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --- command line --------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m duragent.worker.scripted_llm",
        description="Serve a scripted OpenAI-compatible Chat Completions API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    parser.add_argument(
        "--script",
        action="append",
        default=[],
        metavar="FILE",
        help="JSON file with a script or an array of scripts (repeatable)",
    )
    parser.add_argument("--api-key", default=None, help="require this bearer token on /v1")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; print the base URL once listening.

    Returns:
        The process exit status: 0 after a clean stop, 2 for a bad script file.
    """
    args = _parse_args(argv)
    try:
        scripts = [script for path in args.script for script in load_scripts(path)]
        server = ScriptedLLMServer(
            host=args.host, port=args.port, api_key=args.api_key, scripts=scripts
        )
    except (OSError, ValueError) as err:
        print(f"scripted LLM: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with server:
        print(f"scripted LLM listening on {server.base_url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
