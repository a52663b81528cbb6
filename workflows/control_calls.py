"""The control tools of a cycle, interpreted, and what the workflow does next.

``_task_finish``, ``_ask_user``, ``_todo_write`` and ``_compress_memory`` are answered by
the workflow itself, not by a tool activity. Pure and deterministic, like all of
:mod:`workflows.policy` (which re-exports them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from pydantic import JsonValue

from duragent.activities import limits
from duragent.activities.errors import ToolError
from duragent.activities.models import ToolCall, ToolResult, ToolStatus
from duragent.activities.tools.control import (
    ASK_USER,
    COMPRESS_MEMORY,
    TASK_FINISH,
    TODO_WRITE,
    AskUserArgs,
    TaskFinishArgs,
    TodoItem,
    TodoWriteArgs,
    TypedTaskFinishArgs,
    open_todos,
)
from duragent.activities.tools.registry import parse_arguments
from duragent.workflows.models import PendingQuestion
from duragent.workflows.tool_results import tool_result
from duragent.workflows.typed_output import check_output


class DirectiveKind(StrEnum):
    """What the workflow does after a cycle."""

    CONTINUE = "continue"
    NUDGE = "nudge"
    """No tool call at all: add the continue hint and go on."""
    FINISH = "finish"
    ASK = "ask"


@dataclass(frozen=True)
class Directive:
    """The decision taken at the end of a cycle."""

    kind: DirectiveKind
    answer: str | None = None
    files: tuple[str, ...] = ()
    question: PendingQuestion | None = None
    output: JsonValue = None
    """The typed result of a finish, checked against the agent's output schema."""


@dataclass(frozen=True)
class ControlOutcome:
    """Control tool calls of one cycle, interpreted."""

    results: dict[str, ToolResult]
    """Immediate results by call id (errors, acknowledgements); a valid ``_ask_user``
    has none yet: its result is the user's answer."""
    finish: TaskFinishArgs | None = None
    question: PendingQuestion | None = None
    todos: list[TodoItem] | None = None
    """The new todo list when ``_todo_write`` was called validly."""
    compress: bool = False
    """The model asked for ``_compress_memory``."""
    finish_call: str | None = None
    """The id of the ``_task_finish`` call that ``finish`` came from."""


def interpret_control_calls(
    calls: list[ToolCall],
    todos: list[TodoItem],
    *,
    output_schema: dict[str, JsonValue] | None = None,
) -> ControlOutcome:
    """Validate the control calls of a cycle and decide which ones count.

    Todo writes apply first, in order, so a model may complete its last item and finish
    in one turn. ``_task_finish`` is refused while todos are open, and, for an agent
    with an ``output_schema``, while its ``output`` is missing or does not match. A
    finish wins over a question; of several questions only the first is asked.
    Invalid arguments become error results the model can fix.
    """
    results: dict[str, ToolResult] = {}
    new_todos: list[TodoItem] | None = None
    for call in (c for c in calls if c.name == TODO_WRITE):
        try:
            new_todos = parse_arguments(call.name, TodoWriteArgs, call.arguments).todos
            results[call.id] = tool_result(call, ToolStatus.SUCCESS, _todo_summary(new_todos))
        except ToolError as err:
            results[call.id] = tool_result(call, ToolStatus.ERROR, str(err), err.code)
    current = todos if new_todos is None else new_todos
    finish, finish_call = _finish(calls, current, results, output_schema)
    question = _first_question(calls, results)
    if finish is not None and question is not None:
        skipped = next(c for c in calls if c.id == question.id)
        results[question.id] = tool_result(
            skipped, ToolStatus.ERROR, "not asked: the task was finished", "ignored"
        )
        question = None
    compress = False
    for call in (c for c in calls if c.name == COMPRESS_MEMORY):
        compress = True
        results[call.id] = tool_result(call, ToolStatus.SUCCESS, "memory compressed")
    return ControlOutcome(
        results=results,
        finish=finish,
        question=question,
        todos=new_todos,
        compress=compress,
        finish_call=finish_call if finish is not None else None,
    )


def _finish(
    calls: list[ToolCall],
    todos: list[TodoItem],
    results: dict[str, ToolResult],
    output_schema: dict[str, JsonValue] | None,
) -> tuple[TaskFinishArgs | None, str | None]:
    finish: TaskFinishArgs | None = None
    finish_call: str | None = None
    for call in (c for c in calls if c.name == TASK_FINISH):
        try:
            if output_schema is None:
                args = parse_arguments(call.name, TaskFinishArgs, call.arguments)
            else:
                args = parse_arguments(call.name, TypedTaskFinishArgs, call.arguments)
                check_output(args, output_schema)
        except ToolError as err:
            results[call.id] = tool_result(call, ToolStatus.ERROR, str(err), err.code)
            continue
        still_open = open_todos(todos)
        if still_open:
            names = "; ".join(f"{t.id}: {t.content} ({t.status.value})" for t in still_open)
            results[call.id] = tool_result(
                call,
                ToolStatus.ERROR,
                f"cannot finish while todos are open: {names}. Complete them (or remove "
                "them with _todo_write), then finish.",
                "todo_incomplete",
            )
            continue
        if finish is None:
            finish, finish_call = args, call.id
        results[call.id] = tool_result(call, ToolStatus.SUCCESS, "task finished")
    return finish, finish_call


def refuse_finish(control: ControlOutcome, message: str) -> ControlOutcome:
    """``control`` with its finish refused: the model reads ``message`` and goes on."""
    if control.finish_call is None:
        return control
    refused = ToolResult(
        call_id=control.finish_call,
        name=TASK_FINISH,
        status=ToolStatus.ERROR,
        content=limits.truncate(message, limits.MAX_ERROR_BYTES),
        error_code="invalid_output",
    )
    return replace(
        control,
        finish=None,
        finish_call=None,
        results={**control.results, control.finish_call: refused},
    )


def _first_question(
    calls: list[ToolCall], results: dict[str, ToolResult]
) -> PendingQuestion | None:
    question: PendingQuestion | None = None
    for call in (c for c in calls if c.name == ASK_USER):
        try:
            ask = parse_arguments(call.name, AskUserArgs, call.arguments)
        except ToolError as err:
            results[call.id] = tool_result(call, ToolStatus.ERROR, str(err), err.code)
            continue
        if question is None:
            question = _question(call, ask)
        else:
            results[call.id] = tool_result(
                call, ToolStatus.ERROR, "only one question at a time", "busy"
            )
    return question


def _todo_summary(todos: list[TodoItem]) -> str:
    if not todos:
        return "todo list cleared"
    return "todo list updated:\n" + "\n".join(
        f"[{t.status.value}] {t.id}: {t.content}" for t in todos
    )


def decide(calls: list[ToolCall], control: ControlOutcome) -> Directive:
    """What to do after a cycle, from its tool calls and control outcome."""
    finish = control.finish
    if finish is not None:
        return Directive(
            DirectiveKind.FINISH,
            answer=finish.message,
            files=tuple(finish.files),
            output=finish.output if isinstance(finish, TypedTaskFinishArgs) else None,
        )
    if control.question is not None:
        return Directive(DirectiveKind.ASK, question=control.question)
    if not calls:
        return Directive(DirectiveKind.NUDGE)
    return Directive(DirectiveKind.CONTINUE)


def _question(call: ToolCall, ask: AskUserArgs) -> PendingQuestion:
    return PendingQuestion(
        id=call.id,
        question=ask.question,
        options=ask.options,
        selection=ask.selection,
        allow_custom=ask.allow_custom,
    )
