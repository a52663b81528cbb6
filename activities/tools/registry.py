"""The tool registry: typed async functions with a pydantic argument model.

A tool is declared in a few lines::

    class Weather(BaseModel):
        city: str = Field(description="City name, e.g. 'Paris'")

    @tool(timeout=timedelta(seconds=10))
    async def get_weather(args: Weather, ctx: ToolContext) -> str:
        '''Current weather for a city.'''
        return f"sunny in {args.city}"

and handed to the worker (``ToolRegistry([*default_tools(), get_weather])``). The JSON
schema the model sees is generated from the argument model, never written by hand; the
description is the function's docstring.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar, get_type_hints

from pydantic import BaseModel, ValidationError

from activities.errors import ToolError
from activities.models import ToolKind, ToolSpec
from activities.tools.workspace import Workspace

ArgsT = TypeVar("ArgsT", bound=BaseModel)


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


ToolFunction = Callable[[ArgsT, ToolContext], Awaitable[str]]


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

    def spec(self) -> ToolSpec:
        """The scheduling policy the workflow needs."""
        return ToolSpec(
            name=self.name,
            kind=self.kind,
            start_to_close_seconds=self.timeout.total_seconds(),
            heartbeat_seconds=self.heartbeat.total_seconds() if self.heartbeat else None,
            max_attempts=self.max_attempts,
        )

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


def tool(
    *,
    name: str | None = None,
    timeout: timedelta = timedelta(seconds=60),
    heartbeat: timedelta | None = None,
    max_attempts: int = 3,
) -> Callable[[ToolFunction[ArgsT]], Tool[ArgsT]]:
    """Declare a tool from a typed async function ``(args: Model, ctx: ToolContext)``.

    Args:
        name: Name offered to the model; defaults to the function's name.
        timeout: Start-to-close timeout of one attempt.
        heartbeat: Heartbeat timeout for long tools.
        max_attempts: Attempts on unexpected failures.

    Returns:
        A decorator that turns the function into a :class:`Tool`.
    """

    def wrap(function: ToolFunction[ArgsT]) -> Tool[ArgsT]:
        return Tool(
            name=name or function.__name__,
            description=_description(function),
            args_model=_args_model(function),
            function=function,
            timeout=timeout,
            heartbeat=heartbeat,
            max_attempts=max_attempts,
        )

    return wrap


def control_tool(name: str, args_model: type[ArgsT], description: str) -> Tool[ArgsT]:
    """Declare a tool the workflow interprets itself (it has no function)."""
    return Tool(
        name=name,
        description=description,
        args_model=args_model,
        function=None,
        kind=ToolKind.CONTROL,
    )


class ToolRegistry:
    """The tools a worker offers, by name."""

    def __init__(self, tools: Iterable[Tool[Any]]) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        for t in tools:
            if t.name in self._tools:
                raise ValueError(f"tool {t.name!r} is registered twice")
            self._tools[t.name] = t

    def get(self, name: str) -> Tool[Any] | None:
        """The tool of that name, or ``None``."""
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        """Registered tool names, in registration order."""
        return list(self._tools)

    def schemas(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """Chat Completions tool entries for the given names (unknown names skipped)."""
        return [self._tools[n].openai_schema() for n in names if n in self._tools]

    def as_mapping(self) -> Mapping[str, Tool[Any]]:
        """Read-only view of the registry."""
        return dict(self._tools)


def _description(function: Callable[..., Any]) -> str:
    doc = inspect.getdoc(function) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip() or function.__name__


def _args_model(function: Callable[..., Any]) -> type[Any]:
    hints = get_type_hints(function)
    params = list(inspect.signature(function).parameters)
    model = hints.get(params[0]) if params else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(
            f"tool {function.__name__}: the first parameter must be annotated with a "
            "pydantic model (the tool's arguments)"
        )
    return model


def parse_arguments(tool_name: str, model: type[ArgsT], raw: str) -> ArgsT:
    """Parse and validate a model's raw JSON arguments, before any side effect.

    Pure and deterministic, so the workflow uses it for control tools too.

    Raises:
        ToolError: With code ``invalid_arguments`` and a message that tells the model
            exactly what to fix.
    """
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
