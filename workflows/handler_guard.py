"""A workflow interceptor that keeps malformed signal and update input out of handlers.

Anyone with a Temporal client can signal or update an agent (``temporal workflow
signal --input …``). The SDK decodes each argument into the handler's annotated type,
but only when the number of payloads matches the handler's parameters: with none, or
two, it hands the handler raw JSON values, or calls it with the wrong number of
arguments. A handler that then raises a ``TypeError`` fails the workflow task, and
the task is retried forever. This guard checks the arguments' count and types first:

- a bad **signal** is dropped and logged (a signal cannot be refused); a workflow that
  has an ``on_dropped_signal(name, reason)`` method is told, so ``status`` can show it;
- a bad **update** is rejected by its validator, before anything reaches history.

A payload that does not decode into the annotated model is already handled by the SDK
the same way (signal dropped, update rejected).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)


class HandlerInputGuard(Interceptor):
    """Checks every signal's and update's arguments against its handler's signature."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        """The inbound interceptor class for every workflow of the worker."""
        return _GuardInbound


class _GuardInbound(WorkflowInboundInterceptor):
    async def handle_signal(self, input: HandleSignalInput) -> None:
        problem = argument_problem(_parameters(_SIGNAL, input.signal), input.args)
        if problem is None:
            await super().handle_signal(input)
            return
        workflow.logger.warning("signal %s dropped: %s", input.signal, problem)
        notify = getattr(workflow.instance(), "on_dropped_signal", None)
        if callable(notify):
            notify(input.signal, problem)

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        _reject_bad_update(input)
        super().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        # Reached without a validator (or one that was skipped): still never a TypeError.
        _reject_bad_update(input)
        return await super().handle_update_handler(input)


def _reject_bad_update(input: HandleUpdateInput) -> None:
    problem = argument_problem(_parameters(_UPDATE, input.update), input.args)
    if problem is not None:
        raise ApplicationError(f"invalid {input.update} input: {problem}", type="InvalidInput")


Parameter = tuple[str, object, bool]
"""A handler parameter: its name, its annotated class (or another annotation), and
whether it has a default."""


def argument_problem(expected: list[Parameter] | None, args: typing.Sequence[Any]) -> str | None:
    """Why ``args`` cannot be passed to a handler, or ``None`` when they can.

    Args:
        expected: The handler's parameters (``None``: not known, not checked).
        args: The decoded arguments.
    """
    if expected is None:
        return None
    required = sum(1 for _, _, has_default in expected if not has_default)
    if not required <= len(args) <= len(expected):
        count = f"{required}" if required == len(expected) else f"{required} to {len(expected)}"
        return f"expected {count} argument(s), got {len(args)}"
    for value, (name, kind, _) in zip(args, expected, strict=False):
        if isinstance(kind, type) and not isinstance(value, kind):
            return f"{name} must be a {kind.__name__} object, got {type(value).__name__}"
    return None


# Where the SDK's decorators keep a handler's definition (name, unbound function): on
# the function, as ``__temporal_signal_definition`` for a signal and ``_defn`` (the
# ``UpdateMethodMultiParam`` protocol) for an update.
_SIGNAL = "__temporal_signal_definition"
_UPDATE = "_defn"


def _parameters(attribute: str, name: str) -> list[Parameter] | None:
    cls: Any = type(workflow.instance())
    return _handler_parameters(cls, attribute, name)


@functools.cache  # keyed by the workflow class: a handful of entries per worker
def _handler_parameters(cls: type, attribute: str, name: str) -> list[Parameter] | None:
    """The positional parameters (``self`` excluded) of the class's handler ``name``."""
    for _, member in inspect.getmembers(cls):
        defn = getattr(member, attribute, None)
        if defn is None or getattr(defn, "name", None) != name:
            continue
        fn: Callable[..., Any] = defn.fn
        hints = typing.get_type_hints(fn)
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if getattr(defn, "is_method", False):
            params = params[1:]
        return [(p.name, hints.get(p.name), p.default is not p.empty) for p in params]
    return None
