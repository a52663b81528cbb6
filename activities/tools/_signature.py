"""A tool's argument model and call, made from its function's signature.

Kept apart from the registry so the two shapes ``@tool`` accepts read in one place:
a function of one pydantic model and the context (the model *is* the schema), or a
function of plain typed parameters, whose model is built here with
``pydantic.create_model`` (descriptions from the docstring's ``Args:`` section).
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic_core import to_json

ToolCallable = Callable[[Any, Any], Awaitable[Any]]
"""``(args, ctx) -> result``: what the tool activity calls."""

_ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")
_SECTION = re.compile(r"^\s*\w[\w ]*:\s*$")


def adapt_function(
    function: Callable[..., Any], *, context_type: type, keep: tuple[type, ...]
) -> tuple[type[BaseModel], ToolCallable]:
    """The arguments' model and an ``(args, ctx)`` callable for ``function``.

    Args:
        function: The tool's function, ``async`` or not.
        context_type: The annotation that marks the context parameter.
        keep: Result types returned as they are; any other result is written as JSON.

    Raises:
        TypeError: A parameter has no annotation, or is ``*args``/``**kwargs``.
    """
    hints = get_type_hints(function)
    params = list(inspect.signature(function).parameters.values())
    first = hints.get(params[0].name) if params else None
    rest = [hints.get(p.name, context_type) for p in params[1:]]
    if isinstance(first, type) and issubclass(first, BaseModel) and rest in ([], [context_type]):
        # ``(args: Model, ctx)``: the model is the schema; a model among other
        # parameters is just a parameter (``(city: City, units: str)``).
        return first, _model_call(function, bool(rest), keep)
    return _signature_model(function, params, hints, context_type), _plain_call(
        function, params, hints, context_type, keep
    )


def _signature_model(
    function: Callable[..., Any],
    params: list[inspect.Parameter],
    hints: dict[str, Any],
    context_type: type,
) -> type[BaseModel]:
    described = _arg_descriptions(inspect.getdoc(function) or "")
    fields: dict[str, Any] = {}
    for param in params:
        if hints.get(param.name) is context_type:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {function.__name__}: *args and **kwargs cannot be offered")
        if param.name not in hints:
            raise TypeError(
                f"tool {function.__name__}: parameter {param.name!r} needs a type annotation "
                "(its JSON schema is built from it)"
            )
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (
            hints[param.name],
            Field(default, description=described.get(param.name)),
        )
    name = "".join(part.title() for part in function.__name__.split("_")) + "Args"
    model: type[BaseModel] = create_model(name, __config__=ConfigDict(extra="forbid"), **fields)
    return model


def _model_call(
    function: Callable[..., Any], takes_context: bool, keep: tuple[type, ...]
) -> ToolCallable:
    async def call(args: Any, ctx: Any) -> Any:
        return _result(await _invoke(function, *((args, ctx) if takes_context else (args,))), keep)

    return call


def _plain_call(
    function: Callable[..., Any],
    params: list[inspect.Parameter],
    hints: dict[str, Any],
    context_type: type,
    keep: tuple[type, ...],
) -> ToolCallable:
    context_name = next((p.name for p in params if hints.get(p.name) is context_type), None)

    async def call(args: Any, ctx: Any) -> Any:
        # Attributes, not model_dump: nested models reach the function as models.
        kwargs = {name: getattr(args, name) for name in type(args).model_fields}
        if context_name is not None:
            kwargs[context_name] = ctx
        return _result(await _invoke(function, **kwargs), keep)

    return call


async def _invoke(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if inspect.iscoroutinefunction(function):
        return await function(*args, **kwargs)
    # A blocking function in a thread: the worker's event loop keeps heartbeating.
    return await asyncio.to_thread(function, *args, **kwargs)


def _result(value: Any, keep: tuple[type, ...]) -> Any:
    if isinstance(value, keep):
        return value
    return to_json(value).decode()


def _arg_descriptions(doc: str) -> dict[str, str]:
    """``name: text`` lines of a Google-style ``Args:`` section."""
    found: dict[str, str] = {}
    inside, last = False, None
    for line in doc.splitlines():
        if line.strip() in {"Args:", "Arguments:"}:
            inside = True
            continue
        if not inside:
            continue
        if _SECTION.match(line) and not line.startswith(" "):
            break
        match = _ARG_LINE.match(line)
        if match:
            last = match.group(1)
            found[last] = match.group(2).strip()
        elif last and line.strip():
            found[last] += " " + line.strip()
    return found
