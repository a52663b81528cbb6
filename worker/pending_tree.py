"""The pending work of an agent and all its running sub-agents, with the commands to act.

``duragent pending`` and ``duragent watch`` show what a person can answer or decide.
The walk queries the ``pending`` query of the agent, then of each sub-agent it names
(``PendingView.sub_agents``), recursively. A sub-agent's question reaches its parent
(``sub_agent_questions``), so it is answered through the agent that lists it; a
sub-agent's approvals are decided on the sub-agent's own id.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from enum import StrEnum

from pydantic import BaseModel, Field
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from duragent.workflows.models import PendingApproval, PendingQuestion, PendingView

MAX_AGENTS = 200
"""Agents queried at most in one walk: a tree wider than this is cut, and says so."""

QueryPending = Callable[[str], Awaitable[PendingView]]


class PendingKind(StrEnum):
    """What a pending item waits for."""

    QUESTION = "question"
    APPROVAL = "approval"


class PendingItem(BaseModel):
    """One question or approval, with where and how to answer it."""

    kind: PendingKind
    id: str
    """The question id (``reply --question-id``) or the tool call id (``approve``)."""
    send_to: str
    """The agent id the reply or decision is sent to."""
    asked_by: str
    """The agent that waits."""
    command: str
    """The command that answers (replace ``ANSWER``) or approves."""
    question: PendingQuestion | None = None
    approval: PendingApproval | None = None


class PendingTree(BaseModel):
    """Everything an agent tree waits on (``duragent pending --json``)."""

    agent_id: str
    items: list[PendingItem] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list)
    """Every agent walked, the root first."""
    unreachable: dict[str, str] = Field(default_factory=dict)
    """Sub-agents that could not be queried, and why."""
    truncated: bool = False
    """True when the tree had more than ``MAX_AGENTS`` agents."""
    ended: str | None = None
    """Set when the agent has ended: how (then nothing is pending)."""

    @property
    def questions(self) -> list[PendingItem]:
        """The questions only."""
        return [i for i in self.items if i.kind is PendingKind.QUESTION]


async def walk(root_id: str, root: PendingView, query: QueryPending) -> PendingTree:
    """The pending work of ``root_id`` (whose view is ``root``) and its sub-agents.

    Args:
        root_id: The agent the user named.
        root: Its ``pending`` view.
        query: Queries a sub-agent's ``pending``; its errors mark the sub-agent
            unreachable instead of failing the walk.
    """
    tree = PendingTree(agent_id=root_id)
    seen: set[tuple[str, str]] = set()  # (agent that asked, its own question id)
    queue: list[tuple[str, PendingView]] = [(root_id, root)]
    walked = {root_id}
    while queue:
        agent_id, view = queue.pop(0)
        tree.agents.append(agent_id)
        _add_items(tree, agent_id, view, seen)
        for child in view.sub_agents:
            if child in walked:
                continue
            if len(walked) >= MAX_AGENTS:
                tree.truncated = True
                break
            walked.add(child)
            try:
                queue.append((child, await query(child)))
            except (RPCError, WorkflowQueryFailedError) as err:
                tree.unreachable[child] = err.message
    return tree


def _add_items(
    tree: PendingTree, agent_id: str, view: PendingView, seen: set[tuple[str, str]]
) -> None:
    # An agent's routed questions come first: they hide the same question found later
    # on the sub-agent itself, which is answered through this agent.
    for routed in view.sub_agent_questions:
        asker = routed.agent_id or agent_id
        key = (asker, routed.id.removeprefix(f"{asker}:"))
        if key not in seen:
            seen.add(key)
            tree.items.append(_question(agent_id, asker, routed))
    own = view.question
    if own is not None and (agent_id, own.id) not in seen:
        seen.add((agent_id, own.id))
        tree.items.append(_question(agent_id, agent_id, own))
    for approval in view.approvals:
        tree.items.append(
            PendingItem(
                kind=PendingKind.APPROVAL,
                id=approval.call_id,
                send_to=agent_id,
                asked_by=agent_id,
                command=f"duragent approve {_q(agent_id)} {_q(approval.call_id)}",
                approval=approval,
            )
        )


def _question(send_to: str, asker: str, question: PendingQuestion) -> PendingItem:
    return PendingItem(
        kind=PendingKind.QUESTION,
        id=question.id,
        send_to=send_to,
        asked_by=asker,
        command=f'duragent reply {_q(send_to)} --question-id {_q(question.id)} "ANSWER"',
        question=question,
    )


def tree_lines(tree: PendingTree) -> str:
    """The tree for a person: each item, then the command that acts on it."""
    lines: list[str] = []
    for item in tree.items:
        lines.extend(item_lines(item, root=tree.agent_id))
    for agent_id, why in tree.unreachable.items():
        lines.append(f"sub-agent {agent_id}: cannot be queried ({why})")
    if tree.truncated:
        lines.append(f"(only the first {MAX_AGENTS} agents of the tree were queried)")
    if tree.ended is not None:
        return f"nothing pending: agent {tree.agent_id} has ended ({tree.ended})"
    if not tree.items:
        running = len(tree.agents) - 1
        suffix = f" ({running} sub-agent{'s' * (running != 1)} running)" if running else ""
        lines.insert(0, "nothing pending" + suffix)
    return "\n".join(lines)


def item_lines(item: PendingItem, *, root: str) -> list[str]:
    """One pending item: what it is, then the command that answers or decides it."""
    by = "" if item.asked_by == root else f" (sub-agent {item.asked_by})"
    if item.question is not None:
        q = item.question
        lines = [f"question {item.id}{by}: {_clip(q.question)}"]
        if q.options:
            lines.append(f"  options ({q.selection.value}): " + " | ".join(q.options))
        return [*lines, f"  answer:  {item.command}"]
    assert item.approval is not None
    a = item.approval
    target = f"{_q(item.send_to)} {_q(item.id)}"
    return [
        f"approval {item.id}{by}: {a.tool}({_clip(a.arguments)})",
        f"  reason:  {a.reason}",
        f"  fingerprint: {a.fingerprint}",
        f"  approve: {item.command}",
        f"  or:      duragent reject {target} --message WHY | duragent edit {target} JSON",
    ]


def _q(value: str) -> str:
    return shlex.quote(value)


def _clip(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
