"""The agent workflow's own contracts: its input, result, state views and updates.

Every field added later gets a default: recorded histories must keep loading.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from activities.models import TokenUsage, ToolStatus
from activities.tools.control import Selection


class AgentStatus(StrEnum):
    """Where an agent run stands."""

    RUNNING = "running"
    WAITING_USER = "waiting_user"
    WAITING_APPROVAL = "waiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    MAX_CYCLES = "max_cycles"
    BUDGET_EXCEEDED = "budget_exceeded"

    @property
    def is_final(self) -> bool:
        """True once the run can no longer change."""
        return self not in (
            AgentStatus.RUNNING,
            AgentStatus.WAITING_USER,
            AgentStatus.WAITING_APPROVAL,
        )


class ActivityPolicy(BaseModel):
    """Timeouts and retries for one kind of activity."""

    start_to_close_seconds: float = 120.0
    """Longest one attempt may take."""
    heartbeat_seconds: float | None = 30.0
    """Heartbeat timeout: how soon a dead worker's attempt is noticed and retried."""
    max_attempts: int = 6
    """Attempts before the error reaches the workflow (0 = unlimited)."""
    initial_interval_seconds: float = 1.0
    backoff_coefficient: float = 2.0
    maximum_interval_seconds: float = 60.0


class AgentInput(BaseModel):
    """How to start an agent."""

    task: str
    """What the user asks the agent to do; the first user message."""
    model: str
    """Model name as the provider knows it."""
    system_prompt: str | None = None
    """Agent definition; a default one is used when empty."""
    tools: list[str] | None = None
    """Tool names to offer; ``None`` offers every tool the worker has."""
    max_cycles: int = Field(50, ge=1)
    """At most this many LLM calls; then the run ends with status ``max_cycles``."""
    llm_policy: ActivityPolicy = ActivityPolicy()
    """Timeouts and retries of the LLM call."""
    stream: bool = True
    """Stream LLM responses (heartbeats per chunk, so cancellation reaches them)."""
    temperature: float | None = None


class CycleRecord(BaseModel):
    """What one cycle did."""

    cycle: int
    usage: TokenUsage = TokenUsage()
    finish_reason: str | None = None
    tool_calls: dict[str, ToolStatus] = Field(default_factory=dict)
    """Tool call id to result status (``name`` is in the transcript)."""


class PendingQuestion(BaseModel):
    """A question the agent asked and is waiting on."""

    id: str
    """Question id: the ``_ask_user`` tool call id."""
    question: str
    options: list[str] | None = None
    selection: Selection = Selection.FREE_TEXT


class ReplyInput(BaseModel):
    """Argument of the ``reply`` update."""

    answer: str
    question_id: str | None = None
    """The question answered; when given it must be the pending one (stale replies are
    rejected)."""


class AgentView(BaseModel):
    """Answer of the ``status`` query."""

    status: AgentStatus
    cycle: int
    model: str
    usage: TokenUsage
    pending_question: PendingQuestion | None = None
    answer: str | None = None
    error: str | None = None


class AgentResult(BaseModel):
    """What a finished run returns."""

    status: AgentStatus
    answer: str | None = None
    cycles: int = 0
    usage: TokenUsage = TokenUsage()
    files: list[str] = Field(default_factory=list)
    transcript_length: int = 0
    error: str | None = None
