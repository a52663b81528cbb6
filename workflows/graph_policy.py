"""The graph workflow's decisions, as pure functions: no Temporal in here.

What a node's child agent is given, where a node's edges lead, what a gate shows and
whether an answer fits it. :mod:`workflows.graph` sequences them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import JsonValue

from duragent.workflows import json_schema
from duragent.workflows.graph_expr import (
    ExpressionError,
    evaluate,
    parse_template,
    render,
    render_value,
    to_text,
)
from duragent.workflows.graph_spec import (
    END,
    AgentNodeSpec,
    GraphSpec,
    NodePolicy,
    parse_duration,
    route_key,
)
from duragent.workflows.models import AgentInput

# Items one map may run in one workflow run: each costs about three history events
# (bench.graph_cost), so 5,000 stay near 16,000, well inside Temporal's 51,200.
MAX_MAP_ITEMS = 5_000
# A gate's answer schema travels in the run's input with the spec; keep it small.
MAX_GATE_SCHEMA_BYTES = 16_384


class NodeFailed(Exception):
    """A node could not produce a result; the graph takes its ``on_error`` edge or fails."""


def render_text(template: str, names: Mapping[str, Any], where: str) -> str:
    """A template rendered to text, its failure a :class:`NodeFailed` naming the place."""
    try:
        value = render(parse_template(template), names)
    except ExpressionError as err:
        raise NodeFailed(f"{where}: {err}") from None
    return value if isinstance(value, str) else to_text(value)


def render_json(value: JsonValue, names: Mapping[str, Any], where: str) -> JsonValue:
    """Templates inside a JSON value rendered (see ``render_value``)."""
    try:
        rendered: JsonValue = render_value(value, names)
    except ExpressionError as err:
        raise NodeFailed(f"{where}: {err}") from None
    return rendered


def map_items(over: str, names: Mapping[str, Any], node: str) -> list[Any]:
    """The list a map node runs over.

    Raises:
        NodeFailed: Not a list, or longer than one run's history can take.
    """
    items = render_json(over, names, f"nodes.{node}.map.over")
    if not isinstance(items, list):
        raise NodeFailed(f"nodes.{node}.map.over gave {type(items).__name__}, not a list")
    if len(items) > MAX_MAP_ITEMS:
        raise NodeFailed(
            f"nodes.{node}: a map of {len(items):,} items is more than one run's history "
            f"takes ({MAX_MAP_ITEMS:,}); split the list and map each part in a sub-graph"
        )
    return items


def agent_input(
    name: str,
    policy: NodePolicy,
    agent: AgentNodeSpec,
    names: Mapping[str, Any],
    *,
    model: str | None,
    owner: str | None,
    workspace: str,
) -> AgentInput:
    """The child agent a node (or a map's item) runs: its task rendered from the state.

    ``policy`` is the node's (a map's item: the map's and its inner node's) over the
    graph's defaults; the agent body's own settings are already in it.
    """
    chosen = policy.model or model
    if chosen is None:
        raise NodeFailed(
            f"nodes.{name}: no model for the agent (set the node's or the graph defaults' "
            "model, or start the graph with one)"
        )
    where = f"nodes.{name}.agent"
    fields: dict[str, Any] = {
        "task": render_text(agent.task, names, f"{where}.task"),
        "model": chosen,
        "tools": agent.tools,
        "owner": owner,
        "workspace": workspace,
        "output_schema": agent.output,
    }
    if agent.system_prompt is not None:
        fields["system_prompt"] = render_text(agent.system_prompt, names, f"{where}.system_prompt")
    if policy.max_cycles is not None:
        fields["max_cycles"] = policy.max_cycles
    if policy.max_tokens is not None:
        fields["max_tokens"] = policy.max_tokens
    if agent.max_cost_usd is not None:
        fields["max_cost_usd"] = agent.max_cost_usd
    if agent.max_duration is not None:
        fields["max_duration"] = timedelta(seconds=parse_duration(agent.max_duration))
    return AgentInput(**fields)


def next_nodes(spec: GraphSpec, name: str, names: Mapping[str, Any]) -> list[str]:
    """Where a node's edges lead after it ran (``END`` included), in the spec's order."""
    targets: list[str] = []
    for index, edge in enumerate(spec.edges_from(name)):
        if not edge.routed:
            targets.extend(edge.targets())
            continue
        assert edge.on is not None  # a routed edge has its expression
        try:
            value = evaluate_text(edge.on, names)
        except ExpressionError as err:
            raise NodeFailed(f"the route from {name} (edge {index}): {err}") from None
        target = edge.target_for(value)
        if target is None:
            known = ", ".join(str(k) for k in (edge.to if isinstance(edge.to, dict) else {}))
            raise NodeFailed(
                f"the route from {name} has no target for {route_key(value)!r} "
                f"(routes: {known}; no default)"
            )
        targets.append(target)
    return list(dict.fromkeys(targets))


def evaluate_text(template: str, names: Mapping[str, Any]) -> Any:
    """A template's value: the value itself for one ``${...}``, else its text."""
    parsed = parse_template(template)
    if parsed.single is not None:
        return evaluate(parsed.single, names, template)
    return render(parsed, names)


def answer_problem(schema: Mapping[str, Any] | None, answer: JsonValue) -> str | None:
    """Why an answer does not fit a gate's JSON Schema, or ``None`` when it does.

    The same checks as an agent's typed output (:mod:`workflows.json_schema`): no remote
    ``$ref`` is fetched, and a value nested deeper than the bound is refused unread.
    """
    if schema is None:
        return None
    shown, count = json_schema.errors(answer, schema)
    if not count:
        return None
    return f"the answer does not fit the gate's schema ({count} error(s)): " + "; ".join(shown)


def schema_problems(spec: GraphSpec) -> list[str]:
    """Gate schemas that cannot be applied (a remote ``$ref``, a bad pattern, too big)."""
    problems = []
    for name, node in spec.nodes.items():
        if node.gate is not None and node.gate.answer is not None:
            problem = json_schema.schema_problem(node.gate.answer, MAX_GATE_SCHEMA_BYTES)
            if problem is not None:
                problems.append(f"nodes.{name}.gate.answer: {problem}")
    return problems


def is_end(name: str) -> bool:
    """Whether a target ends its branch."""
    return name == END
