"""The tool registry: typed async functions with a pydantic argument model.

A tool is declared in a few lines::

    class Weather(BaseModel):
        city: str = Field(description="City name, e.g. 'Paris'")

    @tool(timeout=timedelta(seconds=10), max_attempts=3)
    async def get_weather(args: Weather, ctx: ToolContext) -> str:
        '''Current weather for a city.'''
        return f"sunny in {args.city}"

and handed to the worker (``ToolRegistry([*default_tools(), get_weather])``). The JSON
schema the model sees is generated from the argument model, never written by hand; the
description is the function's docstring, up to its first section (``Args:``...).

What a tool declares, and who acts on it:

- ``timeout``, ``heartbeat``, ``max_attempts``: the workflow schedules the activity
  with them. A tool that runs long sets ``heartbeat`` and calls ``ctx.heartbeat()``
  more often than that, so a dead worker is noticed and cancellation reaches the tool.
  Set ``max_attempts=1`` when a side effect must not repeat.
- ``approval``: whether a person approves a call before it runs (``ApprovalMode``:
  ``never``, ``always``, or ``dangerous_command``, which asks only when the call's
  ``command`` argument is flagged by
  :func:`~activities.tools.dangerous.is_dangerous_command`); the workflow asks, the
  tool never sees the difference.
- ``host_affine``: the call runs on the worker that holds the agent's shell (its
  background commands, its local copy of an object-store workspace), through that
  worker's own task queue; the workflow pins the agent to one worker on its first such
  call and moves it only when that worker is gone.

A tool returns text for the model, or a :class:`ToolOutput` to report another status
(``running`` for work that goes on in the background). It raises
``ToolError("message", code="...")`` for a failure the model should read and act on;
any other exception is retried by Temporal up to ``max_attempts``. Use
``ctx.idempotency_key`` to deduplicate external side effects across retries.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from pydantic import BaseModel, ValidationError

from duragent.activities.errors import ToolError
from duragent.activities.limits import MAX_ERROR_BYTES, truncate
from duragent.activities.models import (
    ApprovalMode,
    ToolCall,
    ToolKind,
    ToolResult,
    ToolSpec,
    ToolStatus,
)
from duragent.activities.tools._signature import adapt_function
from duragent.activities.tools.workspace import Workspace

if TYPE_CHECKING:
    from duragent.activities.tools.background import BackgroundCommands
    from duragent.activities.tools.mirror import WorkspaceMirrors
    from duragent.activities.tools.skills import Skills

ArgsT = TypeVar("ArgsT", bound=BaseModel)

# Where a Google-style docstring's sections start; the description stops there.
# Tuples of tool names whose schema list is kept; a workflow offers a handful.
_MAX_CACHED_NAME_SETS = 256

_DOC_SECTION = re.compile(r"(Args|Arguments|Returns|Yields|Raises|Examples?|Notes?|Attributes):")

MAX_ARGUMENT_DEPTH = 128
"""Nesting of a call's JSON arguments. Deeper, ``json.loads`` may raise
``RecursionError`` at a depth that depends on the caller's stack: in a workflow that
would fail the task, or pass on one replay and not on another."""
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


@dataclass(frozen=True)
class ToolContext:
    """What a tool function gets besides its arguments."""

    workspace: Workspace
    """The agent's workspace; every path goes through it."""
    call_id: str
    """The model's tool call id."""
    idempotency_key: str
    """``workflow_id:tool_call_id``, stable across retries: use it to deduplicate
    external side effects."""
    heartbeat: Callable[..., None] = field(default=lambda *_: None)
    """Report progress; long tools call it so cancellation reaches them."""
    background: BackgroundCommands | None = None
    """The worker's background commands; ``None`` when the worker runs none."""
    skills: Skills | None = None
    """The worker's skills; ``None`` means the ``skills`` folder of the workspace."""
    mirrors: WorkspaceMirrors | None = None
    """Local copies of object-store workspaces, where shell commands run; ``None``
    when the worker keeps none."""


@dataclass(frozen=True)
class ToolOutput:
    """A tool's answer with a status other than plain success."""

    content: str
    """What the model reads."""
    status: ToolStatus = ToolStatus.SUCCESS
    """E.g. ``running`` when the work goes on in the background."""
    background: str | None = None
    """The session id of a background command the call started (the workflow then
    watches it on this worker)."""


ToolFunction = Callable[[ArgsT, ToolContext], Awaitable[str | ToolOutput]]


@dataclass(frozen=True)
class Tool(Generic[ArgsT]):
    """A registered tool: its schema source, its function and its execution policy."""

    name: str
    description: str
    args_model: type[ArgsT]
    function: ToolFunction[ArgsT] | None
    """``None`` for control tools, which the workflow interprets itself."""
    kind: ToolKind = ToolKind.ACTIVITY
    timeout: timedelta = timedelta(seconds=60)
    """Start-to-close timeout of one attempt."""
    heartbeat: timedelta | None = None
    """Heartbeat timeout; set it for tools that run long and call ``ctx.heartbeat``."""
    max_attempts: int = 3
    """Attempts on unexpected failures (a ``ToolError`` is never retried)."""
    approval: ApprovalMode = ApprovalMode.NEVER
    """Whether a call waits for a person's approval (applied by the workflow)."""
    host_affine: bool = False
    """Whether calls run on the worker that holds the agent's shell (see the module)."""

    def spec(self) -> ToolSpec:
        """The scheduling policy the workflow needs."""
        return ToolSpec(
            name=self.name,
            kind=self.kind,
            approval=self.approval,
            start_to_close_seconds=self.timeout.total_seconds(),
            heartbeat_seconds=self.heartbeat.total_seconds() if self.heartbeat else None,
            max_attempts=self.max_attempts,
            host_affine=self.host_affine,
        )

    def parse(self, raw: str) -> ArgsT:
        """Parse and validate a call's raw JSON arguments (see :func:`parse_arguments`).

        Raises:
            ToolError: With code ``invalid_arguments``, saying what to fix.
        """
        return parse_arguments(self.name, self.args_model, raw)

    def openai_schema(self) -> dict[str, Any]:
        """The Chat Completions ``tools`` entry for this tool."""
        parameters = self.args_model.model_json_schema()
        parameters.pop("title", None)
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": parameters,
            },
        }


@overload
def tool(function: Callable[..., Any], /) -> Tool[Any]: ...


@overload
def tool(
    *,
    name: str | None = None,
    timeout: timedelta = ...,
    heartbeat: timedelta | None = None,
    max_attempts: int = 3,
    approval: ApprovalMode = ApprovalMode.NEVER,
    host_affine: bool = False,
) -> Callable[[Callable[..., Any]], Tool[Any]]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    timeout: timedelta = timedelta(seconds=60),
    heartbeat: timedelta | None = None,
    max_attempts: int = 3,
    approval: ApprovalMode = ApprovalMode.NEVER,
    host_affine: bool = False,
) -> Tool[Any] | Callable[[Callable[..., Any]], Tool[Any]]:
    """Declare a tool from a typed function, as ``@tool`` or ``@tool(timeout=...)``.

    Two shapes of function are accepted:

    - plain typed parameters, ``async def add(a: int, b: int) -> str``: the arguments'
      model is built from the signature (descriptions from the docstring's ``Args:``);
      a parameter annotated ``ToolContext`` gets the call's context. A function that is
      not ``async`` runs in a thread, so it never blocks the worker's event loop;
    - one pydantic model and the context, ``async def f(args: Model, ctx: ToolContext)``.

    The result is text for the model, a :class:`ToolOutput`, or any value pydantic can
    write as JSON (a model, a dict, a number), which the model reads as JSON.

    Args:
        function: The function, when used bare (``@tool``).
        name: Name offered to the model; defaults to the function's name.
        timeout: Start-to-close timeout of one attempt.
        heartbeat: Heartbeat timeout for long tools (they call ``ctx.heartbeat``).
        max_attempts: Attempts on unexpected failures; 1 when a side effect must not
            repeat.
        approval: Whether a call waits for a person's approval.
        host_affine: Run on the worker that holds the agent's shell (commands, the
            local copy of its files) rather than on any worker.

    Returns:
        The :class:`Tool` (bare use), or a decorator that makes one.
    """

    def wrap(function: Callable[..., Any]) -> Tool[Any]:
        args_model, call = adapt_function(function, context_type=ToolContext, keep=_KEEP)
        return Tool(
            name=name or function.__name__,
            description=_description(function),
            args_model=args_model,
            function=call,
            timeout=timeout,
            heartbeat=heartbeat,
            max_attempts=max_attempts,
            approval=approval,
            host_affine=host_affine,
        )

    return wrap if function is None else wrap(function)


# Results a tool function returns as they are; anything else reaches the model as JSON.
_KEEP = (str, ToolOutput)


def control_tool(name: str, args_model: type[ArgsT], description: str) -> Tool[ArgsT]:
    """Declare a tool the workflow interprets itself (it has no function)."""
    return Tool(
        name=name,
        description=description,
        args_model=args_model,
        function=None,
        kind=ToolKind.CONTROL,
    )


class ToolSource(Protocol):
    """Tools a worker learns while it runs (an MCP server's), found by name."""

    def get(self, name: str) -> Tool[Any] | None:
        """The tool of that name as last seen, or ``None``; never waits."""
        ...


class ToolRegistry:
    """The tools a worker offers, by name.

    Args:
        tools: The worker's own tools (built-in, user-defined), fixed for its lifetime.
        source: Tools learnt at run time (MCP servers'); a name the registry does not
            hold is looked up there.
    """

    def __init__(self, tools: Iterable[Tool[Any]], *, source: ToolSource | None = None) -> None:
        self._source = source
        self._tools: dict[str, Tool[Any]] = {}
        for t in tools:
            if t.name in self._tools:
                raise ValueError(f"tool {t.name!r} is registered twice")
            self._tools[t.name] = t
        # A worker's tools are fixed, so each schema is built once (pydantic's JSON
        # schema generation costs milliseconds per LLM call otherwise), and so is the
        # list for each set of names the workflow offers.
        self._schema: dict[str, dict[str, Any]] = {}
        self._schemas: dict[tuple[str, ...], list[dict[str, Any]]] = {}

    def get(self, name: str) -> Tool[Any] | None:
        """The tool of that name (the worker's own, else the source's), or ``None``."""
        found = self._tools.get(name)
        if found is None and self._source is not None:
            return self._source.get(name)
        return found

    @property
    def names(self) -> list[str]:
        """Registered tool names, in registration order (the source's are not listed)."""
        return list(self._tools)

    def schemas(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """Chat Completions tool entries for the given names (unknown names skipped).

        Built once per tool and per tuple of names: the entries are shared between
        calls, so callers send them and never change them. A list with a source's tool
        is built each time: the source may list that tool anew.
        """
        key = tuple(names)
        cached = self._schemas.get(key)
        if cached is not None:
            return list(cached)
        entries: list[dict[str, Any]] = []
        learnt = False
        for name in key:
            if name in self._tools:
                entries.append(self._schema_of(name))
            elif (found := self.get(name)) is not None:
                entries.append(found.openai_schema())
                learnt = True
        if not learnt:
            if len(self._schemas) >= _MAX_CACHED_NAME_SETS:
                self._schemas.clear()  # bounded whatever the workflows ask for
            self._schemas[key] = entries
        return list(entries)

    def _schema_of(self, name: str) -> dict[str, Any]:
        schema = self._schema.get(name)
        if schema is None:
            schema = self._schema[name] = self._tools[name].openai_schema()
        return schema

    def as_mapping(self) -> Mapping[str, Tool[Any]]:
        """Read-only view of the registry."""
        return dict(self._tools)


def _description(function: Callable[..., Any]) -> str:
    """The docstring up to its first section (``Args:``...), one line per paragraph.

    The summary line stays short for linters and readers; the paragraphs after it tell
    the model the rest.
    """
    paragraphs: list[str] = []
    for paragraph in (inspect.getdoc(function) or "").split("\n\n"):
        lines = [line.strip() for line in paragraph.strip().splitlines()]
        if not lines:
            continue
        if _DOC_SECTION.fullmatch(lines[0]):
            break
        paragraphs.append(" ".join(lines))
    return "\n\n".join(paragraphs) or function.__name__


def error_result(call: ToolCall, err: ToolError) -> ToolResult:
    """A failed call as the structured result the model reads: status, code, message."""
    return ToolResult(
        call_id=call.id,
        name=call.name,
        status=ToolStatus.ERROR,
        # An error message that quotes its input must not carry that input whole.
        content=truncate(str(err), MAX_ERROR_BYTES),
        error_code=err.code,
    )


def parse_arguments(tool_name: str, model: type[ArgsT], raw: str) -> ArgsT:
    """Parse and validate a model's raw JSON arguments, before any side effect.

    Pure and deterministic, so the workflow uses it for control tools too.

    Raises:
        ToolError: With code ``invalid_arguments`` and a message that tells the model
            exactly what to fix.
    """
    depth = _nesting(raw)
    if depth > MAX_ARGUMENT_DEPTH:
        raise ToolError(
            f"arguments for {tool_name} nest {depth} levels deep, more than "
            f"{MAX_ARGUMENT_DEPTH}; send flatter JSON",
            code="invalid_arguments",
        )
    try:
        data = json.loads(raw or "{}")
    except json.JSONDecodeError as err:
        raise ToolError(
            f"arguments for {tool_name} are not valid JSON ({err.msg} at position "
            f"{err.pos}); send a JSON object matching the tool's schema",
            code="invalid_arguments",
        ) from err
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
            for e in err.errors()
        )
        raise ToolError(
            f"invalid arguments for {tool_name}: {problems}", code="invalid_arguments"
        ) from err


def _nesting(raw: str) -> int:
    """How deeply arrays and objects nest in JSON text (strings skipped); no recursion."""
    if raw.count("[") + raw.count("{") <= MAX_ARGUMENT_DEPTH:
        return 0  # too few brackets to be too deep: the common case costs two counts
    level = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", raw)):
        level += 1 if bracket in "[{" else -1
        deepest = max(deepest, level)
    return deepest
