"""How ``duragent graph`` shows graphs to a person: Mermaid, a run's status, its gates.

Pure functions of the spec and the workflow's query answers, like :mod:`worker.render`
for agents.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from duragent.workflows.graph_models import GateView, GraphView, NodeStatus, NodeView
from duragent.workflows.graph_spec import END, START, GraphSpec, Node, NodeKind

PREVIEW: Final = 160
"""Characters of a prompt, a shown value or a schema on one line."""

_SHAPES: Final = {
    NodeKind.AGENT: ("[", "]"),
    NodeKind.TASK: ("[[", "]]"),
    NodeKind.GATE: ("{{", "}}"),
    NodeKind.MAP: ("[/", "/]"),
    NodeKind.GRAPH: ("[[", "]]"),
}
_MERMAID_WORDS: Final = frozenset(
    {"end", "graph", "flowchart", "subgraph", "style", "classdef", "class", "click"}
    | {"linkstyle", "direction", "call", "href", "default", "interpolate", "start"}
)
_STATUS_STYLE: Final = {
    NodeStatus.DONE: "fill:#d9f2d9,stroke:#2e7d32",
    NodeStatus.RUNNING: "fill:#dbe9ff,stroke:#1f5fbf",
    NodeStatus.WAITING: "fill:#fff3c4,stroke:#b38600",
    NodeStatus.FAILED: "fill:#ffd9d9,stroke:#b30000",
    NodeStatus.SKIPPED: "fill:#eeeeee,stroke:#888888,color:#666666",
}


def mermaid(spec: GraphSpec, nodes: Mapping[str, NodeView] | None = None) -> str:
    """The graph as a Mermaid flowchart: nodes with their kind, edges with their routes.

    With ``nodes`` (a run's ``status``), each node also shows its status and visits,
    and is coloured by its status.
    """
    ids = _mermaid_ids(spec.nodes)
    lines = ["flowchart TD", f"    {ids[START]}([START])"]
    for name in _unknown_names(spec):  # a graph that does not validate still draws
        ids[name] = _fresh_id(f"unknown{len(ids)}", set(ids.values()))
        lines.append(f'    {ids[name]}["{_escape(name)} (unknown)"]')
    for name, node in spec.nodes.items():
        label = f"{name} ({node_kind(node)})"
        view = (nodes or {}).get(name)
        if view is not None:
            visits = f"{view.visits} visit{'s' * (view.visits != 1)}"
            label += f"<br/>{view.status.value}, {visits}"
        opening, closing = _SHAPES[node.kind]
        lines.append(f'    {ids[name]}{opening}"{_escape(label)}"{closing}')
    lines.append(f"    {ids[END]}([END])")
    lines += _mermaid_edges(spec, ids)
    if nodes:
        lines += [f"    classDef {status.value} {style}" for status, style in _STATUS_STYLE.items()]
        for name, view in nodes.items():
            if name in ids and view.status in _STATUS_STYLE:
                lines.append(f"    class {ids[name]} {view.status.value}")
    return "\n".join(lines)


@dataclass(frozen=True)
class GraphEdge:
    """One arrow of a drawn graph."""

    source: str
    target: str
    label: str | None = None
    """A route's key, ``(default)``, ``on error`` or ``visits spent``."""
    dashed: bool = False
    """An ``on_error`` or ``on_exhausted`` edge (taken when a node fails or is spent)."""


def graph_edges(spec: GraphSpec) -> list[GraphEdge]:
    """Every arrow of the graph: its edges and routes, then the error and exhaustion edges."""
    edges = []
    for edge in spec.edges:
        if isinstance(edge.to, str):
            edges.append(GraphEdge(edge.from_, edge.to))
            continue
        edges += [GraphEdge(edge.from_, target, key) for key, target in edge.to.items()]
        if edge.default is not None:
            edges.append(GraphEdge(edge.from_, edge.default, "(default)"))
    for name, node in spec.nodes.items():
        if node.on_error is not None:
            edges.append(GraphEdge(name, node.on_error, "on error", dashed=True))
        if node.on_exhausted is not None:
            edges.append(GraphEdge(name, node.on_exhausted, "visits spent", dashed=True))
    return edges


def _mermaid_edges(spec: GraphSpec, ids: Mapping[str, str]) -> list[str]:
    lines = []
    for edge in graph_edges(spec):
        arrow = "-.->" if edge.dashed else "-->"
        label = f'|"{_escape(edge.label)}"|' if edge.label else ""
        lines.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    return lines


def _mermaid_ids(names: Iterable[str]) -> dict[str, str]:
    """A Mermaid id per node: its name when Mermaid takes it as one, else ``n<i>``."""
    ids = {START: START, END: END}
    for i, name in enumerate(names):
        plain = name.isidentifier() and name.isascii() and name.lower() not in _MERMAID_WORDS
        ids[name] = _fresh_id(name if plain else f"n{i}", set(ids.values()))
    return ids


def _fresh_id(candidate: str, used: set[str]) -> str:
    while candidate in used:
        candidate += "_"
    return candidate


def _unknown_names(spec: GraphSpec) -> list[str]:
    """Names edges and nodes refer to that are no node (nor START or END)."""
    named = [e.from_ for e in spec.edges] + [t for e in spec.edges for t in e.targets()]
    named += [t for n in spec.nodes.values() for t in (n.on_error, n.on_exhausted) if t]
    known = {START, END, *spec.nodes}
    return list(dict.fromkeys(n for n in named if n not in known))


def node_kind(node: Node) -> str:
    """A node's kind as drawn: ``agent``, ``task``…, or ``map of agent``."""
    if node.map is not None:
        return f"map of {node.map.node.kind.value}"
    return node.kind.value


def _escape(text: str) -> str:
    """Text safe inside a quoted Mermaid label."""
    return (
        text.replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<br/>", "\x00")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\x00", "<br/>")
        .replace("\n", " ")
    )


# --- a run -----------------------------------------------------------------------------


def status_lines(graph_id: str, view: GraphView, *, status: str | None = None) -> str:
    """The ``status`` query, for a person."""
    lines = [
        f"graph:   {graph_id}",
        f"name:    {view.name} ({view.fingerprint[:12]})",
        f"status:  {status or view.status.value}",
        f"step:    {view.step}  runs: {view.runs}",
        "nodes:",
    ]
    width = max((len(n.name) for n in view.nodes), default=0)
    for node in view.nodes:
        visits = f"{node.visits} visit{'s' * (node.visits != 1)}"
        line = f"  {node.name:<{width}}  {node.kind:<6} {node.status.value:<8} {visits}"
        if node.children:
            line += "  children: " + ", ".join(node.children)
        lines.append(line)
        if node.error:
            lines.append(f"  {'':<{width}}  error: {node.error}")
    for gate in view.gates:
        lines += gate_lines(graph_id, gate)
    if view.error:
        lines.append(f"error:   {view.error}")
    return "\n".join(lines)


def gate_lines(graph_id: str, gate: GateView, *, root: str | None = None) -> list[str]:
    """One open gate: what it asks, and the command that answers it."""
    where = "" if root in (None, graph_id) else f" (graph {graph_id})"
    lines = [f"gate {gate.id}{where}: {_clip(gate.prompt)}"]
    if gate.show is not None:
        shown = gate.show if isinstance(gate.show, str) else json.dumps(gate.show)
        lines.append(f"  show:     {_clip(shown)}")
    if gate.answer_schema is not None:
        lines.append(f"  answer:   {_clip(json.dumps(gate.answer_schema))}")
    if gate.deadline is not None:
        lines.append(f"  deadline: {gate.deadline.isoformat(timespec='seconds')}")
    lines.append(f"  decide:   duragent graph decide {_q(graph_id)} {_q(gate.id)} JSON")
    return lines


def _q(value: str) -> str:
    return shlex.quote(value)


def _clip(text: str, limit: int = PREVIEW) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
