"""What a graph tree waits on: its open gates, its child graphs', its agents' questions.

``duragent graph pending`` walks the ``pending`` query of the graph (``GraphPending``:
open gates, running child agents, running child graphs), then of each child graph,
breadth first; each running agent's questions and approvals come from the agents' own
walk (:func:`worker.pending_tree.walk`), so a sub-agent's question is answered through
the agent that lists it, as ``duragent pending`` says. A child graph's gate is decided
on the child graph's id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from duragent.worker.agent_ops import QUERY_TIMEOUT
from duragent.worker.graph_render import gate_lines
from duragent.worker.pending_tree import PendingItem, PendingKind, PendingTree, item_lines, walk
from duragent.workflows.graph_models import GateView, GraphPending
from duragent.workflows.models import PendingView

MAX_GRAPHS: Final = 50
"""Graphs queried at most in one walk of a graph tree (itself included)."""


@dataclass
class GraphTree:
    """What a graph tree waits on: gates by the graph holding them, and agents' items."""

    graph_id: str
    gates: list[tuple[str, GateView]] = field(default_factory=list)
    """``(graph id, gate)``: a child graph's gates are decided on the child."""
    items: list[PendingItem] = field(default_factory=list)
    """The questions and approvals of the running agents (and their sub-agents)."""
    agents: int = 0
    unreachable: dict[str, str] = field(default_factory=dict)
    truncated: bool = False

    def json(self) -> dict[str, Any]:
        """``graph pending --json``."""
        data: dict[str, Any] = {
            "gates": [
                {
                    "id": gate.id,
                    "node": gate.node,
                    "prompt": gate.prompt,
                    "show": gate.show,
                    "answer_schema": gate.answer_schema,
                    "deadline": gate.deadline.isoformat() if gate.deadline else None,
                    "graph": graph,
                }
                for graph, gate in self.gates
            ],
            "questions": [
                i.model_dump(mode="json") for i in self.items if i.kind is PendingKind.QUESTION
            ],
            "approvals": [
                i.model_dump(mode="json") for i in self.items if i.kind is PendingKind.APPROVAL
            ],
        }
        if self.unreachable:
            data["unreachable"] = self.unreachable
        if self.truncated:
            data["truncated"] = True
        return data

    def lines(self) -> str:
        """For a person: each gate and item, then the command that answers it."""
        lines: list[str] = []
        for graph, gate in self.gates:
            lines += gate_lines(graph, gate, root=self.graph_id)
        for item in self.items:
            lines += item_lines(item, root=self.graph_id)
        for child, why in self.unreachable.items():
            lines.append(f"{child}: cannot be queried ({why})")
        if self.truncated:
            lines.append(f"(only the first {MAX_GRAPHS} graphs of the tree were queried)")
        if not self.gates and not self.items:
            running = (
                f" ({self.agents} agent{'s' * (self.agents != 1)} running)" if self.agents else ""
            )
            lines.insert(0, "nothing pending" + running)
        return "\n".join(lines)


async def pending_walk(client: Client, graph_id: str, root: GraphPending) -> GraphTree:
    """What a graph tree waits on, walking its running child graphs and agents.

    The open gates of the graph and of its child graphs (at most ``MAX_GRAPHS``), and
    the questions and approvals of every running agent among them and their sub-agents.
    """
    tree = GraphTree(graph_id)
    queue: list[tuple[str, GraphPending]] = [(graph_id, root)]
    walked = {graph_id}
    seen: set[tuple[str, str]] = set()
    while queue:
        current, view = queue.pop(0)
        tree.gates += [(current, gate) for gate in view.gates]
        for agent in view.agents:
            tree.agents += 1
            await _add_agent(client, tree, agent, seen)
        for child in view.graphs:
            if child in walked:
                continue
            if len(walked) >= MAX_GRAPHS:
                tree.truncated = True
                break
            walked.add(child)
            try:
                answer = await _pending_of_graph(client, child)
            except (RPCError, WorkflowQueryFailedError) as err:
                tree.unreachable[child] = err.message
                continue
            queue.append((child, answer))
    return tree


async def _add_agent(
    client: Client, tree: GraphTree, agent: str, seen: set[tuple[str, str]]
) -> None:
    async def query(agent_id: str) -> PendingView:
        view: PendingView = await client.get_workflow_handle(agent_id).query(
            "pending", result_type=PendingView, rpc_timeout=QUERY_TIMEOUT
        )
        return view

    try:
        found: PendingTree = await walk(agent, await query(agent), query)
    except (RPCError, WorkflowQueryFailedError) as err:
        tree.unreachable[agent] = err.message
        return
    for item in found.items:
        key = (item.send_to, item.id)
        if key not in seen:
            seen.add(key)
            tree.items.append(item)
    tree.unreachable.update(found.unreachable)


async def _pending_of_graph(client: Client, graph_id: str) -> GraphPending:
    view: GraphPending = await client.get_workflow_handle(graph_id).query(
        "pending", result_type=GraphPending, rpc_timeout=QUERY_TIMEOUT
    )
    return view
