"""The agent's decisions as pure functions: no Temporal, no I/O, unit-testable.

The workflow calls these; everything here is deterministic, so it replays the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from temporalio.common import RetryPolicy

from activities.errors import ToolError
from activities.models import Message, Role, ToolCall, ToolResult, ToolSpec, ToolStatus
from activities.tools.control import ASK_USER, TASK_FINISH, AskUserArgs, TaskFinishArgs
from activities.tools.registry import parse_arguments
from workflows.models import ActivityPolicy, PendingQuestion

DEFAULT_SYSTEM_PROMPT = (
    "You are duragent, an agent that completes the user's task by calling tools. "
    "Work step by step: call tools, read their results, and go on until the task is done. "
    "When it is done, call _task_finish with the final answer. If you cannot go on "
    "without the user's input, call _ask_user."
)

CONTINUE_HINT = (
    "You did not call any tool. Continue the task with tool calls, or call _task_finish "
    "with your final answer if the task is done."
)


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


@dataclass(frozen=True)
class ControlOutcome:
    """Control tool calls of one cycle, interpreted."""

    results: dict[str, ToolResult]
    """Immediate results by call id (errors, acknowledgements); a valid ``_ask_user``
    has none yet: its result is the user's answer."""
    finish: TaskFinishArgs | None = None
    question: PendingQuestion | None = None


def system_prompt(custom: str | None, started_at: datetime, tool_names: list[str]) -> str:
    """Layer the system prompt: agent definition, environment, tools.

    The time is the run's start, not the cycle's, so the prompt prefix stays stable
    across cycles and the provider's prompt cache keeps working.
    """
    parts = [
        custom or DEFAULT_SYSTEM_PROMPT,
        f"Environment: the run started at {started_at.isoformat(timespec='seconds')}.",
    ]
    if tool_names:
        parts.append("Tools available: " + ", ".join(tool_names) + ".")
    return "\n\n".join(parts)


def interpret_control_calls(calls: list[ToolCall]) -> ControlOutcome:
    """Validate ``_task_finish`` and ``_ask_user`` calls and decide which one counts.

    A finish wins over a question; of several questions only the first is asked and the
    others are told so. Invalid arguments become error results the model can fix.
    """
    results: dict[str, ToolResult] = {}
    finish: TaskFinishArgs | None = None
    question: PendingQuestion | None = None
    for call in calls:
        try:
            if call.name == TASK_FINISH:
                args = parse_arguments(call.name, TaskFinishArgs, call.arguments)
                finish = finish or args
                results[call.id] = _result(call, ToolStatus.SUCCESS, "task finished")
            elif call.name == ASK_USER:
                ask = parse_arguments(call.name, AskUserArgs, call.arguments)
                if question is None:
                    question = _question(call, ask)
                else:
                    results[call.id] = _result(
                        call, ToolStatus.ERROR, "only one question at a time", "busy"
                    )
        except ToolError as err:
            results[call.id] = _result(call, ToolStatus.ERROR, str(err), err.code)
    if finish is not None and question is not None:
        skipped = next(c for c in calls if c.id == question.id)
        results[question.id] = _result(
            skipped, ToolStatus.ERROR, "not asked: the task was finished", "ignored"
        )
        question = None
    return ControlOutcome(results=results, finish=finish, question=question)


def decide(calls: list[ToolCall], control: ControlOutcome) -> Directive:
    """What to do after a cycle, from its tool calls and control outcome."""
    if control.finish is not None:
        return Directive(
            DirectiveKind.FINISH,
            answer=control.finish.message,
            files=tuple(control.finish.files),
        )
    if control.question is not None:
        return Directive(DirectiveKind.ASK, question=control.question)
    if not calls:
        return Directive(DirectiveKind.NUDGE)
    return Directive(DirectiveKind.CONTINUE)


def cycles_exhausted(cycles_done: int, max_cycles: int) -> bool:
    """True when no further LLM call is allowed."""
    return cycles_done >= max_cycles


def unknown_tool_result(call: ToolCall, offered: list[str]) -> ToolResult:
    """The error a model gets for calling a tool it was not offered."""
    return _result(
        call,
        ToolStatus.ERROR,
        f"unknown tool {call.name!r}; available tools: {', '.join(offered)}",
        "unknown_tool",
    )


def tool_message(result: ToolResult) -> Message:
    """A tool result as the transcript message the model reads."""
    content = result.content
    if result.status is ToolStatus.ERROR:
        content = f"ERROR ({result.error_code or 'tool_error'}): {content}"
    return Message(role=Role.TOOL, content=content, tool_call_id=result.call_id, name=result.name)


def retry_policy(policy: ActivityPolicy) -> RetryPolicy:
    """Temporal retry policy from an activity policy."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=policy.initial_interval_seconds),
        backoff_coefficient=policy.backoff_coefficient,
        maximum_interval=timedelta(seconds=policy.maximum_interval_seconds),
        maximum_attempts=policy.max_attempts,
    )


def tool_policy(spec: ToolSpec) -> ActivityPolicy:
    """Activity policy of one tool, from the worker's tool spec."""
    return ActivityPolicy(
        start_to_close_seconds=spec.start_to_close_seconds,
        heartbeat_seconds=spec.heartbeat_seconds,
        max_attempts=spec.max_attempts,
    )


def _question(call: ToolCall, ask: AskUserArgs) -> PendingQuestion:
    return PendingQuestion(
        id=call.id, question=ask.question, options=ask.options, selection=ask.selection
    )


def _result(
    call: ToolCall, status: ToolStatus, content: str, code: str | None = None
) -> ToolResult:
    return ToolResult(
        call_id=call.id, name=call.name, status=status, content=content, error_code=code
    )
