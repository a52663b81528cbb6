"""The agent's decisions as pure functions: no Temporal, no I/O, unit-testable.

The workflow calls these; everything here is deterministic, so it replays the same.
The decisions are grouped by role in their own modules, and every one is importable
from here too (the workflows call them as ``policy.x``):

- :mod:`workflows.prompts`: the system prompt and the fixed texts;
- :mod:`workflows.control_calls`: the control tools of a cycle, and what comes next;
- :mod:`workflows.typed_output`: an agent's output schema, checked;
- :mod:`workflows.tool_results`: results the workflow makes itself, and tool messages;
- :mod:`workflows.compaction`: the prompt's size, and compacting the transcript;
- this module: sub-tasks, budgets, retries, approvals and bounds on what handlers take.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from temporalio.common import RetryPolicy

from duragent.activities import limits
from duragent.activities.models import ApprovalMode, Message, Role, ToolCall, ToolSpec
from duragent.activities.tools.control import Selection
from duragent.activities.tools.dangerous import is_dangerous_command
from duragent.workflows.budgets import Budget
from duragent.workflows.compaction import CHARS_PER_TOKEN as CHARS_PER_TOKEN
from duragent.workflows.compaction import MESSAGE_OVERHEAD_CHARS as MESSAGE_OVERHEAD_CHARS
from duragent.workflows.compaction import SUMMARY_HEADER as SUMMARY_HEADER
from duragent.workflows.compaction import carry_too_large as carry_too_large
from duragent.workflows.compaction import compacted as compacted
from duragent.workflows.compaction import context_tokens as context_tokens
from duragent.workflows.compaction import estimate_tokens as estimate_tokens
from duragent.workflows.compaction import offered_tools as offered_tools
from duragent.workflows.compaction import recent_start as recent_start
from duragent.workflows.compaction import should_compact as should_compact
from duragent.workflows.compaction import stub_old_results as stub_old_results
from duragent.workflows.compaction import summary_request as summary_request
from duragent.workflows.compaction import summary_split as summary_split
from duragent.workflows.control_calls import ControlOutcome as ControlOutcome
from duragent.workflows.control_calls import Directive as Directive
from duragent.workflows.control_calls import DirectiveKind as DirectiveKind
from duragent.workflows.control_calls import decide as decide
from duragent.workflows.control_calls import interpret_control_calls as interpret_control_calls
from duragent.workflows.control_calls import refuse_finish as refuse_finish
from duragent.workflows.models import (
    ActivityPolicy,
    AgentInput,
    AgentStatus,
    ApprovalDecision,
    ParentLink,
    PendingQuestion,
    ReplyInput,
    SubTaskReport,
)
from duragent.workflows.prompts import CONTINUE_HINT as CONTINUE_HINT
from duragent.workflows.prompts import DEFAULT_SYSTEM_PROMPT as DEFAULT_SYSTEM_PROMPT
from duragent.workflows.prompts import SUB_AGENT_ROLE as SUB_AGENT_ROLE
from duragent.workflows.prompts import skills_section as skills_section
from duragent.workflows.prompts import sub_agents_section as sub_agents_section
from duragent.workflows.prompts import system_prompt as system_prompt
from duragent.workflows.tool_results import error_result_of as error_result_of
from duragent.workflows.tool_results import failed_result as failed_result
from duragent.workflows.tool_results import refused_result as refused_result
from duragent.workflows.tool_results import tool_message as tool_message
from duragent.workflows.tool_results import unknown_tool_result as unknown_tool_result
from duragent.workflows.typed_output import MAX_OUTPUT_SCHEMA_BYTES as MAX_OUTPUT_SCHEMA_BYTES
from duragent.workflows.typed_output import SCHEMA_IN_ERROR_BYTES as SCHEMA_IN_ERROR_BYTES
from duragent.workflows.typed_output import check_output as check_output
from duragent.workflows.typed_output import output_schema_problem as output_schema_problem

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


def budget_exhausted(usage_total: int, budget: int | None) -> bool:
    """True once the tokens used (sub-agents included) reach the budget."""
    return budget is not None and usage_total >= budget


def cycles_exhausted(cycles_done: int, max_cycles: int) -> bool:
    """True when no further LLM call is allowed."""
    return cycles_done >= max_cycles


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
