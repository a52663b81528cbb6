"""Payloads that cross the activity boundary.

Activities own these contracts; the workflow imports them through
``workflow.unsafe.imports_passed_through()``. Every model is a pydantic model and
every field added later gets a default, because histories recorded today must
still load tomorrow.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, JsonValue


class Role(StrEnum):
    """Who wrote a transcript message (the Chat Completions roles)."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class ToolStatus(StrEnum):
    """Outcome of one tool call, as the model and the workflow see it."""

    SUCCESS = "success"
    ERROR = "error"
    WAIT_RESPONSE = "wait_response"
    RUNNING = "running"
    PENDING_COMPRESS = "pending_compress"


class ToolCall(BaseModel):
    """A tool call requested by the model.

    ``arguments`` stays the raw JSON text the model produced: it may be malformed,
    and that is for the tool layer to report back to the model, not for the
    transport to reject.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    """The provider's tool call id; unique within the run."""
    name: str
    """The tool's name as offered to the model."""
    arguments: str = "{}"
    """Raw JSON arguments as produced by the model."""
    refused: str | None = None
    """Set by the LLM activity when the call cannot run as the model sent it (its
    arguments are over the size bound, see :mod:`activities.limits`): the reason, which
    the model is told instead of a result. ``arguments`` is then ``{}``."""


class Message(BaseModel):
    """One transcript message in Chat Completions shape."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    """Set on assistant messages that call tools."""
    tool_call_id: str | None = None
    """Set on tool messages: which call this result answers."""
    name: str | None = None
    """Set on tool messages: the tool that produced the result."""
    artifact: str | None = None
    """Workspace path of the full content when it was too large for history; ``content``
    then holds a stub (path, head and tail), and the LLM activity reads the full text
    back from the artifact unless the message is ``stubbed``."""
    artifact_chars: int | None = None
    """Length of the full content kept in ``artifact``."""
    stubbed: bool = False
    """Compaction moved this result out of the prompt: the model sees only the stub."""
    reasoning: str | None = None
    """Set on assistant messages: the model's reasoning (``reasoning_content``), kept in
    the transcript but sent back only to model families that want it (see
    :mod:`activities.providers`)."""

    @property
    def prompt_chars(self) -> int:
        """Characters this message puts in the prompt (for the token estimate)."""
        body = self.artifact_chars if self.artifact and not self.stubbed else None
        calls = sum(len(c.name) + len(c.arguments) for c in self.tool_calls)
        return (body or len(self.content or "")) + calls


class TokenUsage(BaseModel):
    """Token counts as reported by the provider."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    """What the tokens cost, from the worker's price table (0 for unpriced models)."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )


class ModelOptions(BaseModel):
    """Sampling and provider options of an agent's model; ``None`` leaves a field unset.

    The worker's model-family table supplies defaults (see :mod:`activities.providers`);
    options given here override them, and ``extra_body`` is merged key by key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=2)
    reasoning_effort: str | None = Field(default=None, min_length=1, max_length=32)
    """``minimal``, ``low``, ``medium``, ``high`` (or what the provider accepts)."""
    max_completion_tokens: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: list[str] | None = Field(default=None, max_length=16)
    extra_body: dict[str, JsonValue] | None = None
    """Provider-specific fields added to the request body as they are (e.g. Qwen's
    ``chat_template_kwargs``, GLM's ``thinking``)."""


class TokenStream(BaseModel):
    """How an LLM call publishes its text as live ``token`` events (:mod:`activities.events`)."""

    cycle: int = 0
    """The agent's cycle the call belongs to."""
    batch_seconds: float = Field(0.25, gt=0, le=60)
    """How long text is gathered before it is published: each batch is one signal to
    the workflow (one history event), however many tokens it holds."""


class LLMRequest(BaseModel):
    """Input of the LLM activity."""

    model: str
    """Model name as the provider knows it."""
    messages: list[Message]
    """The messages added since ``base_ref`` (all of them when there is no base). In
    requests recorded before ``system`` existed, the system message comes first here."""
    system: str | None = None
    """The system prompt, sent on every call but never stored in the transcript chain."""
    base_ref: str | None = None
    """The stored transcript these messages continue (see :mod:`activities.store`)."""
    tool_names: list[str] = Field(default_factory=list)
    """Tools offered this cycle; the activity turns them into schemas from its registry,
    so the schemas do not travel through history on every cycle."""
    temperature: float | None = None
    stream: bool = True
    """Stream the response (the activity heartbeats meanwhile, so cancellation reaches it)."""
    options: ModelOptions | None = None
    """The agent's model options; ``temperature`` above, when set, wins over theirs."""
    workspace: str | None = None
    """The agent's workspace folder, where its artifacts and images are read from
    (``None``: the whole root, as for :attr:`ToolRequest.workspace`)."""
    finish_output_schema: dict[str, JsonValue] | None = None
    """The agent's output schema, when it must finish with a typed result: the
    ``_task_finish`` entry of this call then requires an ``output`` matching it (the
    registry's shared entries stay as they are). It travels with every call, so the
    workflow bounds its size when the agent starts."""
    events: TokenStream | None = None
    """Publish the streamed text as ``token`` events to the calling workflow's stream
    (``None``: publish nothing, as runs started before live events)."""


class LLMResult(BaseModel):
    """Output of the LLM activity: the assistant's turn."""

    message: Message
    usage: TokenUsage = TokenUsage()
    finish_reason: str | None = None
    model: str = ""
    """Model name the provider reports having used."""
    transcript_ref: str | None = None
    """The stored transcript including this answer: the next call's ``base_ref``."""
    attempt: int = 1
    """The activity attempt that produced this result (1 when the first try succeeded)."""


class SummarizeRequest(BaseModel):
    """Input of the compaction activity's LLM stage."""

    model: str
    messages: list[Message] = Field(default_factory=list)
    """The middle of the transcript, to be replaced by a summary (when not by reference)."""
    transcript_ref: str | None = None
    """Or by reference: the stored transcript whose ``[start:end]`` is the middle, so a
    long conversation does not travel through history again."""
    start: int = 0
    end: int = 0
    options: ModelOptions | None = None
    """The agent's model options, as for its LLM calls."""


class SummarizeResult(BaseModel):
    """A structured summary of the messages, and what it cost."""

    summary: str
    usage: TokenUsage = TokenUsage()
    attempt: int = 1
    """The activity attempt that produced this summary."""


class ToolRequest(BaseModel):
    """Input of the tool activity: one call of one tool."""

    call: ToolCall
    idempotency_key: str
    """``workflow_id:tool_call_id``: stable across retries, worker restarts and replays,
    so a tool with external side effects can deduplicate."""
    large_result_chars: int = 8_000
    """Results longer than this go to a workspace artifact; history keeps a stub."""
    workspace: str | None = None
    """The agent's folder under the worker's workspace root: the tool sees only that.
    ``None`` is the whole root (runs started before per-agent workspaces)."""


class ToolResult(BaseModel):
    """Output of a tool call, fed back to the model as a tool message."""

    call_id: str
    name: str
    status: ToolStatus
    content: str
    """What the model reads: the output, or an error message it can act on."""
    error_code: str | None = None
    """A short machine-readable code when ``status`` is ``error``."""
    artifact: str | None = None
    """Workspace path of the full output when it was too large for history."""
    artifact_chars: int | None = None
    background: str | None = None
    """The session id of a background command this call started: the workflow watches
    it on the worker that runs it (see :class:`WatchRequest`)."""


class ToolKind(StrEnum):
    """Where a tool runs."""

    ACTIVITY = "activity"
    """Executed by the tool activity on a worker."""
    CONTROL = "control"
    """Interpreted by the workflow itself (finish, ask the user)."""


class ApprovalMode(StrEnum):
    """When a tool call needs a person's approval before it runs."""

    NEVER = "never"
    ALWAYS = "always"
    DANGEROUS_COMMAND = "dangerous_command"
    """Only when the call's ``command`` argument matches a dangerous pattern."""


class ToolSpec(BaseModel):
    """What the workflow needs to know to schedule a tool: its execution policy."""

    name: str
    kind: ToolKind = ToolKind.ACTIVITY
    approval: ApprovalMode = ApprovalMode.NEVER
    """The worker's default approval mode; a task may override it per tool."""
    start_to_close_seconds: float = 60.0
    heartbeat_seconds: float | None = None
    max_attempts: int = 3
    """Retries for unexpected failures; validation errors never retry."""
    host_affine: bool = False
    """Runs on the worker that holds the agent's shell (its local copy of the files,
    its background commands), through that worker's own task queue."""


class ValidateArgumentsRequest(BaseModel):
    """Input of the activity that checks arguments against a tool's model."""

    tool: str
    arguments: str
    """Raw JSON arguments."""


class ValidateArgumentsResult(BaseModel):
    """Whether the arguments are valid; the message says what to fix."""

    error: str | None = None


class CleanupRequest(BaseModel):
    """Input of the cleanup activity run when an agent is cancelled."""

    workflow_id: str
    reason: str | None = None


class CleanupResult(BaseModel):
    """What the cleanup released."""

    released: list[str] = Field(default_factory=list)


class DescribeToolsRequest(BaseModel):
    """Input of the activity that lists the worker's tools."""

    enabled: list[str] | None = None
    """Tool names to offer; ``None`` offers every registered tool. ``mcp:SERVER`` and
    ``mcp:SERVER/tool`` enable MCP servers' tools, which ``None`` does not."""


class SkillSummary(BaseModel):
    """A skill as the system prompt lists it."""

    name: str
    description: str


class DescribeToolsResult(BaseModel):
    """The tools a run may use, with their policies."""

    tools: list[ToolSpec]
    unknown: list[str] = Field(default_factory=list)
    """Requested names that no registered tool has."""
    skills: list[SkillSummary] = Field(default_factory=list)
    """Skills in the workspace, for the system prompt (``_activate_skill`` loads one)."""
    mcp_tools: dict[str, str] = Field(default_factory=dict)
    """Where each MCP tool of ``tools`` comes from: its offered name -> ``SERVER/tool``
    (a name other than the tool's own resolves a collision)."""


class HostClaimRequest(BaseModel):
    """Input of the activity that pins an agent's shell work to one worker."""

    workflow_id: str


class HostClaim(BaseModel):
    """The worker that takes an agent's shell work: its own task queue."""

    task_queue: str | None = None
    """The worker's host queue; ``None`` when it runs none (the shared queue then)."""
    worker: str = ""
    """Who answered (host name and process), for operators."""


class WatchRequest(BaseModel):
    """Input of the activity that holds a background command for its run."""

    session_id: str
    workflow_id: str
    workspace: str | None = None
    """The agent's folder (as in :class:`ToolRequest`): where its last writes go back."""


class WatchResult(BaseModel):
    """How a watched background command ended."""

    session_id: str
    exit_code: int | None = None
    """Its return code (negative: killed by that signal)."""
    elapsed_seconds: float = 0.0


class TaskRequest(BaseModel):
    """Input of the task activity: one call of a registered function (a graph's task node)."""

    ref: str
    """``"module:function"``, as the worker registered it."""
    args: dict[str, JsonValue] = Field(default_factory=dict)
    """Keyword arguments, already rendered from the graph's state."""
    idempotency_key: str = ""
    """``graph_id:node@visit[item]``: stable across retries, for deduplicating side effects."""


class TaskResult(BaseModel):
    """What a task function returned (JSON)."""

    value: JsonValue = None
    attempt: int = 1


class ListTasksRequest(BaseModel):
    """Input of the activity that lists a worker's tasks."""

    graph: str = ""
    """Who asks (the graph's name), for the worker's log."""


class ListTasksResult(BaseModel):
    """The task refs a worker runs."""

    refs: list[str] = Field(default_factory=list)
