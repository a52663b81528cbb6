"""Scripts of the scripted LLM server: their format as pydantic models, and their book.

The format itself is described in :mod:`duragent.worker.scripted_llm`'s docstring, where
users read it; this module holds the models that validate it (:func:`parse_script`,
:func:`load_scripts`), the request log entry (:class:`RecordedRequest`) and the book of
registered scripts, attempt counters, outages and the log that handler threads share,
including which script a request matches.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_MODEL = "scripted"
"""Model name listed by ``GET /v1/models`` besides those named in scripts."""

RULE_STEP_BASE = 1000
"""Requests answered by rule ``i`` are recorded as step ``RULE_STEP_BASE + i``."""


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


# --- reading requests ----------------------------------------------------------------


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
