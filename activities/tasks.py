"""Tasks: plain Python functions a graph's ``task`` node runs, as one activity.

A task is a function with JSON keyword arguments and a JSON return value, marked with
:func:`task`::

    @task
    def word_count(text: str) -> int:
        '''Words in a text.'''
        return len(text.split())

    @task(name="reports:publish")
    async def publish(title: str, body: str) -> str:
        ...

Its ref, ``"module:function"`` unless named, is what a graph's task node names
(``task: {ref: "examples.graphs.tasks:word_count", args: {text: "${draft}"}}``). The
decorator only marks the function (it stays callable as it was); nothing is registered
process-wide. The worker imports the modules it is told to load (``duragent worker
--load MODULE``), builds a :class:`TaskRegistry` from the marked functions it finds
in them, and hands it to :class:`TaskActivities`, whose one activity,
``duragent.run_task``, runs any of them.

How a call ends, and whether Temporal tries again (the ``type`` is the
``ApplicationError``'s, see ``activities.errors.TaskErrorType``):

====================================  ==============  ============================
the call                               retried?        type
====================================  ==============  ============================
returns JSON, at most 256 KiB          (done)          —
raises ``TaskError("why")``            no              ``TaskFailed``
raises ``TaskError(.., retryable=True)``  yes           ``TaskFailed``
raises anything else                   yes             (the exception's own)
unknown ref                            no              ``TaskNotFound``
arguments that do not fit              no              ``TaskBadArguments``
returns something that is not JSON     no              ``TaskResultNotJSON``
returns more than 256 KiB              no              ``TaskResultTooLarge``
====================================  ==============  ============================

An async function runs on the worker's event loop, a sync one in a thread
(``asyncio.to_thread``); either way the activity heartbeats while it runs, so a dead
worker is noticed and cancellation reaches an async function at its next ``await``.
Inside a task, :func:`current_call` gives its idempotency key (stable across
retries) and attempt, for deduplicating side effects.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, TypeVar, overload

from pydantic import JsonValue, TypeAdapter, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duragent.activities.errors import TaskError, TaskErrorType
from duragent.activities.heartbeat import heartbeating
from duragent.activities.limits import MAX_TASK_RESULT_BYTES, size, too_large
from duragent.activities.models import ListTasksRequest, ListTasksResult, TaskRequest, TaskResult

__all__ = [
    "RUN_TASK",
    "TASK_REF",
    "TaskActivities",
    "TaskCall",
    "TaskError",
    "TaskRegistry",
    "current_call",
    "task",
    "task_ref",
]

RUN_TASK: Final = "duragent.run_task"
LIST_TASKS: Final = "duragent.list_tasks"
"""The activity's name; histories refer to it, so it never changes."""
TASK_REF: Final = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
"""What a ref reads: ``module:function`` (the graph validator checks the same form)."""
MARK: Final = "__duragent_task__"
"""The attribute :func:`task` sets on a function: its ref."""
_MAX_LISTED = 20
"""Refs named at most in an unknown-ref error."""

_JSON: Final = TypeAdapter(JsonValue)
F = TypeVar("F", bound=Callable[..., Any])


@overload
def task(name: F, /) -> F: ...
@overload
def task(name: str | None = None) -> Callable[[F], F]: ...
def task(name: str | F | None = None) -> F | Callable[[F], F]:
    """Mark a function as a task a graph can run: ``@task`` or ``@task(name="m:f")``.

    Args:
        name: The ref graphs name it by, ``module:function``; by default the
            function's own module and name.

    Returns:
        The function itself, marked (or, given a name, a decorator that marks it).

    Raises:
        ValueError: The ref does not read ``module:function`` (e.g. a function defined
            inside another, whose default ref no worker could import): name it.
    """
    if callable(name):
        return _mark(name, None)
    ref = name

    def mark(function: F) -> F:
        return _mark(function, ref)

    return mark


def _mark(function: F, name: str | None) -> F:
    ref = name or f"{function.__module__}:{function.__qualname__}"
    if not TASK_REF.fullmatch(ref):
        raise ValueError(
            f"task ref {ref!r} does not read module:function; "
            f"name it: @task(name='{function.__module__}:{function.__name__}')"
        )
    setattr(function, MARK, ref)
    return function


def task_ref(function: object) -> str | None:
    """The ref of a function marked with :func:`task`, else ``None``."""
    ref = getattr(function, MARK, None) if callable(function) else None
    return ref if isinstance(ref, str) else None


class TaskRegistry:
    """The task functions a worker runs, by ref.

    Args:
        functions: Functions marked with :func:`task`; one given twice counts once.

    Raises:
        ValueError: A function is not marked, or two functions share a ref.
    """

    def __init__(self, functions: Iterable[Callable[..., Any]] = ()) -> None:
        self._functions: dict[str, Callable[..., Any]] = {}
        for function in functions:
            ref = task_ref(function)
            if ref is None:
                raise ValueError(f"{function!r} is not a task: mark it with @task")
            known = self._functions.setdefault(ref, function)
            if known is not function:
                raise ValueError(f"two functions are registered as task {ref!r}")

    @classmethod
    def from_modules(cls, modules: Iterable[ModuleType]) -> TaskRegistry:
        """The tasks found among the modules' attributes (what ``--load`` registers)."""
        return cls(tasks_in(modules))

    def get(self, ref: str) -> Callable[..., Any] | None:
        """The function of that ref, or ``None``."""
        return self._functions.get(ref)

    @property
    def refs(self) -> list[str]:
        """Every ref, sorted."""
        return sorted(self._functions)

    def __len__(self) -> int:
        return len(self._functions)


def tasks_in(modules: Iterable[ModuleType]) -> list[Callable[..., Any]]:
    """The functions marked with :func:`task` among the modules' attributes, once each."""
    found: dict[int, Callable[..., Any]] = {}
    for module in modules:
        for value in vars(module).values():
            if task_ref(value) is not None:
                found.setdefault(id(value), value)
    return list(found.values())


@dataclass(frozen=True)
class TaskCall:
    """The call a task function is running in (see :func:`current_call`)."""

    ref: str
    idempotency_key: str
    """``graph_id:node@visit[item]``: the same on every attempt of this call."""
    attempt: int
    """1 on the first attempt."""


_CALL: contextvars.ContextVar[TaskCall] = contextvars.ContextVar("duragent_task_call")
"""The running call; a context variable, so each activity (and its thread) sees its own."""


def current_call() -> TaskCall:
    """The call the running task function is in.

    Raises:
        RuntimeError: Called outside a task run by ``duragent.run_task``.
    """
    try:
        return _CALL.get()
    except LookupError:
        raise RuntimeError("current_call() is only available inside a running task") from None


class TaskActivities:
    """The task activity, holding the worker's registry.

    Args:
        registry: The tasks this worker runs.
    """

    def __init__(self, registry: TaskRegistry) -> None:
        self._registry = registry

    @property
    def known_tasks(self) -> set[str]:
        """The refs this worker runs, for ``validate(spec, known_tasks=...)``."""
        return set(self._registry.refs)

    @activity.defn(name=LIST_TASKS)
    async def list_tasks(self, request: ListTasksRequest) -> ListTasksResult:
        """The refs this worker runs (a graph checks its task nodes against them at start)."""
        return ListTasksResult(refs=sorted(self._registry.refs))

    @activity.defn(name=RUN_TASK)
    async def run_task(self, request: TaskRequest) -> TaskResult:
        """Call the function ``request.ref`` with ``request.args``; return its JSON value."""
        function = self._function(request.ref)
        _check_arguments(request.ref, function, request.args)
        attempt = activity.info().attempt
        token = _CALL.set(TaskCall(request.ref, request.idempotency_key, attempt))
        try:
            async with heartbeating():
                value = await _call(function, request.args)
        except TaskError as err:
            raise ApplicationError(
                f"task {request.ref} failed: {err}",
                type=TaskErrorType.FAILED.value,
                non_retryable=not err.retryable,
            ) from err
        finally:
            _CALL.reset(token)
        return TaskResult(value=_json_result(request.ref, value), attempt=attempt)

    def _function(self, ref: str) -> Callable[..., Any]:
        function = self._registry.get(ref)
        if function is not None:
            return function
        refs = self._registry.refs
        listed = ", ".join(refs[:_MAX_LISTED]) + (", …" if len(refs) > _MAX_LISTED else "")
        raise ApplicationError(
            f"no task {ref!r} on this worker (it runs: {listed or 'none'}); start the "
            "worker with --load MODULE (or DURAGENT_LOAD) naming the module that defines it",
            type=TaskErrorType.UNKNOWN.value,
            non_retryable=True,
        )


async def _call(function: Callable[..., Any], args: Mapping[str, Any]) -> Any:
    if inspect.iscoroutinefunction(function):
        return await function(**args)
    # A sync function would block the worker's event loop (every other activity and
    # workflow task on it); a thread keeps the loop free. asyncio.to_thread copies the
    # context, so current_call() and activity.heartbeat() work in the thread too.
    return await asyncio.to_thread(function, **args)


def _check_arguments(ref: str, function: Callable[..., Any], args: Mapping[str, Any]) -> None:
    """Refuse arguments the function cannot take, before calling it (no retry fixes them)."""
    signature = inspect.signature(function)
    try:
        signature.bind(**args)
    except TypeError as err:
        given = ", ".join(args) or "none"
        # Names and defaults only: annotations may be strings (PEP 563) or long.
        params = [p.replace(annotation=p.empty) for p in signature.parameters.values()]
        raise ApplicationError(
            f"task {ref}: its arguments ({given}) do not fit "
            f"{function.__name__}({', '.join(map(str, params))}): {err}",
            type=TaskErrorType.BAD_ARGUMENTS.value,
            non_retryable=True,
        ) from None


def _json_result(ref: str, value: Any) -> JsonValue:
    """``value`` if it is JSON within the size bound; else a non-retryable error saying why."""
    try:
        checked = _JSON.validate_python(value)
        text = json.dumps(checked, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValidationError, ValueError) as err:
        raise ApplicationError(
            f"task {ref} returned {_not_json(value, err)}, which is not JSON: return "
            "str, int, float, bool, None, and lists and dicts (string keys) of them "
            "(e.g. model.model_dump(mode='json'), moment.isoformat())",
            type=TaskErrorType.NOT_JSON.value,
            non_retryable=True,
        ) from None
    nbytes = size(text)
    if nbytes > MAX_TASK_RESULT_BYTES:
        raise ApplicationError(
            too_large(f"the result of task {ref}", nbytes, MAX_TASK_RESULT_BYTES)
            + " bytes of JSON (256 KiB): it enters the graph's state; store large data "
            "elsewhere (a file, an object) and return its name",
            type=TaskErrorType.TOO_LARGE.value,
            non_retryable=True,
        )
    return checked


def _not_json(value: Any, err: Exception) -> str:
    """What in the value is not JSON: ``a set at ["items"][2]``, ``NaN``."""
    if not isinstance(err, ValidationError):
        return "NaN or infinity"  # json.dumps(allow_nan=False)
    first = err.errors(include_url=False)[0]
    loc = first["loc"]
    # pydantic's path alternates the container's kind and the key: ("dict", "a", ...).
    keys = [step for i, step in enumerate(loc) if i % 2 == 1 and step != "[key]"]
    where = "".join(f"[{key!r}]" if isinstance(key, str) else f"[{key}]" for key in keys)
    kind = type(first["input"]).__name__
    what = f"{'an' if kind[0] in 'aeiouAEIOU' else 'a'} {kind}"
    if loc and loc[-1] == "[key]":
        what += " as a dict key"
    return f"{what} at {where}" if where else what
