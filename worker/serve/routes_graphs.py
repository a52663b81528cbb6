"""``/api/v1/graphs``: list, start, read, decide and cancel graph runs.

A graph is started from its spec in the body (an object, or YAML/JSON text): the server
reads no files, so a child graph named by ``file:`` is refused; inline it as ``spec:``.
The spec is checked as ``duragent graph validate`` checks a file, every problem at once
(422, each with its field).
"""

from __future__ import annotations

import json
from dataclasses import asdict

from pydantic import JsonValue
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from duragent.worker import graph_ops as ops
from duragent.worker import listing
from duragent.worker.graph_render import graph_edges, mermaid, node_kind
from duragent.worker.serve import schemas
from duragent.worker.serve.errors import error
from duragent.worker.serve.parse import body, client, created, give_up_without_worker, list_response
from duragent.worker.serve.routes_agents import final_outcome
from duragent.worker.settings import Settings
from duragent.workflows.graph_load import load_graph
from duragent.workflows.graph_models import GateDecision, GraphInput
from duragent.workflows.graph_spec import GraphSpec
from duragent.workflows.graph_validate import GraphSpecError, Problem, validate


async def list_graphs(request: Request) -> JSONResponse:
    """``GET /api/v1/graphs?status=&owner=&limit=``: from Temporal visibility, newest first."""
    return await list_response(request, "graphs", schemas.ListGraphs, listing.list_graphs)


async def start_graph(request: Request) -> JSONResponse:
    """``POST /api/v1/graphs``: check the spec and input, start; 201 with the id."""
    given = await body(request, schemas.StartGraph)
    spec, problems = checked_spec(given.spec)
    if spec is not None:
        found = ops.input_problems(spec, given.input, what="input")
        problems += [Problem(where="input", message=m.removeprefix("input: ")) for m in found]
    if problems or spec is None:
        return _problems(problems)
    settings: Settings = request.app.state.config.settings
    input = GraphInput(
        spec=spec,
        input=given.input,
        owner=given.owner or settings.owner,
        model=given.model or settings.model,
    )
    handle = await ops.start_graph(
        client(request), input, task_queue=settings.task_queue, graph_id=given.id
    )
    return created("graphs", handle.id, name=spec.name, fingerprint=spec.fingerprint())


def checked_spec(given: dict[str, JsonValue] | str) -> tuple[GraphSpec | None, list[Problem]]:
    """The spec, sound, or every problem with its place (``where`` below ``spec``)."""
    try:
        spec = load_graph(given if isinstance(given, str) else json.dumps(given), source="spec")
    except GraphSpecError as err:
        return None, [_under("spec", p) for p in err.problems]
    problems = [_under("spec", p) for p in file_nodes(spec) + validate(spec)]
    return spec, problems


def file_nodes(spec: GraphSpec, where: str = "") -> list[Problem]:
    """Child graphs named by file, at any depth: the API reads no files."""
    found = []
    for name, node in spec.nodes.items():
        sub, place = node.graph, f"{where}nodes.{name}.graph"
        if sub is None:
            continue
        if sub.file is not None:
            message = "the API reads no files: give the child graph inline as `spec`"
            found.append(Problem(where=f"{place}.file", message=message))
        elif sub.spec is not None:
            found += file_nodes(sub.spec, f"{place}.spec.")
    return found


def _under(prefix: str, problem: Problem) -> Problem:
    where = f"{prefix}.{problem.where}" if problem.where else prefix
    return Problem(where=where, message=problem.message)


def _problems(problems: list[Problem]) -> JSONResponse:
    errors = [{"field": p.where, "error": p.message} for p in problems]
    first = errors[0]
    return error(422, f"{first['field']}: {first['error']}", field=first["field"], errors=errors)


async def status(request: Request) -> JSONResponse:
    """``GET /api/v1/graphs/{id}``: the status query, the spec's nodes and edges, Mermaid."""
    graph_id = request.path_params["graph_id"]
    state = await ops.graph_state(client(request), graph_id)
    handle = ops.graph_handle(client(request), graph_id)
    spec = await ops.run_spec(client(request), handle)
    nodes = {node.name: node for node in state.view.nodes} if state.view else None
    drawing = {
        "name": spec.name,
        "nodes": [{"name": name, "kind": node_kind(node)} for name, node in spec.nodes.items()],
        "edges": [asdict(edge) for edge in graph_edges(spec)],
    }
    return JSONResponse(
        {"id": graph_id, **state.json(), "graph": drawing, "mermaid": mermaid(spec, nodes)}
    )


async def pending(request: Request) -> JSONResponse:
    """``GET /api/v1/graphs/{id}/pending``: open gates, and its agents' questions."""
    found = await ops.graph_pending(client(request), request.path_params["graph_id"])
    if isinstance(found, str):
        return JSONResponse({"gates": [], "questions": [], "approvals": [], "ended": found})
    return JSONResponse(found.json())


async def decide(request: Request) -> JSONResponse:
    """``POST /api/v1/graphs/{id}/decide``: answer an open gate."""
    given = await body(request, schemas.GateAnswer)
    decision = GateDecision(gate_id=given.gate_id, answer=given.answer)
    gate_id = await ops.send_gate_answer(
        client(request), request.path_params["graph_id"], decision, slow=give_up_without_worker
    )
    return JSONResponse({"gate_id": gate_id})


async def cancel(request: Request) -> JSONResponse:
    """``POST /api/v1/graphs/{id}/cancel``: request cancellation (its children with it)."""
    given = await body(request, schemas.Cancel)
    reason = given.reason or "cancelled from the API"
    await ops.cancel_graph(client(request), request.path_params["graph_id"], reason)
    return JSONResponse({"cancelling": True}, status_code=202)


async def result(request: Request) -> JSONResponse:
    """``GET /api/v1/graphs/{id}/result``: status, output and state, or that it still runs."""
    handle, _ = await ops.described_graph(client(request), request.path_params["graph_id"])
    return JSONResponse(await final_outcome(handle))


_ONE = "/api/v1/graphs/{graph_id}"
ROUTES = [
    Route("/api/v1/graphs", list_graphs, methods=["GET"]),
    Route("/api/v1/graphs", start_graph, methods=["POST"]),
    Route(_ONE, status, methods=["GET"]),
    Route(f"{_ONE}/pending", pending, methods=["GET"]),
    Route(f"{_ONE}/decide", decide, methods=["POST"]),
    Route(f"{_ONE}/cancel", cancel, methods=["POST"]),
    Route(f"{_ONE}/result", result, methods=["GET"]),
]
