"""The system prompt and the fixed texts the agent workflow adds to a transcript.

Pure and deterministic, like all of :mod:`workflows.policy` (which re-exports them).
"""

from __future__ import annotations

from datetime import datetime

from duragent.activities.models import SkillSummary
from duragent.workflows.models import SubAgentSpec

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


def skills_section(skills: list[SkillSummary]) -> list[str]:
    """The system prompt lines that list the workspace's skills."""
    if not skills:
        return []
    lines = [f"- {s.name}: {s.description}" for s in skills]
    return ["Skills (load one with _activate_skill before you follow it):\n" + "\n".join(lines)]
