"""What the CLI and the HTTP API do to graph runs, as data: ask, start, decide, stop.

The graph counterpart of :mod:`worker.agent_ops`, with the same errors: a mistake is a
:class:`~worker.agent_ops.UserError` (``NoWorker``, ``Ended``, ``Rejected``), a run
that does not exist Temporal's ``RPCError`` with ``NOT_FOUND``. ``duragent graph``
(:mod:`worker.graph_cli`) prints what these return; ``duragent serve`` answers HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from duragent.worker.agent_ops import (
    QUERY_TIMEOUT,
    Ended,
    RunState,
    SlowHook,
    UserError,
    WrongKind,
    answered,
    recorded_status,
    run_state,
    send_update,
)
from duragent.worker.client import (
    WORKFLOW_NAME,
    start_registering,
)
from duragent.worker.graph_pending import GraphTree, pending_walk
from duragent.workflows import search_attributes as search
from duragent.workflows.graph_expr import json_type
from duragent.workflows.graph_models import (
    GRAPH_WORKFLOW_NAME,
    GateDecision,
    GraphInput,
    GraphPending,
    GraphResult,
    GraphView,
)
from duragent.workflows.graph_spec import FieldType, GraphSpec

GraphHandle = WorkflowHandle[Any, GraphResult]
T = TypeVar("T")


# --- starting --------------------------------------------------------------------------


def new_graph_id() -> str:
    """A fresh graph id (also the workflow id)."""
    return f"graph-{uuid.uuid4().hex[:12]}"


async def start_graph(
    client: Client, input: GraphInput, *, task_queue: str, graph_id: str | None = None
) -> GraphHandle:
    """Start a graph; starting again with the id of a running graph returns that graph.

    The run carries the search attributes agents get (status, model, owner), registered
    first on a server that does not know them yet, and the graph's name and fingerprint
    in its memo (``graph ls`` shows them).

    Raises:
        Ended: A graph with this id already ran to its end; ids are not reused, so its
            result stays readable.
    """
    attributes = search.at_start(input.model or "", input.owner)
    graph_id = graph_id or new_graph_id()
    try:
        return await start_registering(
            client, lambda: _start(client, input, task_queue, graph_id, attributes)
        )
    except WorkflowAlreadyStartedError as err:
        raise Ended(
            f"graph {graph_id!r} already ran; see `duragent graph result {graph_id}`"
        ) from err


async def _start(
    client: Client,
    input: GraphInput,
    task_queue: str,
    graph_id: str,
    attributes: TypedSearchAttributes,
) -> GraphHandle:
    spec = input.spec
    return await client.start_workflow(
        GRAPH_WORKFLOW_NAME,
        input,
        id=graph_id,
        task_queue=task_queue,
        result_type=GraphResult,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=f"graph {spec.name}"
        + (f": {spec.description[:180]}" if spec.description else ""),
        search_attributes=attributes,
        memo={"graph": spec.name, "fingerprint": spec.fingerprint()},
    )


def input_problems(
    spec: GraphSpec, values: Mapping[str, Any], *, what: str = "--input"
) -> list[str]:
    """What is wrong with a graph's input (``what``): unknown fields, wrong JSON types."""
    problems = []
    fields = ", ".join(spec.state) or "none"
    for key, value in values.items():
        field = spec.state.get(key)
        if field is None:
            problems.append(f"{what}: the graph has no state field {key!r} (fields: {fields})")
            continue
        want, got = field.type, json_type(value)
        if want is FieldType.ANY or got == want.value:
            continue
        if want is FieldType.NUMBER and got == "integer":
            continue
        problems.append(f"{what}: field {key!r} is of type {want.value}, got {got}")
    return problems


# --- asking a graph --------------------------------------------------------------------


def graph_handle(client: Client, graph_id: str) -> GraphHandle:
    """Handle of an existing graph, typed for its result."""
    return client.get_workflow_handle(graph_id, result_type=GraphResult)


async def described_graph(
    client: Client, graph_id: str
) -> tuple[GraphHandle, WorkflowExecutionDescription]:
    """The graph's handle and description; an id of another kind of run is refused.

    Raises:
        WrongKind: The id names an agent (or any other workflow), not a graph.
        RPCError: No run has this id (``NOT_FOUND``).
    """
    handle = graph_handle(client, graph_id)
    description = await handle.describe()
    if description.workflow_type != GRAPH_WORKFLOW_NAME:
        hint = (
            f"; see `duragent status {graph_id}`"
            if description.workflow_type == WORKFLOW_NAME
            else ""
        )
        raise WrongKind(f"{graph_id!r} is a {description.workflow_type} run, not a graph{hint}")
    return handle, description


async def ask(client: Client, handle: GraphHandle, query: str, result_type: type[T]) -> T:
    """A query's answer; says so when no worker can give one.

    Raises:
        NoWorker: The query failed and no worker polls the graph's task queue.
        UserError: The graph could not answer (its workflow code failed the query).
    """
    asked = handle.query(query, result_type=result_type, rpc_timeout=QUERY_TIMEOUT)
    return await answered(client, handle, asked, "graph")


async def run_spec(client: Client, handle: GraphHandle) -> GraphSpec:
    """The graph a run interprets: its input, from the first event of its latest run."""
    async for event in handle.fetch_history_events(page_size=1):
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        decoded = await client.data_converter.decode(payloads, [GraphInput])
        input = decoded[0]
        assert isinstance(input, GraphInput)
        return input.spec
    raise UserError(f"graph {handle.id!r} has no history to read its graph from")


async def graph_state(client: Client, graph_id: str) -> RunState[GraphView]:
    """The ``status`` query, or for a closed run no worker answers, what Temporal knows.

    Raises:
        RPCError: ``NOT_FOUND`` when no run has this id.
        UserError: Not a graph, or a running one could not answer.
    """
    handle, description = await described_graph(client, graph_id)
    return await run_state(
        client,
        graph_id,
        description,
        lambda: ask(client, handle, "status", GraphView),
        kind="graph",
    )


async def graph_pending(client: Client, graph_id: str) -> GraphTree | str:
    """The open gates of a graph tree and its agents' questions; how it ended, once it did."""
    handle, description = await described_graph(client, graph_id)
    if description.status is not WorkflowExecutionStatus.RUNNING:
        return recorded_status(description)
    root = await ask(client, handle, "pending", GraphPending)
    return await pending_walk(client, graph_id, root)


# --- deciding, stopping, listing -------------------------------------------------------


async def send_gate_answer(
    client: Client, graph_id: str, decision: GateDecision, *, slow: SlowHook
) -> str:
    """Answer an open gate (the ``decide`` update; the workflow checks it first).

    Raises:
        Ended: The graph has ended.
        Rejected: The workflow refused (no such open gate, an answer outside its schema).
    """
    handle, description = await described_graph(client, graph_id)
    if description.status is not WorkflowExecutionStatus.RUNNING:
        raise Ended(
            f"graph {graph_id!r} has ended ({recorded_status(description)}); "
            "its gates take no more answers"
        )
    return await send_update(client, handle, "decide", decision, slow=slow, what="decision")


async def cancel_graph(client: Client, graph_id: str, reason: str) -> GraphHandle:
    """Request cancellation (running children are cancelled with it).

    Raises:
        Ended: The graph has already ended.
    """
    handle, description = await described_graph(client, graph_id)
    if description.status is not WorkflowExecutionStatus.RUNNING:
        raise Ended(f"graph {graph_id!r} has already ended ({recorded_status(description)})")
    await handle.cancel(reason=reason)
    return handle
