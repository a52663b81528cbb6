"""An agent's budgets (tokens, cost, wall-clock time) and the shares its children get.

Pure and deterministic: the workflow passes in ``workflow.now()``.

Children **split** what is left: a sub-task starting while ``n`` sub-tasks of the
parent are unfinished (itself included) gets ``1/n`` of the parent's remaining tokens
and cost, and the parent's own deadline. A child's usage counts in the parent's when
it ends, so shares given while siblings run never add up to more than was left; a
child overshoots its share by at most its last LLM call, as any agent does. Once
nothing is left, the parent starts no more sub-tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from duragent.activities.models import TokenUsage
from duragent.workflows.models import AgentInput


@dataclass(frozen=True)
class Budget:
    """Limits in force for one agent; ``None`` is unlimited."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    deadline: datetime | None = None

    @classmethod
    def of(cls, input: AgentInput, started_at: datetime) -> Budget:
        """The budget an agent's input sets, its deadline made absolute."""
        deadlines = [d for d in (input.deadline, _plus(started_at, input)) if d is not None]
        return cls(input.max_tokens, input.max_cost_usd, min(deadlines, default=None))


def _plus(started_at: datetime, input: AgentInput) -> datetime | None:
    return started_at + input.max_duration if input.max_duration is not None else None


def spent(budget: Budget, usage: TokenUsage, now: datetime) -> str | None:
    """Why the agent must stop, or ``None`` while every budget has room."""
    if budget.max_tokens is not None and usage.total_tokens >= budget.max_tokens:
        return f"token budget spent: {usage.total_tokens:,} of {budget.max_tokens:,} tokens"
    if budget.max_cost_usd is not None and usage.cost_usd >= budget.max_cost_usd:
        return f"cost budget spent: ${usage.cost_usd:.4f} of ${budget.max_cost_usd:.4f}"
    if budget.deadline is not None and now >= budget.deadline:
        return f"deadline passed: {budget.deadline.isoformat()}"
    return None


def child_share(budget: Budget, usage: TokenUsage, unfinished: int, now: datetime) -> Budget | None:
    """A starting sub-task's share of what is left; ``None`` when nothing is.

    Args:
        budget: The parent's budget.
        usage: The parent's usage so far (finished children included).
        unfinished: The parent's sub-tasks not yet finished, the starting one included.
        now: Workflow time.
    """
    if spent(budget, usage, now) is not None:
        return None
    n = max(unfinished, 1)
    tokens = None
    if budget.max_tokens is not None:
        tokens = max((budget.max_tokens - usage.total_tokens) // n, 1)
    cost = None
    if budget.max_cost_usd is not None:
        cost = (budget.max_cost_usd - usage.cost_usd) / n
    return Budget(tokens, cost, budget.deadline)
