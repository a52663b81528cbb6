"""The live events of an agent or a graph: the stream's contract.

Every agent and graph publishes typed events on one topic of its workflow stream
(``temporalio.contrib.workflow_streams``). The workflow publishes most of them; the LLM
activity publishes ``token`` batches, which is why the contract lives on the activity
side of the boundary. Each event, as JSON, has at least ``type``, ``offset`` (its
position in the stream, filled when it is read) and ``agent_id`` or ``graph_id`` (the
workflow id).

Every field after ``type`` has a default: events written by today's workers must still
load when a field is added tomorrow, and a subscriber ignores what it does not know.

Tokens and retries: a ``token`` event carries the ``cycle``, the LLM activity's ``call``
(its activity id) and its ``attempt``. When a call is retried, the new attempt streams
its text from the start, so a client keeps, per ``(cycle, call)``, only the text of the
highest attempt; the ``message`` event of the assistant message replaces it at the end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, JsonValue, TypeAdapter

from duragent.activities.models import Message

TOPIC = "events"
"""The stream topic every duragent event is published on (one topic keeps one order)."""


class BaseEvent(BaseModel):
    """Fields every event has."""

    offset: int = 0
    """Position in the workflow's stream; set by the reader, not by the publisher."""
    agent_id: str | None = None
    """The agent's workflow id, for an agent's events."""
    graph_id: str | None = None
    """The graph's workflow id, for a graph's events."""
    at: datetime | None = None
    """When the event was published: the worker's clock for ``token`` events, workflow
    time for the others (which a replay of the run may put a workflow task later)."""


class StatusEvent(BaseEvent):
    """The agent's or graph's status changed."""

    type: Literal["status"] = "status"
    status: str = ""
    """The new status (``AgentStatus`` or the graph's status values)."""
    cycle: int = 0
    """The agent's cycle, or the graph's step."""
    waiting_for: str | None = None
    """What the run waits for, when it waits (a question, approvals, sub-agents)."""


class MessageEvent(BaseEvent):
    """A message was added to the transcript."""

    type: Literal["message"] = "message"
    index: int = 0
    """The message's position in the transcript (across continue-as-new)."""
    cycle: int = 0
    message: Message | None = None


class TokenEvent(BaseEvent):
    """A batch of streamed text from one attempt of one LLM call."""

    type: Literal["token"] = "token"
    cycle: int = 0
    call: str = ""
    """The LLM activity's id: with ``cycle`` it names one call."""
    attempt: int = 1
    """The activity attempt: a higher one replaces the text of lower ones."""
    seq: int = 0
    """The batch's number within its attempt, from 0."""
    text: str = ""
    reasoning: str = ""
    """Reasoning deltas, for models that stream them."""


class ToolStartedEvent(BaseEvent):
    """A tool call started."""

    type: Literal["tool_started"] = "tool_started"
    cycle: int = 0
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    """The call's raw JSON arguments, cut to a bounded length."""


class ToolFinishedEvent(BaseEvent):
    """A tool call finished (once per call, whatever its retries)."""

    type: Literal["tool_finished"] = "tool_finished"
    cycle: int = 0
    call_id: str = ""
    name: str = ""
    status: str = ""
    """The ``ToolStatus`` of the result."""
    duration_ms: int = 0
    """Workflow time from start to result."""
    error_code: str | None = None


class QuestionEvent(BaseEvent):
    """A question to a person: asked (``pending``) or answered (``resolved``).

    An agent's ``_ask_user`` (``kind`` ``ask_user``: answer with ``duragent reply``), a
    sub-agent's question routed through this agent (``asked_by`` names the sub-agent),
    or a graph's gate (``kind`` ``gate``: answer with ``duragent graph decide``).
    """

    type: Literal["question"] = "question"
    state: Literal["pending", "resolved"] = "pending"
    kind: Literal["ask_user", "gate"] = "ask_user"
    id: str = ""
    """The question id (``reply --question-id``) or the gate id (``graph decide``)."""
    question: str = ""
    """The question, or the gate's prompt."""
    options: list[str] | None = None
    selection: str = "free_text"
    asked_by: str | None = None
    """The sub-agent that asked, when it is not this agent (answer it here all the same)."""
    answer: JsonValue = None
    """The answer, once resolved (``None`` for a withdrawn question)."""
    node: str | None = None
    """A gate's node."""
    show: JsonValue = None
    """What a gate shows the person deciding."""
    answer_schema: dict[str, JsonValue] | None = None
    """The JSON Schema a gate's answer must satisfy."""


class ApprovalEvent(BaseEvent):
    """A tool call waits for approval (``pending``) or was decided (``resolved``)."""

    type: Literal["approval"] = "approval"
    state: Literal["pending", "resolved"] = "pending"
    call_id: str = ""
    tool: str = ""
    arguments: str = ""
    """The call's raw JSON arguments."""
    fingerprint: str = ""
    """What ``duragent approve --fingerprint`` names to approve exactly these arguments."""
    reason: str = ""
    """Why the call needs approval."""
    decision: str | None = None
    """``approve``, ``reject`` or ``edit``, once resolved (a deadline decides too)."""
    message: str | None = None
    """A rejection's message to the model."""


class CompactionEvent(BaseEvent):
    """Older transcript messages were summarized."""

    type: Literal["compaction"] = "compaction"
    cycle: int = 0
    replaced: int = 0
    """How many messages the summary replaced."""
    transcript_length: int = 0
    """The transcript's length after compaction."""


class ContinuedAsNewEvent(BaseEvent):
    """The run continued as new; the stream goes on in the next run."""

    type: Literal["continued_as_new"] = "continued_as_new"
    cycle: int = 0
    """The agent's cycle, or the graph's step."""
    run: int = 0
    """The number of the run that starts (1 is the first)."""


class NodeEvent(BaseEvent):
    """A graph node's visit changed: started, waiting, done, failed or skipped."""

    type: Literal["node"] = "node"
    node: str = ""
    kind: str = ""
    """The node's kind: ``agent``, ``task``, ``graph``, ``gate`` or ``map``."""
    visit: int = 0
    """The visit's number (1 for the first)."""
    status: str = ""
    """The node's status (``running``, ``waiting``, ``done``, ``failed``, ``skipped``)."""
    children: list[str] = Field(default_factory=list)
    """Workflow ids of the child agents or graphs this visit started so far: subscribe to
    one for its own events."""
    error: str | None = None


class FinishedEvent(BaseEvent):
    """The agent or graph ended; the last event of its stream."""

    type: Literal["finished"] = "finished"
    status: str = ""
    result: JsonValue = None
    """The typed output or final answer, when there is one."""
    error: str | None = None


Event = Annotated[
    StatusEvent
    | MessageEvent
    | TokenEvent
    | ToolStartedEvent
    | ToolFinishedEvent
    | QuestionEvent
    | ApprovalEvent
    | CompactionEvent
    | ContinuedAsNewEvent
    | NodeEvent
    | FinishedEvent,
    Field(discriminator="type"),
]
"""Any duragent event, told apart by ``type``."""

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
"""Reads an event from its JSON form (``EVENT_ADAPTER.validate_python(data)``)."""

EVENT_TYPES: tuple[str, ...] = (
    "status",
    "message",
    "token",
    "tool_started",
    "tool_finished",
    "question",
    "approval",
    "compaction",
    "continued_as_new",
    "node",
    "finished",
)
"""Every event ``type``, in the order the design lists them."""
