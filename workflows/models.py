"""The agent workflow's own contracts: its input, result, state views and updates.

Every field added later gets a default: recorded histories must keep loading.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field, JsonValue, field_validator
from temporalio.contrib.workflow_streams import WorkflowStreamState

from duragent.activities.models import ApprovalMode, Message, ModelOptions, TokenUsage
from duragent.activities.tools.control import Selection, TodoItem
from duragent.activities.tools.workspace import scope_folder


class AgentStatus(StrEnum):
    """Where an agent run stands."""

    RUNNING = "running"
    WAITING_USER = "waiting_user"
    WAITING_APPROVAL = "waiting_approval"
    WAITING_PROVIDER = "waiting_provider"
    """The LLM provider keeps failing with retryable errors (an outage, rate limits):
    the agent waits and retries with backoff, up to ``llm_policy.max_retry_seconds``."""
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
            AgentStatus.WAITING_PROVIDER,
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


class OnRetriesExhausted(StrEnum):
    """What an agent does when its provider still fails after ``max_retry_duration``."""

    FAIL = "fail"
    """The run fails, naming the provider's last error."""
    WAIT = "wait"
    """The agent waits (status ``waiting_provider``) until an operator sends ``retry``."""


class LLMPolicy(ActivityPolicy):
    """Timeouts and retries of the LLM calls (cycles and summaries), and outages.

    One activity retries quickly (``max_attempts`` with backoff, honouring
    ``Retry-After``). When those attempts are spent on retryable errors (5xx, 429,
    connection errors, timeouts), the agent shows ``waiting_provider``, waits
    ``maximum_interval_seconds`` (or the provider's ``Retry-After``, if longer) and
    tries again, until ``max_retry_duration`` has passed since the outage began.
    """

    heartbeat_seconds: float | None = 5.0
    """Heartbeat timeout: a SIGKILLed worker's call is retried after this long. The
    activity heartbeats from a timer (every third of it) also while it waits for the
    first byte, so a slow model does not look dead."""
    max_retry_duration: timedelta = timedelta(hours=1)
    """How long a provider outage is ridden out before ``on_exhausted`` applies."""
    on_exhausted: OnRetriesExhausted = OnRetriesExhausted.FAIL
    token_batch_seconds: float = Field(0.25, ge=0, le=60)
    """How long streamed text is gathered before it is published as one ``token`` event
    (one signal, about 1 KB of history each); 0 publishes no tokens. Each later batch of
    a call gathers half as long again, up to 1 s or 8 times this, whichever is shorter.
    Shorter shows text sooner and grows history faster (``bench/stream_history.py``)."""


class ProviderOutage(BaseModel):
    """Answer part of the ``status`` query while the LLM provider keeps failing."""

    since: datetime
    """When the first call of this outage failed for good (workflow time)."""
    rounds: int = 1
    """Activity executions that failed, each after all its attempts."""
    last_error: str = ""
    next_retry_at: datetime | None = None
    """``None`` once retries ran out and an operator's ``retry`` is awaited."""


class OnQuestionTimeout(StrEnum):
    """What happens when nobody answers a question before its deadline."""

    DEFAULT_ANSWER = "default_answer"
    FAIL = "fail"


class AskPolicy(BaseModel):
    """Deadline of ``_ask_user`` questions."""

    deadline_seconds: float | None = Field(None, gt=0)
    """How long to wait for a reply; ``None`` waits as long as it takes."""
    on_timeout: OnQuestionTimeout = OnQuestionTimeout.DEFAULT_ANSWER
    default_answer: str = (
        "The user did not answer in time. Continue with your best judgement, and say "
        "what you assumed."
    )


class OnApprovalTimeout(StrEnum):
    """What happens to a pending approval when its deadline passes."""

    APPROVE = "approve"
    REJECT = "reject"


class ApprovalPolicy(BaseModel):
    """Which tool calls need a person's approval, and how long to wait for one."""

    tools: dict[str, ApprovalMode] = Field(default_factory=dict)
    """Per-tool overrides of the worker's defaults, e.g. ``{"_write_file": "always"}``."""
    deadline_seconds: float | None = Field(None, gt=0)
    on_timeout: OnApprovalTimeout = OnApprovalTimeout.REJECT


class MemoryPolicy(BaseModel):
    """When and how the agent's context is compacted."""

    context_window_tokens: int = Field(128_000, ge=1_000)
    """The model's context window."""
    compact_at: float = Field(0.75, gt=0, le=1)
    """Compact before an LLM call whose prompt would pass this fraction of the window."""
    offer_tool_at: float = Field(0.6, gt=0, le=1)
    """Offer ``_compress_memory`` to the model past this fraction of the window."""
    keep_recent_turns: int = Field(4, ge=1)
    """Assistant turns (with their tool results) always kept verbatim."""
    large_result_chars: int = Field(4_000, ge=500)
    """Tool results longer than this live in workspace artifacts; history keeps a stub."""
    summary_model: str | None = None
    """Model for the summary stage; the agent's own model when empty."""


class HistoryPolicy(BaseModel):
    """When the run continues as new, so its history never nears Temporal's limits."""

    max_events: int = Field(10_000, ge=100)
    """Continue as new at the next safe point past this many events (or when Temporal
    suggests it, whichever comes first); Temporal terminates a run at 51,200."""
    max_bytes: int = Field(10_000_000, ge=100_000)
    """Same, for history size in bytes (Temporal's hard limit: 50 MB)."""
    max_carry_chars: int = Field(200_000, ge=10_000)
    """A transcript longer than this is compacted before it is carried into the next run,
    so the continue-as-new input stays far from Temporal's payload limits."""
    ship_full_transcript: bool = False
    """Send the whole transcript in every LLM activity input instead of a reference:
    the naive design, kept to measure it against (``bench/long_run.py``)."""


class BackgroundState(StrEnum):
    """Where a background command stands, as its run knows it."""

    RUNNING = "running"
    ENDED = "ended"
    """It exited (``exit_code``; negative when a signal ended it, e.g. the agent's
    ``_stop_background_command``)."""
    STOPPED = "stopped"
    """The run ended (finished, failed or cancelled) and stopped it."""
    LOST = "lost"
    """Its worker died or left: the command died with it."""


class BackgroundSession(BaseModel):
    """A background command a run started, and the worker it runs on."""

    session_id: str
    host: str
    """The host queue of the worker that runs it."""
    command: str = ""
    state: BackgroundState = BackgroundState.RUNNING
    exit_code: int | None = None
    error: str | None = None
    """Why it was lost."""


class ShellCarry(BaseModel):
    """The shell's pin and background commands, carried across continue-as-new."""

    host: str | None = None
    """The host queue the run's shell work is pinned to; ``None``: not pinned yet."""
    worker: str = ""
    """Who that is (host name and process)."""
    background: list[BackgroundSession] = Field(default_factory=list)


class CarryState(BaseModel):
    """What a run hands to the next one when it continues as new."""

    transcript: list[Message]
    cycles: int
    usage: TokenUsage
    usage_by_model: dict[str, TokenUsage] = Field(default_factory=dict)
    llm_calls: int = 0
    llm_attempts: int = 0
    tool_calls: int = 0
    todos: list[TodoItem] = Field(default_factory=list)
    inbox: list[str] = Field(default_factory=list)
    """Steering messages not yet read by the agent."""
    started_at: datetime
    runs: int = 1
    """Runs so far, this one included: ``runs - 1`` continue-as-new."""
    compactions: int = 0
    prompt_tokens: int = 0
    """The provider's last reported prompt size."""
    transcript_ref: str | None = None
    sent: int = 0
    """Messages of ``transcript`` already in the store under ``transcript_ref``."""
    shell: ShellCarry | None = None
    """Where the agent's shell work runs, and its background commands."""
    events: WorkflowStreamState | None = None
    """The live event stream's newest events, offsets and publishers (see
    :mod:`workflows.events`)."""


class SubAgentSpec(BaseModel):
    """A named sub-agent the agent may hand tasks to (a child workflow each)."""

    description: str = ""
    """What it is good at; shown to the parent model."""
    model: str | None = None
    """Its model; the parent's when empty."""
    system_prompt: str | None = None
    tools: list[str] | None = None
    """Tools it may use; every worker tool when ``None`` (sub-agent tools excepted)."""
    max_cycles: int = Field(20, ge=1)
    model_options: ModelOptions | None = None
    """Its model options; the parent's when empty and it runs the parent's model."""


class ParentLink(BaseModel):
    """Set on a sub-agent: who started it."""

    workflow_id: str
    agent: str
    """The sub-agent's name in the parent's configuration."""


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
    llm_policy: LLMPolicy = LLMPolicy()
    """Timeouts and retries of the LLM call, and how long a provider outage is ridden out."""
    stream: bool = True
    """Stream LLM responses (the activity heartbeats on a timer, so a cancel reaches it)."""
    temperature: float | None = None
    model_options: ModelOptions | None = None
    """Sampling and provider options (reasoning effort, top_p, seed, stop, extra body,
    ...); they override the worker's per-family defaults."""
    ask: AskPolicy = AskPolicy()
    """Deadline and default of ``_ask_user`` questions."""
    approval: ApprovalPolicy = ApprovalPolicy()
    """Which tool calls wait for a person's approval."""
    owner: str | None = None
    """Who started the agent; searchable (``duragent ls --owner``)."""
    memory: MemoryPolicy = MemoryPolicy()
    """Compaction thresholds."""
    history: HistoryPolicy = HistoryPolicy()
    """Continue-as-new thresholds."""
    carry: CarryState | None = None
    """Set by continue-as-new: the state of the previous run."""
    sub_agents: dict[str, SubAgentSpec] = Field(default_factory=dict)
    """Named sub-agents the model may hand tasks to."""
    max_concurrent_sub_tasks: int = Field(4, ge=1)
    """Sub-agents running at once; the others of a batch wait for a slot."""
    max_tokens: int | None = Field(None, ge=1)
    """Token budget (input + output, sub-agents included); past it the run ends with
    status ``budget_exceeded``."""
    parent: ParentLink | None = None
    """Set when this agent is a sub-agent."""
    max_cost_usd: float | None = Field(None, gt=0)
    """Cost budget in US dollars (sub-agents included), priced by the worker's table;
    past it the run ends with status ``budget_exceeded``."""
    deadline: datetime | None = None
    """Wall-clock deadline; past it the run ends with status ``budget_exceeded``.
    Checked between cycles and while waiting for a person."""
    max_duration: timedelta | None = None
    """The same as a duration from the agent's start; the earlier of the two applies."""
    workspace: str | None = None
    """The agent's folder under the worker's workspace root, shared by every agent that
    names it; when ``None`` a new run gets a folder of its own, named by its workflow id.
    A sub-agent gets its parent's. Continue-as-new carries the folder the run decided
    on (``None`` there: the whole root, for runs started before per-agent workspaces)."""
    output_schema: dict[str, JsonValue] | None = None
    """JSON Schema (Draft 2020-12) of a typed result the agent must finish with: the
    model sees it as the required ``output`` of ``_task_finish``, an output that does
    not match goes back to it as a tool error, and a matching one is the result's
    :attr:`AgentResult.output`. At most 16 KiB, local ``$ref`` only; a schema that
    cannot be used fails the run at its start (``InvalidOutputSchema``)."""
    agent: str | None = Field(None, max_length=200)
    """The name of the definition (``duragent.Agent``) the run was started from; the
    input holds all of it, so the run never depends on the definition again."""

    @field_validator("workspace")
    @classmethod
    def _workspace(cls, value: str | None) -> str | None:
        return None if value is None else scope_folder(value)

    @field_validator("llm_policy", mode="before")
    @classmethod
    def _llm_policy(cls, value: object) -> object:
        # A plain ActivityPolicy (as before LLMPolicy existed) keeps the outage defaults.
        if isinstance(value, ActivityPolicy) and not isinstance(value, LLMPolicy):
            return LLMPolicy(**value.model_dump())
        return value


class PendingQuestion(BaseModel):
    """A question the agent asked and is waiting on."""

    id: str
    """Question id: the ``_ask_user`` tool call id."""
    question: str
    options: list[str] | None = None
    selection: Selection = Selection.FREE_TEXT
    allow_custom: bool = False
    """Whether an answer outside ``options`` is accepted."""
    asked_at: datetime | None = None
    agent_id: str | None = None
    """Set when a sub-agent asks: the reply is routed to it."""


class ReplyInput(BaseModel):
    """Argument of the ``reply`` update and signal."""

    answer: str | list[str]
    """The answer; a list of options for a ``multiple`` selection."""
    question_id: str | None = None
    """The question answered; when given it must be the pending one (stale replies are
    rejected)."""


class PendingApproval(BaseModel):
    """A tool call waiting for a person's decision."""

    call_id: str
    tool: str
    arguments: str
    """The raw JSON arguments the model produced."""
    fingerprint: str
    """SHA-256 of the canonical arguments: a decision may name it to be sure it
    approves what it saw."""
    reason: str
    requested_at: datetime | None = None


class ApprovalAction(StrEnum):
    """A decision on a pending tool call."""

    APPROVE = "approve"
    REJECT = "reject"
    EDIT = "edit"


class ApprovalDecision(BaseModel):
    """Argument of the ``decide`` update."""

    call_id: str
    action: ApprovalAction
    message: str | None = None
    """For ``reject``: what the model is told."""
    arguments: str | None = None
    """For ``edit``: the new JSON arguments, validated against the tool's model."""
    fingerprint: str | None = None
    """When given, must match the pending call's fingerprint."""


class SteerInput(BaseModel):
    """Argument of the ``say`` signal: a user message for the running agent."""

    message: str = Field(min_length=1)


class RetryInput(BaseModel):
    """Argument of the ``retry`` update, which an operator sends to try the LLM again.

    It applies to an agent whose provider retries ran out while
    ``llm_policy.on_exhausted`` is ``wait``.
    """

    reason: str | None = Field(None, max_length=1_000)


class TranscriptQuery(BaseModel):
    """Argument of the ``transcript`` query: one page."""

    offset: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=500)


class TranscriptPage(BaseModel):
    """Answer of the ``transcript`` query."""

    total: int
    offset: int
    messages: list[Message]


class UsageView(BaseModel):
    """Answer of the ``usage`` query."""

    total: TokenUsage
    by_model: dict[str, TokenUsage] = Field(default_factory=dict)
    cycles: int = 0
    llm_calls: int = 0
    llm_attempts: int = 0
    """Attempts of the LLM activities that answered, retries included: the cost of
    flaky providers (Temporal's history keeps only each activity's last failure)."""
    tool_calls: int = 0
    runs: int = 1
    """Runs of this agent so far (continue-as-new starts a new one)."""
    compactions: int = 0
    context_tokens: int = 0
    """Estimated size of the next prompt."""


class PendingView(BaseModel):
    """Answer of the ``pending`` query: what the agent waits on."""

    question: PendingQuestion | None = None
    approvals: list[PendingApproval] = Field(default_factory=list)
    sub_agent_questions: list[PendingQuestion] = Field(default_factory=list)
    """Questions of running sub-agents; answer them with ``reply`` and their id."""
    sub_agents: list[str] = Field(default_factory=list)
    """Workflow ids of the sub-agents running now: query their ``pending`` for their
    approvals (decide those on the sub-agent's own id) and their own sub-agents."""


class SubTaskReport(BaseModel):
    """How one sub-task ended, as the parent model reads it."""

    task: str
    status: AgentStatus
    answer: str | None = None
    error: str | None = None

    def answer_or_error(self) -> str:
        """The answer of a completed sub-task, else why there is none."""
        if self.status is AgentStatus.COMPLETED:
            return self.answer or ""
        return f"sub-task ended {self.status.value}: {self.error or 'no answer'}"


class SubAgentQuestion(BaseModel):
    """Argument of the ``sub_agent_question`` signal a sub-agent sends its parent."""

    agent_id: str
    question: PendingQuestion | None
    """``None`` withdraws the sub-agent's question (answered, or its deadline passed)."""


class AgentView(BaseModel):
    """Answer of the ``status`` query."""

    status: AgentStatus
    cycle: int
    model: str
    usage: TokenUsage
    pending_question: PendingQuestion | None = None
    answer: str | None = None
    error: str | None = None
    waiting_for: str | None = None
    """What the agent waits on right now, in words."""
    pending_approvals: int = 0
    last_activity: datetime | None = None
    """When the status last changed (workflow time)."""
    cancel_reason: str | None = None
    provider_outage: ProviderOutage | None = None
    """Set while the LLM provider keeps failing (status ``waiting_provider``)."""
    dropped_inputs: int = 0
    """Signals dropped because they were malformed or over their size bound."""
    last_dropped: str | None = None
    """Why the last one was dropped."""
    deadline: datetime | None = None
    """The wall-clock deadline in force, if any."""
    workspace: str | None = None
    """The agent's folder under the worker's workspace root (``None``: the whole root)."""
    shell: ShellCarry | None = None
    """The worker its shell work is pinned to and its background commands."""
    output: JsonValue = None
    """The typed result, once the agent finished with one (see
    :attr:`AgentInput.output_schema`)."""


class AgentResult(BaseModel):
    """What a finished run returns."""

    status: AgentStatus
    answer: str | None = None
    cycles: int = 0
    usage: TokenUsage = TokenUsage()
    files: list[str] = Field(default_factory=list)
    """Files the agent named when it finished, relative to :attr:`workspace`."""
    workspace: str | None = None
    """The agent's folder under the worker's workspace root (``None``: the whole root)."""
    transcript_length: int = 0
    error: str | None = None
    runs: int = 1
    """Runs over which the totals were counted (continue-as-new starts a new run)."""
    compactions: int = 0
    llm_attempts: int = 0
    """LLM activity attempts that led to answers, retries included."""
    output: JsonValue = None
    """The typed result, matching :attr:`AgentInput.output_schema`; ``None`` for an
    agent without one, or that did not complete."""
