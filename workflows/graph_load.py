"""Make a ``GraphSpec`` from YAML or JSON (:func:`load_graph`) or from Python (:class:`Graph`).

Both produce the same spec for the same graph (equal, with equal fingerprints). The
file form, as in ``examples/graphs/report.yaml``::

    graph: report
    state:
      topic:    {type: string}
      sections: {type: array, reducer: append}
    nodes:
      plan:   {agent: {task: "List the sections of a report on ${topic}"},
               writes: {sections: "${result.sections}"}}
      review: {gate: {prompt: "Approve?", deadline: 48h}, writes: verdict, max_visits: 3}
    edges:
      - [START, plan, review]          # a chain: START -> plan -> review
      - {from: review, on: "${verdict.decision}", to: {approve: END, revise: plan}}

and the same in Python::

    spec = (
        Graph("report")
        .state(topic=str, sections=(list, "append"))
        .agent("plan", task="...", writes={"sections": "${result.sections}"})
        .gate("review", prompt="Approve?", deadline="48h", writes="verdict", max_visits=3)
        .edge(START, "plan", "review")
        .route("review", on="${verdict.decision}", to={"approve": END, "revise": "plan"})
        .build()
    )

Loading checks the structure (unknown keys, wrong types, a node with two bodies) and
raises :class:`GraphSpecError` listing every such problem; ``validate`` then checks
what the graph means. YAML is read with YAML 1.2 booleans (only ``true``/``false``:
``on`` and ``no`` stay strings) and no dates, and duplicate keys are refused.

This module runs in clients, never in workflow code (it parses text); YAML needs
PyYAML, JSON does not.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections.abc import Mapping
from typing import Any, Final, TypedDict, Unpack

from pydantic import JsonValue, ValidationError
from pydantic_core import ErrorDetails

from duragent.workflows.graph_spec import (
    AgentNodeSpec,
    Duration,
    Edge,
    GateNodeSpec,
    GraphSpec,
    MapNodeSpec,
    Node,
    NodePolicy,
    StateField,
    SubgraphNodeSpec,
    TaskNodeSpec,
)
from duragent.workflows.graph_validate import GraphSpecError, Problem

__all__ = ["Graph", "GraphSpecError", "NodeOptions", "PolicyOptions", "Problem", "load_graph"]


def load_graph(data: str | Mapping[str, Any], *, source: str = "<graph>") -> GraphSpec:
    """Load a graph from YAML or JSON text, or from the mapping such text parses to.

    Args:
        data: The graph: text, or an already parsed mapping.
        source: Where it came from (a file name), for the error message.

    Raises:
        GraphSpecError: Every structural problem, each with where it is
            (``nodes.review.gate.prompt``) and what is wrong.
    """
    parsed = _parse_text(data, source) if isinstance(data, str) else data
    if not isinstance(parsed, Mapping):
        raise GraphSpecError(
            [Problem(where="", message="a graph is a mapping with graph, state, nodes, edges")],
            source,
        )
    return _to_spec(dict(parsed), source)


Origins = dict[str, list[int]]
"""For each edge list (by its path: ``edges``, ``nodes.x.graph.spec.edges``), the index
each expanded edge had as written, so problems point at the chain the author wrote."""


def _to_spec(data: dict[str, Any], source: str) -> GraphSpec:
    """Expand edge chains, then build the spec; every error becomes a :class:`Problem`."""
    problems: list[Problem] = []
    origins: Origins = {}
    data = _expand(data, "", problems, origins)
    try:
        spec = GraphSpec.model_validate(data)
    except ValidationError as error:
        problems += _problems(error, data, origins)
    if problems:
        raise GraphSpecError(problems, source)
    return spec


def _expand(data: Any, where: str, problems: list[Problem], origins: Origins) -> Any:
    """The graph with its edge chains expanded, and those of its inline child graphs."""
    if not isinstance(data, Mapping):
        return data  # the model reports the wrong type
    data = dict(data)
    if isinstance(data.get("edges"), list):
        data["edges"] = _expand_chains(data["edges"], f"{where}edges", problems, origins)
    if isinstance(data.get("nodes"), Mapping):
        data["nodes"] = {
            name: _expand_node(node, f"{where}nodes.{name}.", problems, origins)
            for name, node in data["nodes"].items()
        }
    return data


def _expand_node(node: Any, where: str, problems: list[Problem], origins: Origins) -> Any:
    child = node.get("graph") if isinstance(node, Mapping) else None
    if not isinstance(child, Mapping) or "spec" not in child:
        return node
    spec = _expand(child["spec"], f"{where}graph.spec.", problems, origins)
    return {**node, "graph": {**child, "spec": spec}}


def _expand_chains(
    edges: list[Any], where: str, problems: list[Problem], origins: Origins
) -> list[Any]:
    """Chains (``[START, a, b]``) as single edges; notes each edge's index as written."""
    expanded: list[Any] = []
    written = origins.setdefault(where, [])
    for i, edge in enumerate(edges):
        if not isinstance(edge, list):
            expanded.append(edge)
            written.append(i)
        elif len(edge) < 2 or not all(isinstance(name, str) for name in edge):
            message = "a chain is a list of at least two node names, e.g. [START, plan, END]"
            problems.append(Problem(where=f"{where}[{i}]", message=message))
        else:
            expanded += [{"from": a, "to": b} for a, b in itertools.pairwise(edge)]
            written += [i] * (len(edge) - 1)
    return expanded


def _problems(error: ValidationError, data: Any, origins: Origins) -> list[Problem]:
    """Pydantic's errors as problems, one per place, in the spec's own terms."""
    found: dict[str, list[str]] = {}
    for detail in error.errors(include_url=False):
        where = _where(detail, data, origins)
        message = _message(detail)
        if message not in found.setdefault(where, []):
            found[where].append(message)
    return [Problem(where=where, message=_either(messages)) for where, messages in found.items()]


def _either(messages: list[str]) -> str:
    """One message for the members of a union pydantic tried, each of which failed."""
    lead = "Input should be "
    if len(messages) > 1 and all(m.startswith(lead) for m in messages):
        return lead + " or ".join(m.removeprefix(lead) for m in messages)
    return "; ".join(messages)


def _where(detail: ErrorDetails, data: Any, origins: Origins) -> str:
    """The error's path in the input, e.g. ``nodes.plan.agent.task`` or ``edges[1].to``.

    Pydantic adds steps that are not in the input (the member of a union it tried,
    such as ``str``); they are left out by walking the input alongside.
    """
    parts: list[str] = []
    node = data
    loc = detail["loc"]
    for n, step in enumerate(loc):
        present = (isinstance(node, Mapping) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        )
        last_missing = n == len(loc) - 1 and detail["type"] == "missing"
        if not (present or last_missing):
            continue
        if isinstance(step, int):
            written = origins.get("".join(parts), [])
            parts.append(f"[{written[step] if 0 <= step < len(written) else step}]")
        else:
            parts.append(f".{step}" if parts else str(step))
        node = node[step] if present else None
    return "".join(parts)


def _message(detail: ErrorDetails) -> str:
    if detail["type"] == "extra_forbidden":
        key = str(detail["loc"][-1]) if detail["loc"] else ""
        close = difflib.get_close_matches(key, _SPEC_KEYS, n=1)
        hint = f": did you mean '{close[0]}'?" if close else ""
        return f"unknown key{hint}"
    if detail["type"] == "missing":
        return "required"
    # Our own validators' messages: pydantic prefixes "Value error, ".
    return re.sub(r"^(Value|Assertion) error, ", "", detail["msg"])


_SPEC_KEYS: Final = sorted(
    {
        field.alias or name
        for model in (
            GraphSpec,
            StateField,
            Node,
            AgentNodeSpec,
            TaskNodeSpec,
            GateNodeSpec,
            MapNodeSpec,
            SubgraphNodeSpec,
            Edge,
        )
        for name, field in model.model_fields.items()
    }
)
"""Every key a spec may have somewhere, to suggest for a typo."""


def _parse_text(text: str, source: str) -> Any:
    """Parse JSON, or YAML when PyYAML is installed."""
    try:
        import yaml
    except ImportError:  # PyYAML is optional: JSON needs nothing
        if not text.lstrip().startswith("{"):
            message = "reading YAML needs PyYAML (pip install pyyaml); or give the graph as JSON"
            raise GraphSpecError([Problem(where="", message=message)], source) from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            where = f"line {error.lineno}, column {error.colno}"
            raise GraphSpecError([Problem(where=where, message=error.msg)], source) from None
    try:
        # A SafeLoader subclass: plain data only, never Python objects.
        return yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        message = getattr(error, "problem", None) or str(error)
        raise GraphSpecError([Problem(where=where, message=message)], source) from None


def _yaml_loader() -> type[Any]:
    """A SafeLoader with YAML 1.2 booleans, no dates, and duplicate keys refused."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            keys = [self.construct_object(k, deep=True) for k, _ in node.value]
            for i, key in enumerate(keys):
                if key in keys[:i]:
                    mark = node.value[i][0].start_mark
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", mark
                    )
            return super().construct_mapping(node, deep=deep)

    # YAML 1.1 reads `on`, `off`, `yes`, `no` as booleans (an edge's `on:` key
    # would become `True`) and `2024-01-01` as a date, which is not JSON.
    Loader.yaml_implicit_resolvers = {
        first: [
            (tag, regexp)
            for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    return Loader


# --- The Python builder --------------------------------------------------------------


class NodeOptions(TypedDict, total=False):
    """Settings every builder node takes (see ``Node`` and ``NodePolicy``)."""

    writes: str | dict[str, JsonValue]
    max_visits: int
    on_exhausted: str
    on_error: str
    max_attempts: int
    timeout: Duration
    task_queue: str


class PolicyOptions(NodeOptions, total=False):
    """Node settings plus the agent policy of nodes that are not agents themselves."""

    model: str
    max_tokens: int
    max_cycles: int


_JSON_TYPE_OF: dict[object, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    None: "null",
    type(None): "null",
    object: "any",
}

FieldDecl = type | tuple[type, str] | StateField | Mapping[str, Any] | None
"""A state field in :meth:`Graph.state`: a Python type (``str``, ``list``), a type and
a reducer (``(list, "append")``), a :class:`StateField`, or its mapping form."""


class Graph:
    """Build a :class:`GraphSpec` in Python, equal to the YAML form of the same graph.

    Each method adds to the graph and returns it, so calls chain; :meth:`build` checks
    the structure (raising :class:`GraphSpecError` with every problem) and returns the
    spec. Meaning is checked by ``validate``, as for a loaded graph.
    """

    def __init__(self, name: str, *, description: str = "") -> None:
        self._data: dict[str, Any] = {"graph": name, "state": {}, "nodes": {}, "edges": []}
        if description:
            self._data["description"] = description
        self._problems: list[Problem] = []

    def state(self, **fields: FieldDecl) -> Graph:
        """Declare state fields, e.g. ``state(topic=str, sections=(list, "append"))``."""
        for name, decl in fields.items():
            self._data["state"][name] = self._field(name, decl)
        return self

    def agent(
        self,
        name: str,
        *,
        task: str,
        output: dict[str, JsonValue] | None = None,
        model: str | None = None,
        tools: list[str] | None = None,
        system_prompt: str | None = None,
        max_cycles: int | None = None,
        max_tokens: int | None = None,
        max_cost_usd: float | None = None,
        max_duration: Duration | None = None,
        **options: Unpack[NodeOptions],
    ) -> Graph:
        """Add an agent node (see ``AgentNodeSpec``)."""
        body = _set(locals(), AgentNodeSpec.model_fields)
        return self._node(name, {"agent": body, **options})

    def task(
        self,
        name: str,
        *,
        ref: str,
        args: dict[str, JsonValue] | None = None,
        **options: Unpack[PolicyOptions],
    ) -> Graph:
        """Add a task node: a registered ``module:function`` run as an activity."""
        return self._node(name, {"task": _set(locals(), TaskNodeSpec.model_fields), **options})

    def gate(
        self,
        name: str,
        *,
        prompt: str,
        show: str | None = None,
        answer: dict[str, JsonValue] | None = None,
        deadline: Duration | None = None,
        on_timeout: JsonValue = None,
        **options: Unpack[PolicyOptions],
    ) -> Graph:
        """Add a gate node: wait for a person's answer."""
        body = _set(locals(), {"prompt", "show", "answer", "deadline", "on_timeout"})
        return self._node(name, {"gate": body, **options})

    def map(
        self,
        name: str,
        *,
        over: str,
        node: AgentNodeSpec | TaskNodeSpec | Node,
        concurrency: int | None = None,
        on_error_mode: str | None = None,
        **options: Unpack[PolicyOptions],
    ) -> Graph:
        """Add a map node: ``node`` run once per item of ``over``, ``item`` in scope.

        ``on_error_mode`` is the map's own ``on_error`` (``fail_fast`` or ``collect``);
        ``on_error`` is, as for every node, where to go when the node fails.
        """
        body: dict[str, Any] = {"over": over, "node": _inner_node(node)}
        if concurrency is not None:
            body["concurrency"] = concurrency
        if on_error_mode is not None:
            body["on_error"] = on_error_mode
        return self._node(name, {"map": body, **options})

    def subgraph(
        self,
        name: str,
        *,
        spec: GraphSpec | None = None,
        file: str | None = None,
        input: dict[str, JsonValue] | None = None,
        output: dict[str, str] | None = None,
        **options: Unpack[PolicyOptions],
    ) -> Graph:
        """Add a graph node: another graph run as a child (inline ``spec`` or ``file``)."""
        body = _set(locals(), {"spec", "file", "input", "output"})
        return self._node(name, {"graph": body, **options})

    def edge(self, *chain: str) -> Graph:
        """Add unconditional edges along a chain: ``edge(START, "plan", "write")``."""
        if len(chain) < 2:
            where = f"edges[{len(self._data['edges'])}]"
            self._problems.append(Problem(where=where, message="an edge names two nodes or more"))
        self._data["edges"] += [{"from": a, "to": b} for a, b in itertools.pairwise(chain)]
        return self

    def route(
        self, source: str, *, on: str, to: Mapping[Any, str], default: str | None = None
    ) -> Graph:
        """Add a routed edge: ``on``'s value picks the target from ``to`` (else ``default``)."""
        edge: dict[str, Any] = {"from": source, "on": on, "to": dict(to)}
        if default is not None:
            edge["default"] = default
        self._data["edges"].append(edge)
        return self

    def output(self, field: str) -> Graph:
        """Name the state field that is the graph's result."""
        self._data["output"] = field
        return self

    def defaults(self, policy: NodePolicy | None = None, **settings: Any) -> Graph:
        """Set the policy of nodes that do not set their own (``NodePolicy`` fields)."""
        base = policy.model_dump(exclude_defaults=True) if policy else {}
        self._data["defaults"] = base | settings
        return self

    def build(self) -> GraphSpec:
        """The spec.

        Raises:
            GraphSpecError: Every structural problem (a node added twice, a wrong type).
        """
        try:
            spec = _to_spec(dict(self._data), self._data["graph"])
        except GraphSpecError as error:
            raise GraphSpecError(self._problems + error.problems, error.source) from None
        if self._problems:
            raise GraphSpecError(self._problems, spec.name)
        return spec

    def _node(self, name: str, data: dict[str, Any]) -> Graph:
        if name in self._data["nodes"]:
            self._problems.append(Problem(where=f"nodes.{name}", message="added twice"))
        self._data["nodes"][name] = data
        return self

    def _field(self, name: str, decl: FieldDecl) -> Any:
        if isinstance(decl, StateField | Mapping):
            return decl
        kind, reducer = decl if isinstance(decl, tuple) else (decl, None)
        if kind not in _JSON_TYPE_OF:
            known = "str, int, float, bool, list, dict, None, object"
            message = f"{kind!r} is not a type a state field can have ({known})"
            self._problems.append(Problem(where=f"state.{name}", message=message))
            return {}
        field: dict[str, Any] = {"type": _JSON_TYPE_OF[kind]}
        if reducer is not None:
            field["reducer"] = reducer
        return field


def _set(values: Mapping[str, Any], names: Any) -> dict[str, Any]:
    """The ``names`` among ``values`` that are set (not ``None``)."""
    return {name: values[name] for name in names if values.get(name) is not None}


def _inner_node(node: AgentNodeSpec | TaskNodeSpec | Node) -> Node | dict[str, Any]:
    if isinstance(node, AgentNodeSpec):
        return {"agent": node}
    if isinstance(node, TaskNodeSpec):
        return {"task": node}
    return node
