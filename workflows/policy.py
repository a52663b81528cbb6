"""The agent's decisions as pure functions: no Temporal, no I/O, unit-testable.

The workflow calls these; everything here is deterministic, so it replays the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import JsonValue
from temporalio.common import RetryPolicy

from duragent.activities import limits
from duragent.activities.errors import ToolError
from duragent.activities.models import (
    ApprovalMode,
    Message,
    Role,
    SkillSummary,
    SummarizeRequest,
    ToolCall,
    ToolResult,
    ToolSpec,
    ToolStatus,
)
from duragent.activities.tools.control import (
    ASK_USER,
    COMPRESS_MEMORY,
    SUB_TASK_TOOLS,
    TASK_FINISH,
    TODO_WRITE,
    AskUserArgs,
    Selection,
    TaskFinishArgs,
    TodoItem,
    TodoWriteArgs,
    TypedTaskFinishArgs,
    open_todos,
)
from duragent.activities.tools.dangerous import is_dangerous_command
from duragent.activities.tools.registry import parse_arguments
from duragent.workflows import json_schema
from duragent.workflows.budgets import Budget
from duragent.workflows.models import (
    ActivityPolicy,
    AgentInput,
    AgentStatus,
    ApprovalDecision,
    HistoryPolicy,
    MemoryPolicy,
    ParentLink,
    PendingQuestion,
    ReplyInput,
    SubAgentSpec,
    SubTaskReport,
)

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


def system_prompt(custom: str | None, started_at: datetime, sections: list[str]) -> str:
    """Layer the system prompt: agent definition, environment, then extra sections.

    The time is the run's start, not the cycle's, so the prompt prefix stays stable
    across cycles and the provider's prompt cache keeps working.
    """
    parts = [
        custom or DEFAULT_SYSTEM_PROMPT,
        f"Environment: the run started at {started_at.isoformat(timespec='seconds')}.",
        *sections,
    ]
    return "\n\n".join(parts)


SUB_AGENT_ROLE = (
    "You are a sub-agent: another agent handed you this task. Your final answer, given "
    "with _task_finish, goes back to it. Questions you ask with _ask_user reach the user "
    "through it; ask only when you cannot go on."
)


def sub_agents_section(sub_agents: dict[str, SubAgentSpec]) -> list[str]:
    """The system prompt lines that introduce the sub-agents the model may use."""
    if not sub_agents:
        return []
    lines = [
        f"- {name}: {spec.description or 'no description'}" for name, spec in sub_agents.items()
    ]
    return [
        "Sub-agents you can hand self-contained tasks to (_create_sub_task, or "
        "_batch_sub_tasks for several at once):\n" + "\n".join(lines)
    ]


# An agent's own folder name, in UTF-8 bytes: file systems take 255 a name.
MAX_FOLDER_BYTES = 200


def own_workspace(workflow_id: str) -> str:
    """The folder of an agent that names none: its workflow id, made a safe folder name.

    A workflow id is any string; the folder must be one segment that the path rules
    accept (no ``/``, no NUL, not ``.`` or ``..``), so those characters become ``_``,
    and short enough for a file system (255 bytes a name): a long id keeps its start
    and gains a digest of the whole, so two long ids never share a folder.
    """
    name = workflow_id.replace("/", "_").replace("\x00", "_").strip()
    if name in ("", ".", "..") or name.startswith("~"):
        name = f"_{name}"
    if len(name.encode("utf-8")) > MAX_FOLDER_BYTES:
        digest = hashlib.sha256(workflow_id.encode("utf-8")).hexdigest()[:16]
        head = name.encode("utf-8")[: MAX_FOLDER_BYTES - 17].decode("utf-8", "ignore")
        name = f"{head}-{digest}"
    return name


def sub_task_input(
    parent: AgentInput,
    parent_id: str,
    agent: str,
    task: str,
    requirements: str | None,
    budget: Budget | None = None,
    *,
    workspace: str | None = None,
) -> AgentInput:
    """The input of a sub-agent's child workflow.

    Its spec, the parent's policies, its share of the parent's budget (see
    :mod:`workflows.budgets`) and the parent's workspace folder (``None``: the root).
    """
    budget = budget or Budget()
    spec = parent.sub_agents[agent]
    text = task if not requirements else f"{task}\n\nOutput requirements: {requirements}"
    return AgentInput(
        task=text,
        model=spec.model or parent.model,
        system_prompt=spec.system_prompt,
        tools=spec.tools,
        max_cycles=spec.max_cycles,
        llm_policy=parent.llm_policy,
        stream=parent.stream,
        # The parent's options suit the parent's model only.
        model_options=spec.model_options or (None if spec.model else parent.model_options),
        ask=parent.ask,
        approval=parent.approval,
        owner=parent.owner,
        memory=parent.memory,
        history=parent.history,
        parent=ParentLink(workflow_id=parent_id, agent=agent),
        max_tokens=budget.max_tokens,
        max_cost_usd=budget.max_cost_usd,
        deadline=budget.deadline,
        workspace=workspace,
    )


def batch_report(reports: list[SubTaskReport]) -> str:
    """Every sub-task's outcome as JSON: a failed one is reported, the others still count."""
    return json.dumps(
        [
            {"task": r.task, "status": r.status.value, "answer": r.answer}
            if r.status is AgentStatus.COMPLETED
            else {"task": r.task, "status": r.status.value, "error": r.answer_or_error()}
            for r in reports
        ],
        indent=1,
    )


def skills_section(skills: list[SkillSummary]) -> list[str]:
    """The system prompt lines that list the workspace's skills."""
    if not skills:
        return []
    lines = [f"- {s.name}: {s.description}" for s in skills]
    return ["Skills (load one with _activate_skill before you follow it):\n" + "\n".join(lines)]


def budget_exhausted(usage_total: int, budget: int | None) -> bool:
    """True once the tokens used (sub-agents included) reach the budget."""
    return budget is not None and usage_total >= budget


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
            results[call.id] = _result(call, ToolStatus.SUCCESS, _todo_summary(new_todos))
        except ToolError as err:
            results[call.id] = _result(call, ToolStatus.ERROR, str(err), err.code)
    current = todos if new_todos is None else new_todos
    finish, finish_call = _finish(calls, current, results, output_schema)
    question = _first_question(calls, results)
    if finish is not None and question is not None:
        skipped = next(c for c in calls if c.id == question.id)
        results[question.id] = _result(
            skipped, ToolStatus.ERROR, "not asked: the task was finished", "ignored"
        )
        question = None
    compress = False
    for call in (c for c in calls if c.name == COMPRESS_MEMORY):
        compress = True
        results[call.id] = _result(call, ToolStatus.SUCCESS, "memory compressed")
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
            results[call.id] = _result(call, ToolStatus.ERROR, str(err), err.code)
            continue
        still_open = open_todos(todos)
        if still_open:
            names = "; ".join(f"{t.id}: {t.content} ({t.status.value})" for t in still_open)
            results[call.id] = _result(
                call,
                ToolStatus.ERROR,
                f"cannot finish while todos are open: {names}. Complete them (or remove "
                "them with _todo_write), then finish.",
                "todo_incomplete",
            )
            continue
        if finish is None:
            finish, finish_call = args, call.id
        results[call.id] = _result(call, ToolStatus.SUCCESS, "task finished")
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
            results[call.id] = _result(call, ToolStatus.ERROR, str(err), err.code)
            continue
        if question is None:
            question = _question(call, ask)
        else:
            results[call.id] = _result(
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


# --- typed output -----------------------------------------------------------------------

MAX_OUTPUT_SCHEMA_BYTES = 16 * limits.KIB
"""An agent's output schema, as compact JSON: it rides in every LLM call's input."""
SCHEMA_IN_ERROR_BYTES = 8 * limits.KIB
"""The schema as quoted in an invalid output's error (the tool's parameters hold it
whole); with the errors it stays under ``limits.MAX_ERROR_BYTES``."""


def output_schema_problem(
    schema: dict[str, JsonValue] | None, offered: Iterable[str]
) -> str | None:
    """Why an agent cannot finish with a typed result under ``schema``, or ``None``.

    Checked once, when the run starts: a schema that cannot be used would leave the
    model no way to finish.

    Args:
        schema: The agent's output schema; ``None`` asks for no typed result.
        offered: The tools the agent has.
    """
    if schema is None:
        return None
    problem = json_schema.schema_problem(schema, MAX_OUTPUT_SCHEMA_BYTES)
    if problem is not None:
        return f"output_schema: {problem}"
    if TASK_FINISH not in offered:
        return f"output_schema: the agent must have {TASK_FINISH} to return its output"
    return None


def check_output(args: TypedTaskFinishArgs, schema: dict[str, JsonValue]) -> None:
    """Check a ``_task_finish`` output against the agent's schema, as the model needs it.

    Raises:
        ToolError: With code ``invalid_output`` when ``output`` is missing or does not
            match: the validator's first errors, each at its JSON path in the output
            (``$`` is the output itself), then the schema to match.
    """
    shown = limits.truncate(json.dumps(schema, separators=(",", ":")), SCHEMA_IN_ERROR_BYTES)
    if "output" not in args.model_fields_set:
        raise ToolError(
            f"{TASK_FINISH} needs `output`, your result as JSON matching the agent's "
            f"output schema. Call {TASK_FINISH} again with `message` and an `output` "
            f"that matches this JSON Schema: {shown}",
            code="invalid_output",
        )
    problems, count = json_schema.errors(args.output, schema)
    if not problems:
        return
    counted = f"{count} error" if count == 1 else f"{count} errors"
    if count > len(problems):
        counted += f", the first {len(problems)} shown"
    raise ToolError(
        f"the output does not match its schema ({counted}):\n"
        + "\n".join(f"- {p}" for p in problems)
        + f"\nNothing was finished. Call {TASK_FINISH} again with an `output` that "
        f"matches this JSON Schema: {shown}",
        code="invalid_output",
    )


def cycles_exhausted(cycles_done: int, max_cycles: int) -> bool:
    """True when no further LLM call is allowed."""
    return cycles_done >= max_cycles


def refused_result(call: ToolCall) -> ToolResult:
    """The error a model gets for a call the LLM activity refused (see ``ToolCall.refused``)."""
    return _result(
        call,
        ToolStatus.ERROR,
        f"{call.refused}; nothing was run. Send large content in several smaller calls "
        "(for a file: _write_file with append=true).",
        "too_large",
    )


def unknown_tool_result(call: ToolCall, offered: list[str]) -> ToolResult:
    """The error a model gets for calling a tool it was not offered."""
    return _result(
        call,
        ToolStatus.ERROR,
        f"unknown tool {call.name!r}; available tools: {', '.join(offered)}",
        "unknown_tool",
    )


def failed_result(call: ToolCall, why: str) -> ToolResult:
    """The error a model gets for a call whose activity gave up (retries spent, worker gone)."""
    return _result(call, ToolStatus.ERROR, f"{call.name} failed: {why}", "tool_failed")


def error_result_of(call: ToolCall, content: str, code: str) -> ToolResult:
    """Any other error a model gets for a call, with its code."""
    return _result(call, ToolStatus.ERROR, content, code)


def tool_message(result: ToolResult) -> Message:
    """A tool result as the transcript message the model reads."""
    content = result.content
    if result.status is ToolStatus.ERROR:
        content = f"ERROR ({result.error_code or 'tool_error'}): {content}"
    return Message(
        role=Role.TOOL,
        content=content,
        tool_call_id=result.call_id,
        name=result.name,
        artifact=result.artifact,
        artifact_chars=result.artifact_chars,
    )


# --- memory -----------------------------------------------------------------------------

CHARS_PER_TOKEN = 4  # a rough, provider-neutral estimate; the provider's count wins
SUMMARY_HEADER = "[Memory compacted: earlier conversation summarised]"


def estimate_tokens(transcript: list[Message], system: str = "") -> int:
    """Tokens of a prompt, estimated from its characters."""
    chars = len(system) + sum(m.prompt_chars for m in transcript)
    return chars // CHARS_PER_TOKEN + 1


def context_tokens(reported: int, transcript: list[Message], sent: int) -> int:
    """The next prompt's size in tokens.

    The provider's last count plus an estimate of what was added since
    (``transcript[sent:]``); the estimate alone when there is no count.
    """
    if reported <= 0:
        return estimate_tokens(transcript)
    return reported + sum(m.prompt_chars for m in transcript[sent:]) // CHARS_PER_TOKEN


# What a message's JSON costs besides its text (field names, ids, nulls), so the carried
# payload, not only its text, stays under the limit.
MESSAGE_OVERHEAD_CHARS = 200


def carry_too_large(transcript: list[Message], history: HistoryPolicy) -> bool:
    """True when the transcript is too long to carry into the next run as it is."""
    size = sum(
        MESSAGE_OVERHEAD_CHARS
        + len(m.content or "")
        + sum(len(c.name) + len(c.arguments) for c in m.tool_calls)
        for m in transcript
    )
    return size > history.max_carry_chars


def should_compact(tokens: int, memory: MemoryPolicy) -> bool:
    """True when the next prompt would pass the compaction threshold."""
    return tokens >= memory.compact_at * memory.context_window_tokens


def offered_tools(
    names: list[str], tokens: int, memory: MemoryPolicy, *, sub_agents: bool
) -> list[str]:
    """The tools offered this cycle.

    ``_compress_memory`` only when the context is close to the threshold, so the model
    is not tempted to compact early; the sub-task tools only to an agent that has
    sub-agents (sub-agents get none: one level of delegation keeps costs in sight).
    """
    near = tokens >= memory.offer_tool_at * memory.context_window_tokens
    return [
        n
        for n in names
        if (n != COMPRESS_MEMORY or near) and (n not in SUB_TASK_TOOLS or sub_agents)
    ]


def recent_start(transcript: list[Message], keep_turns: int) -> int:
    """Index where the last ``keep_turns`` assistant turns begin.

    A turn boundary, so a tool result never loses the call it answers.
    """
    starts = [i for i, m in enumerate(transcript) if m.role is Role.ASSISTANT]
    return starts[-keep_turns] if len(starts) >= keep_turns else 1


def stub_old_results(transcript: list[Message], keep_turns: int) -> tuple[list[Message], int]:
    """Stage 1: old tool results kept in artifacts leave the prompt; only stubs remain."""
    cut = recent_start(transcript, keep_turns)
    out, stubbed = [], 0
    for i, m in enumerate(transcript):
        if i < cut and m.artifact and not m.stubbed:
            m = m.model_copy(update={"stubbed": True})
            stubbed += 1
        out.append(m)
    return out, stubbed


def summary_split(
    transcript: list[Message], keep_turns: int
) -> tuple[list[Message], list[Message], list[Message]]:
    """Stage 2's cut: the first message (the task), the middle to summarise, the tail."""
    cut = max(1, recent_start(transcript, keep_turns))
    return transcript[:1], transcript[1:cut], transcript[cut:]


def summary_request(
    model: str,
    head: list[Message],
    middle: list[Message],
    stored_ref: str | None,
    stored_count: int,
) -> SummarizeRequest:
    """The summary stage's input.

    The middle by reference when the store holds all of it (a long conversation must not
    pass through history again), else inline.
    """
    start, end = len(head), len(head) + len(middle)
    if stored_ref is not None and end <= stored_count:
        return SummarizeRequest(model=model, transcript_ref=stored_ref, start=start, end=end)
    return SummarizeRequest(model=model, messages=middle)


def compacted(
    head: list[Message], middle: list[Message], tail: list[Message], summary: str
) -> list[Message]:
    """The transcript after stage 2.

    What the user wrote stays verbatim; the rest of the middle becomes one summary.
    """
    said = [
        m
        for m in middle
        if m.role is Role.USER
        and m.content != CONTINUE_HINT
        and not (m.content or "").startswith(SUMMARY_HEADER)
    ]
    note = Message(role=Role.USER, content=f"{SUMMARY_HEADER}\n\n{summary}")
    return [*head, *said, note, *tail]


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


def approval_reason(mode: ApprovalMode, call: ToolCall) -> str | None:
    """Why this call needs approval under ``mode``; ``None`` when it may run."""
    if mode is ApprovalMode.ALWAYS:
        return f"{call.name} always needs approval"
    if mode is ApprovalMode.DANGEROUS_COMMAND:
        command = _argument(call.arguments, "command")
        danger = is_dangerous_command(command) if command is not None else None
        return f"dangerous command: {danger}" if danger else None
    return None


def fingerprint(arguments: str) -> str:
    """SHA-256 of the arguments in canonical JSON (the raw text when it is not JSON)."""
    try:
        canonical = json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except json.JSONDecodeError:
        canonical = arguments
    return hashlib.sha256(canonical.encode()).hexdigest()


def steering_too_large(message: str, inbox: list[str]) -> str | None:
    """Why a ``say`` message cannot be taken in, or ``None`` when it fits."""
    nbytes = limits.size(message)
    if nbytes > limits.MAX_SAY_BYTES:
        return limits.too_large("the message", nbytes, limits.MAX_SAY_BYTES)
    unread = sum(limits.size(m) for m in inbox)
    if unread + nbytes > limits.MAX_INBOX_BYTES:
        return (
            f"{unread:,} bytes of messages are still unread; another {nbytes:,} would pass "
            f"the inbox limit of {limits.MAX_INBOX_BYTES:,}"
        )
    return None


def decision_too_large(decision: ApprovalDecision) -> str | None:
    """Why a ``decide`` update is over its bounds, or ``None`` when it fits."""
    for what, text, limit in (
        ("the message", decision.message, limits.MAX_DECISION_MESSAGE_BYTES),
        ("the edited arguments", decision.arguments, limits.MAX_EDITED_ARGUMENTS_BYTES),
    ):
        if text is not None and (nbytes := limits.size(text)) > limit:
            return limits.too_large(what, nbytes, limit)
    return None


def page_within(messages: list[Message], max_bytes: int) -> list[Message]:
    """The leading messages whose content fits in ``max_bytes`` (at least one)."""
    total = 0
    for i, message in enumerate(messages):
        total += limits.size(message.content or "") + sum(
            limits.size(c.arguments) for c in message.tool_calls
        )
        if total > max_bytes and i > 0:
            return messages[:i]
    return messages


def last_turn_index(transcript: list[Message]) -> int:
    """Index of the last assistant message (the current turn); -1 when there is none."""
    return next(
        (i for i in range(len(transcript) - 1, -1, -1) if transcript[i].role is Role.ASSISTANT),
        -1,
    )


class InvalidReply(ValueError):
    """A reply that does not answer the pending question; the message says why."""


def reply_text(question: PendingQuestion | None, reply: ReplyInput) -> str:
    """Check a reply against the pending question and render it for the model.

    Raises:
        InvalidReply: Nothing is asked, the question id is stale, or the choice is not
            among the options.
    """
    if question is None:
        raise InvalidReply("no question is pending")
    if reply.question_id is not None and reply.question_id != question.id:
        raise InvalidReply(
            f"stale reply: question {reply.question_id!r} is not the pending one ({question.id!r})"
        )
    answers = [reply.answer] if isinstance(reply.answer, str) else list(reply.answer)
    nbytes = sum(limits.size(a) for a in answers)
    if nbytes > limits.MAX_REPLY_BYTES:
        raise InvalidReply(limits.too_large("the answer", nbytes, limits.MAX_REPLY_BYTES))
    if not answers or not all(a.strip() for a in answers):
        raise InvalidReply("the answer is empty")
    if question.selection is not Selection.MULTIPLE and len(answers) > 1:
        raise InvalidReply("this question takes a single answer")
    if question.options and question.selection is not Selection.FREE_TEXT:
        outside = [a for a in answers if a not in question.options]
        if outside and not question.allow_custom:
            raise InvalidReply(
                f"{', '.join(map(repr, outside))} is not one of the options: "
                + ", ".join(question.options)
            )
    return answers[0] if len(answers) == 1 else json.dumps(answers)


def _argument(arguments: str, name: str) -> str | None:
    try:
        value = json.loads(arguments).get(name)
    except (json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _question(call: ToolCall, ask: AskUserArgs) -> PendingQuestion:
    return PendingQuestion(
        id=call.id,
        question=ask.question,
        options=ask.options,
        selection=ask.selection,
        allow_custom=ask.allow_custom,
    )


def _result(
    call: ToolCall, status: ToolStatus, content: str, code: str | None = None
) -> ToolResult:
    return ToolResult(
        call_id=call.id, name=call.name, status=status, content=content, error_code=code
    )
