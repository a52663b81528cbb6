"""How the CLI shows agents to a person: a few readable lines per thing."""

from __future__ import annotations

import json

from duragent.activities.models import Message, Role
from duragent.workflows.models import AgentResult, AgentView, PendingView

PREVIEW = 160  # characters of a message shown by `watch` and `transcript`


def result_lines(result: AgentResult) -> str:
    """A finished run."""
    lines = [
        f"status: {result.status.value}",
        f"cycles: {result.cycles}  tokens: {result.usage.input_tokens} in / "
        f"{result.usage.output_tokens} out",
    ]
    if result.workspace is not None:
        lines.append(f"folder: {result.workspace}/")
    if result.files:
        lines.append("files: " + ", ".join(result.files))
    if result.answer is not None:
        lines.append(f"answer: {result.answer}")
    if result.output is not None:
        lines.append("output: " + json.dumps(result.output, ensure_ascii=False))
    if result.error is not None:
        lines.append(f"error: {result.error}")
    return "\n".join(lines)


def status_lines(agent_id: str, view: AgentView, *, status: str | None = None) -> str:
    """The ``status`` query, for a person; ``status`` overrides the one it recorded."""
    lines = [
        f"agent:   {agent_id}",
        f"status:  {status or view.status.value}",
        f"model:   {view.model}",
        f"cycle:   {view.cycle}",
        f"tokens:  {view.usage.input_tokens} in / {view.usage.output_tokens} out",
    ]
    if view.workspace is not None:
        lines.append(f"folder:  {view.workspace}/")
    lines.extend(_shell_lines(view))
    if view.waiting_for:
        lines.append(f"waiting: {view.waiting_for}")
    if view.last_activity:
        lines.append(f"since:   {view.last_activity.isoformat(timespec='seconds')}")
    for label, value in (
        ("answer", view.answer),
        ("error", view.error),
        ("reason", view.cancel_reason),
    ):
        if value:
            lines.append(f"{label}:{' ' * (8 - len(label))}{value}")
    return "\n".join(lines)


def _shell_lines(view: AgentView) -> list[str]:
    """Where the agent's shell work runs, and its background commands."""
    shell = view.shell
    if shell is None:
        return []
    lines = [f"shell:   on {shell.worker or shell.host}" if shell.host else "shell:   not pinned"]
    for s in shell.background:
        state = s.state.value if s.exit_code is None else f"{s.state.value} ({s.exit_code})"
        lines.append(f"  {s.session_id} {state}: {_clip(s.command)}")
        if s.error:
            lines.append(f"    {s.error}")
    return lines


def pending_lines(pending: PendingView) -> str:
    """What an agent waits on, with the ids a reply or decision needs."""
    lines = []
    if pending.question is not None:
        q = pending.question
        lines.append(f"question {q.id}: {q.question}")
        if q.options:
            lines.append(f"  options ({q.selection.value}): " + " | ".join(q.options))
    for a in pending.approvals:
        lines.append(f"approval {a.call_id}: {a.tool}({_clip(a.arguments)})")
        lines.append(f"  reason: {a.reason}")
        lines.append(f"  fingerprint: {a.fingerprint}")
    return "\n".join(lines) or "nothing pending"


def message_lines(index: int, message: Message) -> list[str]:
    """One transcript message, as ``watch`` and ``transcript`` print it."""
    lines = []
    if message.content:
        who = message.name if message.role is Role.TOOL else message.role.value
        arrow = "<-" if message.role is Role.TOOL else "  "
        lines.append(f"{index:>4} {arrow} {who}: {_clip(message.content)}")
    for call in message.tool_calls:
        lines.append(f"{index:>4} -> {call.name}({_clip(call.arguments)})  [{call.id}]")
    return lines


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"
