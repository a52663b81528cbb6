"""A workflow graph as data: the pydantic ``GraphSpec`` and its parts.

A graph names its **state** (typed fields, each with a reducer), its **nodes** (each
exactly one of ``agent``, ``task``, ``gate``, ``map`` or ``graph``) and the **edges**
between them, from :data:`START` to :data:`END`. The same spec comes from YAML/JSON or
from the Python builder (``workflows.graph_load``), is checked by
``workflows.graph_validate`` before a run starts, travels in the run's input, and is
versioned by :meth:`GraphSpec.fingerprint`.

Strings the graph evaluates (task templates, ``show``, ``over``, ``on``, ``writes``,
task arguments) are ``${...}`` templates of ``workflows.graph_expr``.

Everything here is pure data and pure functions, safe inside the workflow sandbox.
Every field has a default except what a spec cannot do without; fields added later
must get one too, so specs stored in yesterday's histories keep loading.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

START: Final = "START"
"""Where every run begins; edges leave it, none enter it."""
END: Final = "END"
"""Where a run ends; edges enter it, none leave it."""

Duration = str | float
"""Seconds, or a duration string such as ``10s``, ``30m``, ``48h``, ``2d``, ``1h30m``.

Kept as written (the spec reads as its author wrote it, and a typo is reported with
every other problem by ``validate`` instead of stopping the load); read it with
:func:`parse_duration`."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(value: Duration) -> float:
    """Seconds in a duration: a positive number, or a string like ``48h`` or ``1h30m``.

    Raises:
        ValueError: It is not a positive duration; the message shows the accepted forms.
    """
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 32:
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif text and _DURATION_PART.sub("", text) == "":
            seconds = sum(
                float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text)
            )
    if seconds is None or not 0 < seconds < float("inf"):
        raise ValueError(
            f"invalid duration {value!r}: write seconds (90) or a positive duration with "
            "units ms, s, m, h, d, w (30s, 10m, 48h, 2d, 1h30m)"
        )
    return seconds


class _Spec(BaseModel):
    # Frozen: a spec is a value (the interpreter shares it, the fingerprint names it).
    # Extra keys are refused so that a typo (`reduce: append`) is an error, not a
    # silently ignored setting.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True)


class FieldType(StrEnum):
    """JSON type of a state field; ``any`` accepts every value."""

    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"
    NULL = "null"
    ANY = "any"


class Reducer(StrEnum):
    """How a write combines with a field's current value."""

    LAST = "last"
    """The write replaces the value. Two parallel branches writing it are a conflict."""
    APPEND = "append"
    """The field is a list; a list written extends it, any other value is added as one item."""
    MERGE = "merge"
    """The field is an object; an object written is merged into it, key by key (shallow)."""


class StateField(_Spec):
    """One field of a graph's state."""

    type: FieldType = FieldType.ANY
    items: dict[str, JsonValue] | None = None
    """JSON Schema of an array's items."""
    properties: dict[str, dict[str, JsonValue]] | None = None
    """JSON Schemas of an object's fields; expressions naming others are reported."""
    reducer: Reducer = Reducer.LAST
    default: JsonValue = None
    """Value before any write; ``None`` means ``[]`` for ``append``, ``{}`` for
    ``merge`` and null otherwise."""
    description: str = ""

    def json_schema(self) -> dict[str, JsonValue]:
        """The field's type as a JSON Schema (``{}`` for ``any``)."""
        schema: dict[str, JsonValue] = {}
        if self.type is not FieldType.ANY:
            schema["type"] = self.type.value
        if self.items is not None:
            schema["items"] = self.items
        if self.properties is not None:
            schema["properties"] = dict(self.properties)
        return schema

    def initial(self) -> JsonValue:
        """The value the field holds before any node writes it."""
        if self.default is not None:
            return self.default
        if self.reducer is Reducer.APPEND:
            return []
        return {} if self.reducer is Reducer.MERGE else None


class NodePolicy(_Spec):
    """How a node runs: retries, timeout, queue, model and limits.

    Every field is optional; a node's own value wins over the graph's ``defaults``
    (see :func:`effective_policy`), and ``None`` everywhere means the engine's default.
    """

    max_attempts: int | None = Field(None, ge=1)
    """Attempts of an activity (task nodes) or child run before the node fails."""
    timeout: Duration | None = None
    """Longest one attempt may take."""
    task_queue: str | None = None
    """Task queue of the node's activity or child workflows."""
    model: str | None = None
    """Model of agent nodes (``provider:model``)."""
    max_tokens: int | None = Field(None, ge=1)
    """Token budget of one agent node run."""
    max_cycles: int | None = Field(None, ge=1)
    """LLM calls one agent node run may make."""

    @property
    def timeout_seconds(self) -> float | None:
        """``timeout`` in seconds (``None`` when unset).

        Raises:
            ValueError: The duration is invalid (``validate`` reports it before a run).
        """
        return None if self.timeout is None else parse_duration(self.timeout)


class AgentNodeSpec(_Spec):
    """Run a child agent; its result is its typed output, or its final answer as text."""

    task: str
    """Template of the agent's task, e.g. ``"List the sections of a report on ${topic}"``."""
    output: dict[str, JsonValue] | None = None
    """JSON Schema of the output the agent must return through ``_task_finish(output=...)``;
    without one the result is the agent's answer text."""
    model: str | None = None
    tools: list[str] | None = None
    """Tool names to offer; ``None`` offers the worker's tools."""
    system_prompt: str | None = None
    """Template of the agent definition; the engine's default when ``None``."""
    max_cycles: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    max_cost_usd: float | None = Field(None, gt=0)
    max_duration: Duration | None = None


class TaskNodeSpec(_Spec):
    """Run a registered function as an activity; its return value is the result."""

    ref: str
    """``"module:function"`` as the worker registered it."""
    args: dict[str, JsonValue] = Field(default_factory=dict)
    """Keyword arguments; strings anywhere inside them are templates."""


class GateNodeSpec(_Spec):
    """Wait for a person's answer (the ``decide`` update); the answer is the result."""

    prompt: str
    """Template of the question shown to the person."""
    show: str | None = None
    """Template of what to show with it, e.g. ``"${draft}"``."""
    answer: dict[str, JsonValue] | None = None
    """JSON Schema an answer must satisfy; ``None`` takes any answer."""
    deadline: Duration | None = None
    """How long to wait; ``None`` waits as long as it takes."""
    on_timeout: JsonValue = None
    """The answer taken when the deadline passes; ``None`` fails the node instead."""

    @property
    def deadline_seconds(self) -> float | None:
        """``deadline`` in seconds (``None`` when unset).

        Raises:
            ValueError: The duration is invalid (``validate`` reports it before a run).
        """
        return None if self.deadline is None else parse_duration(self.deadline)


class MapErrorMode(StrEnum):
    """What a map node does when one of its items fails."""

    FAIL_FAST = "fail_fast"
    """Cancel the other items; the node fails."""
    COLLECT = "collect"
    """Let every item finish; a failed item's result is null."""


class MapNodeSpec(_Spec):
    """Run one agent or task per item of a list; the result is their results, in order."""

    over: str
    """Template giving the list, e.g. ``"${sections}"``; ``item`` is each element."""
    node: Node
    """The node run per item: an ``agent`` or a ``task``."""
    concurrency: int = Field(4, ge=1)
    """Items running at once."""
    on_error: MapErrorMode = MapErrorMode.FAIL_FAST


class SubgraphNodeSpec(_Spec):
    """Run another graph as a child; see ``output`` for its result."""

    spec: GraphSpec | None = None
    """The child graph, inline."""
    file: str | None = None
    """Or its file, read and inlined by the client before the run starts."""
    input: dict[str, JsonValue] = Field(default_factory=dict)
    """Initial values of the child's state fields; strings are templates over this state."""
    output: dict[str, str] = Field(default_factory=dict)
    """The result: ``{key: template over the child's final state}``. Empty: the child's
    ``output`` field, or its whole final state when it names none."""

    @model_validator(mode="after")
    def _one_source(self) -> SubgraphNodeSpec:
        if (self.spec is None) == (self.file is None):
            raise ValueError("a graph node has exactly one of 'spec' (inline) or 'file'")
        return self


class NodeKind(StrEnum):
    """What a node does; the key naming its body in the spec."""

    AGENT = "agent"
    TASK = "task"
    GATE = "gate"
    MAP = "map"
    GRAPH = "graph"


NodeBody = AgentNodeSpec | TaskNodeSpec | GateNodeSpec | MapNodeSpec | SubgraphNodeSpec


class Node(NodePolicy):
    """One node of a graph.

    It has exactly one body (``agent``, ``task``, ``gate``, ``map`` or ``graph``), and
    says what it writes to the state, how often it may run and where it goes on failure.
    """

    agent: AgentNodeSpec | None = None
    task: TaskNodeSpec | None = None
    gate: GateNodeSpec | None = None
    map: MapNodeSpec | None = None
    graph: SubgraphNodeSpec | None = None
    writes: dict[str, JsonValue] = Field(default_factory=dict)
    """``{field: template}`` with ``result`` (the node's result) in scope. A bare field
    name in the spec, ``writes: verdict``, stands for ``{verdict: "${result}"}``."""
    max_visits: int | None = Field(None, ge=1)
    """Runs of this node per graph run; every cycle needs one node with a bound."""
    on_exhausted: str | None = None
    """Where to go instead of a run past ``max_visits`` (a node or END); ``None``
    fails the graph."""
    on_error: str | None = None
    """Where to go when the node fails (a node or END); ``None`` fails the graph."""

    @field_validator("writes", mode="before")
    @classmethod
    def _field_name_shorthand(cls, value: object) -> object:
        return {value: "${result}"} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_body(self) -> Node:
        found = [kind.value for kind in NodeKind if getattr(self, kind.value) is not None]
        if len(found) != 1:
            kinds = ", ".join(k.value for k in NodeKind)
            raise ValueError(
                f"a node has exactly one of {kinds}; found {', '.join(found) or 'none'}"
            )
        return self

    @property
    def kind(self) -> NodeKind:
        """Which body the node has."""
        return next(kind for kind in NodeKind if getattr(self, kind.value) is not None)

    @property
    def body(self) -> NodeBody:
        """The node's body, whichever kind it is."""
        body: NodeBody = getattr(self, self.kind.value)
        return body


def route_key(value: Any) -> str:
    """The ``to:`` key a routing value selects: strings as they are, else JSON (``true``)."""
    return value if isinstance(value, str) else json.dumps(value)


class Edge(_Spec):
    """A way from one node to the next.

    Either unconditional (``to: node``; a node with several is a fan-out, its
    successors run in parallel) or routed: ``on`` is evaluated after the node ran and
    its value picks a target from ``to`` (``{value: node}``), else ``default``.
    """

    from_: str = Field(alias="from")
    to: str | dict[str, str]
    on: str | None = None
    """Template of the routing value, e.g. ``"${verdict.decision}"``."""
    default: str | None = None
    """Target when no key of ``to`` matches; without one an unmatched value fails."""

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        # YAML 1.1 loaders read a bare `on` key as the boolean true.
        if True in data and "on" not in data:
            data["on"] = data.pop(True)
        # Route keys are matched as text: `true:` or `1:` in YAML are not strings.
        if isinstance(data.get("to"), dict):
            data["to"] = {route_key(key): target for key, target in data["to"].items()}
        return data

    @model_validator(mode="after")
    def _routed_or_not(self) -> Edge:
        if isinstance(self.to, dict) and self.on is None:
            raise ValueError("an edge with several targets needs 'on' to choose one")
        if isinstance(self.to, str) and (self.on is not None or self.default is not None):
            raise ValueError("'on' and 'default' need 'to' as a mapping {value: node}")
        return self

    @property
    def routed(self) -> bool:
        """Whether ``on`` chooses the target."""
        return isinstance(self.to, dict)

    def targets(self) -> list[str]:
        """Every node this edge may lead to, ``default`` included."""
        if isinstance(self.to, str):
            return [self.to]
        found = list(self.to.values())
        return found + ([self.default] if self.default is not None else [])

    def target_for(self, value: Any) -> str | None:
        """The target a routing value selects (``default`` when none matches)."""
        if isinstance(self.to, str):
            return self.to
        return self.to.get(route_key(value), self.default)


class GraphSpec(_Spec):
    """A workflow graph: state, nodes and edges; YAML ``graph: name`` is its name."""

    name: str = Field(alias="graph", min_length=1)
    description: str = ""
    state: dict[str, StateField] = Field(default_factory=dict)
    nodes: dict[str, Node] = Field(default_factory=dict)
    edges: list[Edge] = Field(default_factory=list)
    output: str | None = None
    """The state field that is the graph's result; ``None``: the whole final state."""
    defaults: NodePolicy = NodePolicy()
    """Policy of every node that does not set its own."""

    def canonical_json(self) -> str:
        """The spec as JSON with sorted keys and defaults left out: one text per graph."""
        # Defaults are left out so that a field added to the models later (always with
        # a default) does not change the fingerprint of graphs that do not use it.
        data = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def fingerprint(self) -> str:
        """SHA-256 of :meth:`canonical_json`: the graph's version."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def edges_from(self, name: str) -> list[Edge]:
        """The edges leaving a node (or START), in spec order."""
        return [edge for edge in self.edges if edge.from_ == name]

    def policy(self, name: str) -> NodePolicy:
        """The policy a node runs with: its own settings over the graph's defaults."""
        return effective_policy(self.defaults, self.nodes[name])


def effective_policy(defaults: NodePolicy, *nodes: Node) -> NodePolicy:
    """A node's policy: settings layered, the later winning where they are set.

    The layers are ``defaults``, then each node's own settings (a map node, then the
    node inside it), each followed by an agent body's ``model``, ``max_cycles`` and
    ``max_tokens``.
    """
    merged = defaults.model_dump(include=set(NodePolicy.model_fields), exclude_none=True)
    for node in nodes:
        merged |= node.model_dump(include=set(NodePolicy.model_fields), exclude_none=True)
        if node.agent is not None:
            merged |= node.agent.model_dump(
                include={"model", "max_cycles", "max_tokens"}, exclude_none=True
            )
    return NodePolicy.model_validate(merged)


MapNodeSpec.model_rebuild()
SubgraphNodeSpec.model_rebuild()
