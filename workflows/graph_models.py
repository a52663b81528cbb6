"""The graph workflow's own contracts: its input, result, views and the gate update.

Every field added later gets a default: recorded histories must keep loading. The spec
itself is :class:`workflows.graph_spec.GraphSpec`; its fingerprint is the run's version.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, JsonValue
from temporalio.contrib.workflow_streams import WorkflowStreamState

from duragent.workflows.graph_spec import GraphSpec

GRAPH_WORKFLOW_NAME = "GraphWorkflow"


class GraphStatus(StrEnum):
    """Where a graph run stands (the same words as an agent's, for ``ls`` and gauges)."""

    RUNNING = "running"
    WAITING_USER = "waiting_user"
    """A gate waits for a person's answer (nothing else runs)."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class NodeStatus(StrEnum):
    """Where one node of a run stands."""

    PENDING = "pending"
    """Not reached (yet)."""
    RUNNING = "running"
    WAITING = "waiting"
    """A gate waiting for its answer."""
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Reached with its ``max_visits`` spent: its ``on_exhausted`` edge was taken."""


class NodeView(BaseModel):
    """One node of a run, as the ``status`` query shows it."""

    name: str
    kind: str
    status: NodeStatus = NodeStatus.PENDING
    visits: int = 0
    """Times it ran (a map's items count once, as one visit of the node)."""
    error: str | None = None
    children: list[str] = Field(default_factory=list)
    """Workflow ids of the child agents or graphs its last visit started."""


class GateView(BaseModel):
    """An open gate: what a person is asked, and how to answer (``decide``)."""

    id: str
    """``node@visit``: unique per node and loop visit; the ``decide`` update names it."""
    node: str
    prompt: str
    show: JsonValue = None
    answer_schema: dict[str, JsonValue] | None = None
    """JSON Schema the answer must satisfy; ``None`` takes any answer."""
    deadline: datetime | None = None
    opened_at: datetime | None = None


class GateDecision(BaseModel):
    """Input of the ``decide`` update: the answer to one open gate."""

    gate_id: str = Field(min_length=1, max_length=512)
    answer: JsonValue = None


class GraphCarry(BaseModel):
    """What a run hands to the next one when it continues as new."""

    state: dict[str, JsonValue]
    frontier: list[str]
    """Nodes to run in the next step."""
    nodes: dict[str, NodeView]
    step: int = 0
    runs: int = 1
    started_at: datetime | None = None
    events: WorkflowStreamState | None = None
    """The live event stream's newest events, offsets and publishers."""


class GraphInput(BaseModel):
    """How to start a graph."""

    spec: GraphSpec
    input: dict[str, JsonValue] = Field(default_factory=dict)
    """Initial values of state fields."""
    owner: str | None = None
    model: str | None = None
    """Model of agent nodes that name none (and whose graph ``defaults`` name none)."""
    max_steps: int = Field(10_000, ge=1)
    """A bound on steps however the spec loops: a graph ends, never spins."""
    history_max_events: int = Field(10_000, ge=100)
    """Continue as new at the next step boundary past this many events."""
    carry: GraphCarry | None = None
    """Set by continue-as-new."""


class GraphView(BaseModel):
    """Answer of the ``status`` query."""

    name: str
    fingerprint: str
    status: GraphStatus
    step: int
    nodes: list[NodeView]
    gates: list[GateView] = Field(default_factory=list)
    error: str | None = None
    runs: int = 1
    dropped_inputs: int = 0
    """``decide_signal`` answers dropped as stale or invalid."""


class GraphPending(BaseModel):
    """Answer of the ``pending`` query: open gates, and the children that may ask."""

    gates: list[GateView] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list)
    """Running child agents (their questions and approvals are theirs to answer)."""
    graphs: list[str] = Field(default_factory=list)
    """Running child graphs (their gates are theirs)."""


class GraphResult(BaseModel):
    """What a finished graph returns."""

    status: GraphStatus
    output: JsonValue = None
    """The field the spec's ``output`` names, else the whole final state."""
    state: dict[str, JsonValue] = Field(default_factory=dict)
    error: str | None = None
    fingerprint: str = ""
    steps: int = 0
    runs: int = 1
