"""Check a ``GraphSpec`` before it runs, reporting every problem at once.

:func:`validate` returns a list of :class:`Problem` (empty when the graph is sound),
each naming where it is (``nodes.review.gate.show``, ``edges[2].to.revise``) and
saying how to fix it. It never stops at the first problem: a person fixing a graph
should see everything in one go. The rules:

- **References.** Edges, ``on_exhausted`` and ``on_error`` name nodes that exist (or
  END); no edge leaves END or enters START; START and END are not node names; ``writes``
  name state fields; ``output`` names a state field.
- **Shape.** Every node is reachable from START and has a path to END; every cycle has
  a node with ``max_visits``; the branches of a fan-out (a node with several
  unconditional successors) do not both write a field whose reducer is ``last``;
  a routed edge's keys match the values its ``on`` can take, when those are known.
- **Expressions.** Every template parses and names only fields the state has (and
  ``result``, ``item``, ``visits`` where they are defined); ``over`` gives a list.
- **Bodies.** A map runs an agent or a task; a task's ``ref`` reads ``module:function``
  and is registered (when ``known_tasks`` is given); durations parse; JSON Schemas use
  JSON types; a gate's ``on_timeout`` satisfies its ``answer`` schema; reducers suit
  their field's type (``append`` an array, ``merge`` an object).

Pure functions only: the graph workflow may call it again on its input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from duragent.workflows.graph_expr import ANY, JSON_TYPES, Shape, check, json_type, parse_template
from duragent.workflows.graph_spec import (
    END,
    START,
    AgentNodeSpec,
    Duration,
    Edge,
    FieldType,
    GateNodeSpec,
    GraphSpec,
    MapNodeSpec,
    Node,
    NodeKind,
    Reducer,
    SubgraphNodeSpec,
    TaskNodeSpec,
    parse_duration,
    route_key,
)

RESERVED_NAMES: Final = frozenset({"item", "result", "visits"})
"""Names expressions use for other things than state fields."""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TASK_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_HINTS: Final = {
    "result": "'result' is only defined in a node's writes",
    "item": "'item' is only defined inside a map's node",
}
_MAX_SCHEMA_DEPTH: Final = 32
_OUTER_ONLY: Final = ("writes", "max_visits", "on_exhausted", "on_error")
"""Node settings that mean nothing on the node inside a map."""


class Problem(BaseModel):
    """One thing wrong with a graph.

    Attributes:
        where: Path to it in the spec, e.g. ``nodes.review.gate.show`` or ``edges[2]``.
        message: What is wrong and how to fix it.
    """

    model_config = ConfigDict(frozen=True)

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class GraphSpecError(ValueError):
    """A graph that cannot be loaded or run; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[Problem], source: str = "graph") -> None:
        self.problems = list(problems)
        self.source = source
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        lines = "".join(f"\n  {problem}" for problem in self.problems)
        super().__init__(f"{source}: {count}{lines}")


def validate(spec: GraphSpec, *, known_tasks: set[str] | None = None) -> list[Problem]:
    """Every problem of a graph, in a stable order; ``[]`` when it is sound.

    Args:
        spec: The graph.
        known_tasks: The ``module:function`` refs the workers registered; when given,
            task nodes naming any other are reported.
    """
    ctx = _Context.of(spec, known_tasks)
    for rule in _RULES:
        rule(ctx)
    return ctx.problems


def raise_for_problems(spec: GraphSpec, *, known_tasks: set[str] | None = None) -> GraphSpec:
    """The spec itself when it is sound.

    Raises:
        GraphSpecError: With every problem :func:`validate` found.
    """
    problems = validate(spec, known_tasks=known_tasks)
    if problems:
        raise GraphSpecError(problems, spec.name)
    return spec


@dataclass
class _Context:
    """The spec with what every rule needs worked out once, and the problems found."""

    spec: GraphSpec
    known_tasks: set[str] | None
    successors: dict[str, list[str]]
    """For START and each node, the nodes (and END) it may lead to, in spec order."""
    scope: dict[str, Shape]
    """Shapes of the names every template sees: state fields and ``visits``."""
    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def of(cls, spec: GraphSpec, known_tasks: set[str] | None) -> _Context:
        known = set(spec.nodes) | {END}
        successors: dict[str, list[str]] = {name: [] for name in [START, *spec.nodes]}
        for edge in spec.edges:
            if edge.from_ in successors:
                successors[edge.from_] += [t for t in edge.targets() if t in known]
        for name, node in spec.nodes.items():
            successors[name] += [t for t in (node.on_error, node.on_exhausted) if t in known]
        scope = {name: Shape.from_schema(f.json_schema()) for name, f in spec.state.items()}
        visits = {name: Shape.of("integer") for name in spec.nodes}
        scope["visits"] = Shape.of("object", properties=visits)
        return cls(spec, known_tasks, successors, scope)

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(where=where, message=message))

    def template(self, where: str, text: str, extra: Mapping[str, Shape] | None = None) -> Shape:
        """Check a template in this graph's scope (plus ``extra``); its value's shape."""
        checked = check(text, self.scope | dict(extra or {}), hints=_HINTS)
        for error in checked.errors:
            self.add(where, str(error))
        return checked.shape

    def templates_in(self, where: str, value: Any, extra: Mapping[str, Shape] | None) -> None:
        """Check every string inside a JSON value as a template."""
        if isinstance(value, str):
            self.template(where, value, extra)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.templates_in(f"{where}[{i}]", item, extra)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.templates_in(f"{where}.{key}", item, extra)

    def duration(self, where: str, value: Duration | None) -> None:
        if value is not None:
            try:
                parse_duration(value)
            except ValueError as error:
                self.add(where, str(error))

    def node_ref(self, where: str, target: str | None, what: str) -> None:
        """Report a target that is neither a node nor END."""
        if target is None or target in self.spec.nodes or target == END:
            return
        if target == START:
            self.add(where, f"{what} cannot lead to START: a run passes it only once")
        else:
            names = ", ".join([*self.spec.nodes, END])
            self.add(where, f"{what} leads to unknown node '{target}' (nodes: {names})")


# --- Names and state -----------------------------------------------------------------


def _names(ctx: _Context) -> None:
    if not ctx.spec.nodes:
        ctx.add("nodes", "a graph needs at least one node")
    for name in ctx.spec.nodes:
        if name in (START, END):
            ctx.add(f"nodes.{name}", f"'{name}' is reserved: name the node otherwise")
    for name in ctx.spec.state:
        if name in RESERVED_NAMES:
            ctx.add(f"state.{name}", f"'{name}' is reserved for expressions: rename the field")
        elif not _NAME.fullmatch(name):
            ctx.add(
                f"state.{name}",
                f"'{name}' is not a name expressions can use: letters, digits and _ only",
            )


def _state_fields(ctx: _Context) -> None:
    for name, spec_field in ctx.spec.state.items():
        where = f"state.{name}"
        kind = spec_field.type
        if spec_field.reducer is Reducer.APPEND and kind not in (FieldType.ARRAY, FieldType.ANY):
            ctx.add(f"{where}.reducer", f"reducer append needs type array, not {kind.value}")
        if spec_field.reducer is Reducer.MERGE and kind not in (FieldType.OBJECT, FieldType.ANY):
            ctx.add(f"{where}.reducer", f"reducer merge needs type object, not {kind.value}")
        if spec_field.items is not None:
            _schema(ctx, f"{where}.items", spec_field.items)
        for key, prop in (spec_field.properties or {}).items():
            _schema(ctx, f"{where}.properties.{key}", prop)
        if spec_field.default is not None:
            complaint = _conforms(spec_field.default, spec_field.json_schema())
            if complaint:
                ctx.add(f"{where}.default", complaint)


def _graph_settings(ctx: _Context) -> None:
    """The graph's own settings: ``output`` and ``defaults``."""
    output = ctx.spec.output
    if output is not None and output not in ctx.spec.state:
        ctx.add("output", f"unknown field '{output}' (fields: {', '.join(ctx.spec.state)})")
    ctx.duration("defaults.timeout", ctx.spec.defaults.timeout)


# --- Edges ---------------------------------------------------------------------------


def _edges(ctx: _Context) -> None:
    seen: dict[tuple[str, str], int] = {}
    for i, edge in enumerate(ctx.spec.edges):
        where = f"edges[{i}]"
        if edge.from_ == END:
            ctx.add(f"{where}.from", "no edge may leave END: the run is over there")
        elif edge.from_ != START and edge.from_ not in ctx.spec.nodes:
            names = ", ".join([START, *ctx.spec.nodes])
            ctx.add(f"{where}.from", f"unknown node '{edge.from_}' (nodes: {names})")
        if isinstance(edge.to, str):
            ctx.node_ref(f"{where}.to", edge.to, f"the edge from '{edge.from_}'")
            first = seen.setdefault((edge.from_, edge.to), i)
            if first != i:
                ctx.add(where, f"duplicate of edges[{first}] ({edge.from_} -> {edge.to})")
        else:
            for key, target in edge.to.items():
                ctx.node_ref(f"{where}.to.{key}", target, f"route '{key}'")
            ctx.node_ref(f"{where}.default", edge.default, "the default route")
            _route(ctx, where, edge)


def _route(ctx: _Context, where: str, edge: Edge) -> None:
    """Check ``on`` and, when the values it can take are known, the route keys."""
    assert edge.on is not None and isinstance(edge.to, dict)  # a routed edge
    try:
        if not parse_template(edge.on).expressions:
            ctx.add(f"{where}.on", "'on' is constant text: write the value as ${...}")
    except ValueError:
        pass  # reported by the check below, with its position
    shape = ctx.template(f"{where}.on", edge.on)
    values = shape.enum
    if values is None and shape.types == frozenset({"boolean"}):
        values = (True, False)
    if values is None:
        return
    possible = [route_key(v) for v in values]
    for key in edge.to:
        if key not in possible:
            ctx.add(f"{where}.to.{key}", f"never taken: 'on' is one of {', '.join(possible)}")
    missing = [v for v in possible if v not in edge.to]
    if missing and edge.default is None:
        ctx.add(f"{where}.to", f"no target for {', '.join(missing)}: add them or a default")


# --- Graph shape ---------------------------------------------------------------------


def _reach(successors: Mapping[str, list[str]], starts: Iterable[str]) -> set[str]:
    """Every name reachable from ``starts`` (``starts`` included)."""
    seen = set(starts)
    stack = list(seen)
    while stack:
        for target in successors.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _reachability(ctx: _Context) -> None:
    if not ctx.spec.edges_from(START):
        ctx.add("edges", "no edge leaves START: add one to the first node")
    reachable = _reach(ctx.successors, [START])
    predecessors: dict[str, list[str]] = {}
    for source, targets in ctx.successors.items():
        for target in targets:
            predecessors.setdefault(target, []).append(source)
    finishing = _reach(predecessors, [END])
    for name in ctx.spec.nodes:
        if name not in reachable:
            ctx.add(f"nodes.{name}", f"unreachable from START: add an edge to '{name}'")
        elif name not in finishing:
            ctx.add(
                f"nodes.{name}",
                f"no path from '{name}' to END: add an edge, on_error or on_exhausted to it",
            )


def _cycles(ctx: _Context) -> None:
    """Every cycle needs a bound: the nodes without ``max_visits`` must form no cycle."""
    free = {name for name, node in ctx.spec.nodes.items() if node.max_visits is None}
    inside = {name: [t for t in ctx.successors[name] if t in free] for name in free}
    reach = {name: _reach(inside, inside[name]) for name in free}
    reported: set[str] = set()
    for name in ctx.spec.nodes:  # spec order, so the report is stable
        if name not in free or name in reported or name not in reach[name]:
            continue
        loop = [n for n in ctx.spec.nodes if n in reach[name] and name in reach[n]]
        reported.update(loop)
        ctx.add(
            f"nodes.{name}.max_visits",
            f"nodes {', '.join(loop)} form a cycle in which no node has max_visits: "
            "set max_visits (and on_exhausted) on one of them",
        )


def _fan_outs(ctx: _Context) -> None:
    """Parallel branches must not both write a ``last`` field: one write would be lost."""
    for source in [START, *ctx.spec.nodes]:
        branches = list(
            dict.fromkeys(
                edge.to
                for edge in ctx.spec.edges_from(source)
                if isinstance(edge.to, str) and edge.to in ctx.spec.nodes
            )
        )
        if len(branches) < 2:
            continue
        reach = [_reach(ctx.successors, [branch]) for branch in branches]
        writers: dict[str, tuple[str, str]] = {}  # field -> (branch, node)
        for i, branch in enumerate(branches):
            others = set().union(*(r for j, r in enumerate(reach) if j != i))
            for name in ctx.spec.nodes:  # spec order, so the report is stable
                if name in reach[i] and name not in others:
                    _claim_writes(ctx, source, branch, name, writers)


def _claim_writes(
    ctx: _Context, source: str, branch: str, name: str, writers: dict[str, tuple[str, str]]
) -> None:
    for written in ctx.spec.nodes[name].writes:
        spec_field = ctx.spec.state.get(written)
        if spec_field is None or spec_field.reducer is not Reducer.LAST:
            continue
        other_branch, other = writers.setdefault(written, (branch, name))
        if other_branch != branch:
            ctx.add(
                f"nodes.{name}.writes.{written}",
                f"'{other}' also writes '{written}' (reducer last) in a parallel branch "
                f"after '{source}': one write would be lost; give '{written}' reducer "
                "append or merge, or write different fields",
            )


# --- Nodes ---------------------------------------------------------------------------


def _nodes(ctx: _Context) -> None:
    for name, node in ctx.spec.nodes.items():
        where = f"nodes.{name}"
        ctx.node_ref(f"{where}.on_exhausted", node.on_exhausted, "on_exhausted")
        ctx.node_ref(f"{where}.on_error", node.on_error, "on_error")
        ctx.duration(f"{where}.timeout", node.timeout)
        item = _body(ctx, where, node, {})
        _writes(ctx, where, node, _result_shape(node, item))


def _body(ctx: _Context, where: str, node: Node, extra: Mapping[str, Shape]) -> Shape:
    """Check a node's body; for a map, the shape of its items (else ANY)."""
    body = node.body
    where = f"{where}.{node.kind.value}"
    if isinstance(body, AgentNodeSpec):
        _agent(ctx, where, body, extra)
    elif isinstance(body, TaskNodeSpec):
        _task(ctx, where, body, extra)
    elif isinstance(body, GateNodeSpec):
        _gate(ctx, where, body, extra)
    elif isinstance(body, MapNodeSpec):
        return _map(ctx, where, body)
    else:
        _subgraph(ctx, where, body)
    return ANY


def _agent(ctx: _Context, where: str, agent: AgentNodeSpec, extra: Mapping[str, Shape]) -> None:
    ctx.template(f"{where}.task", agent.task, extra)
    if agent.system_prompt is not None:
        ctx.template(f"{where}.system_prompt", agent.system_prompt, extra)
    if agent.output is not None:
        _schema(ctx, f"{where}.output", agent.output)
    ctx.duration(f"{where}.max_duration", agent.max_duration)


def _task(ctx: _Context, where: str, task: TaskNodeSpec, extra: Mapping[str, Shape]) -> None:
    if not _TASK_REF.fullmatch(task.ref):
        ctx.add(f"{where}.ref", f"'{task.ref}' is not a 'module:function' reference")
    elif ctx.known_tasks is not None and task.ref not in ctx.known_tasks:
        known = ", ".join(sorted(ctx.known_tasks)[:10]) or "none"
        ctx.add(f"{where}.ref", f"no worker registered task '{task.ref}' (registered: {known})")
    ctx.templates_in(f"{where}.args", task.args, extra)


def _gate(ctx: _Context, where: str, gate: GateNodeSpec, extra: Mapping[str, Shape]) -> None:
    ctx.template(f"{where}.prompt", gate.prompt, extra)
    if gate.show is not None:
        ctx.template(f"{where}.show", gate.show, extra)
    ctx.duration(f"{where}.deadline", gate.deadline)
    if gate.answer is not None:
        before = len(ctx.problems)
        _schema(ctx, f"{where}.answer", gate.answer)
        if gate.on_timeout is not None and len(ctx.problems) == before:
            complaint = _conforms(gate.on_timeout, gate.answer)
            if complaint:
                ctx.add(f"{where}.on_timeout", f"not a valid answer: {complaint}")


def _map(ctx: _Context, where: str, spec: MapNodeSpec) -> Shape:
    over = ctx.template(f"{where}.over", spec.over)
    try:
        single = parse_template(spec.over).single is not None
    except ValueError:
        single = True  # reported by the check above
    if not single:
        ctx.add(f"{where}.over", "'over' must be one ${...} giving a list, without text around")
    elif not over.may_be(["array"]):
        ctx.add(f"{where}.over", f"'over' must give a list, not {over.describe()}")
    inner, inner_where = spec.node, f"{where}.node"
    if inner.kind not in (NodeKind.AGENT, NodeKind.TASK):
        ctx.add(inner_where, f"a map runs an agent or a task, not a {inner.kind.value}")
        return ANY
    # By value, not by model_fields_set: a spec that went through a data converter
    # has every field set.
    ignored = inner.model_dump(include=set(_OUTER_ONLY), exclude_defaults=True)
    for key in sorted(ignored, key=_OUTER_ONLY.index):
        ctx.add(f"{inner_where}.{key}", f"ignored inside a map: set {key} on the map node")
    ctx.duration(f"{inner_where}.timeout", inner.timeout)
    item = over.items or ANY
    _body(ctx, inner_where, inner, {"item": item})
    return item


def _subgraph(ctx: _Context, where: str, sub: SubgraphNodeSpec) -> None:
    ctx.templates_in(f"{where}.input", sub.input, None)
    child = sub.spec
    if child is None:
        return  # a file: inlined, and then checked, before the run starts
    for problem in validate(child, known_tasks=ctx.known_tasks):
        ctx.add(f"{where}.spec.{problem.where}", problem.message)
    for key in sub.input:
        if key not in child.state:
            fields = ", ".join(child.state)
            ctx.add(f"{where}.input.{key}", f"the child graph has no field '{key}' ({fields})")
    child_scope = _Context.of(child, None)
    for key, text in sub.output.items():
        child_scope.template(f"{where}.output.{key}", text)
    ctx.problems += child_scope.problems


def _result_shape(node: Node, item: Shape) -> Shape:
    """What is known of a node's result, for checking its ``writes``."""
    body = node.body
    if isinstance(body, AgentNodeSpec):
        return Shape.from_schema(body.output) if body.output else Shape.of("string")
    if isinstance(body, GateNodeSpec):
        return Shape.from_schema(body.answer)
    if isinstance(body, MapNodeSpec):
        return Shape.of("array", items=_result_shape(body.node, ANY))
    if isinstance(body, SubgraphNodeSpec) and body.output:
        return Shape.of("object", properties=dict.fromkeys(body.output, ANY))
    return ANY


def _writes(ctx: _Context, where: str, node: Node, result: Shape) -> None:
    for name, value in node.writes.items():
        spec_field = ctx.spec.state.get(name)
        if spec_field is None:
            fields = ", ".join(ctx.spec.state) or "none"
            ctx.add(f"{where}.writes.{name}", f"unknown field '{name}' (fields: {fields})")
            continue
        if not isinstance(value, str):
            ctx.templates_in(f"{where}.writes.{name}", value, {"result": result})
            continue
        shape = ctx.template(f"{where}.writes.{name}", value, {"result": result})
        wanted = {Reducer.LAST: spec_field.type.value, Reducer.MERGE: "object"}.get(
            spec_field.reducer
        )
        if wanted not in (None, "any") and not shape.may_be([wanted, "null"]):
            ctx.add(
                f"{where}.writes.{name}",
                f"writes {shape.describe()} to '{name}', a field of type {wanted}",
            )


# --- JSON Schema, cheaply ------------------------------------------------------------


def _schema(ctx: _Context, where: str, schema: Any, depth: int = 0) -> None:
    """Report what is plainly wrong in a JSON Schema: types, sub-schemas, ``required``."""
    if not isinstance(schema, dict):
        ctx.add(where, f"a JSON Schema is an object, not {json_type(schema)}")
        return
    if depth > _MAX_SCHEMA_DEPTH:
        ctx.add(where, f"schema nested too deeply (at most {_MAX_SCHEMA_DEPTH} levels)")
        return
    declared = schema.get("type")
    for name in declared if isinstance(declared, list) else [declared]:
        if name is not None and name not in JSON_TYPES:
            known = ", ".join(sorted(JSON_TYPES))
            ctx.add(f"{where}.type", f"{name!r} is not a JSON type (types: {known})")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        ctx.add(f"{where}.properties", "properties is an object of schemas")
        properties = {}
    for key, sub in properties.items():
        _schema(ctx, f"{where}.properties.{key}", sub, depth + 1)
    items = schema.get("items")
    if items is not None and not isinstance(items, bool):
        _schema(ctx, f"{where}.items", items, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            _schema(ctx, f"{where}.{key}[{i}]", sub, depth + 1)
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        ctx.add(f"{where}.required", "required is a list of field names")
    elif properties:
        for missing in [r for r in required if r not in properties]:
            ctx.add(f"{where}.required", f"'{missing}' is required but not in properties")
    if "enum" in schema and not (isinstance(schema["enum"], list) and schema["enum"]):
        ctx.add(f"{where}.enum", "enum is a non-empty list of values")


def _conforms(value: Any, schema: Any, depth: int = 0) -> str | None:
    """Why ``value`` fails ``schema``, or ``None`` when it passes.

    Only the plain keywords are checked (type, enum, required, properties, items).
    """
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return None
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared] if declared else None
    if types is not None and not Shape.of(json_type(value)).may_be(types):
        return f"{json_type(value)} is not of type {' or '.join(map(str, types))}"
    if isinstance(schema.get("enum"), list) and value not in schema["enum"]:
        return f"{value!r} is not one of {schema['enum']}"
    if isinstance(value, dict):
        for key in schema.get("required") or []:
            if key not in value:
                return f"'{key}' is required"
        for key, sub in (schema.get("properties") or {}).items():
            complaint = _conforms(value[key], sub, depth + 1) if key in value else None
            if complaint:
                return f"{key}: {complaint}"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            complaint = _conforms(item, schema["items"], depth + 1)
            if complaint:
                return f"[{i}]: {complaint}"
    return None


_RULES: Final = (
    _names,
    _state_fields,
    _graph_settings,
    _edges,
    _reachability,
    _cycles,
    _fan_outs,
    _nodes,
)
"""Every rule, in the order its problems are listed."""
