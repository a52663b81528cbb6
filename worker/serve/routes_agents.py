"""``/api/v1/agents``: list, start, read, answer, steer and cancel agents.

Each route reads its input (:mod:`worker.serve.parse`), calls the function the CLI
calls (:mod:`worker.agent_ops`), and answers JSON; what goes wrong is answered by
:mod:`worker.serve.errors`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from duragent.worker import agent_ops as ops
from duragent.worker import listing
from duragent.worker.cli_args import unknown_tools
from duragent.worker.client import agent_handle
from duragent.worker.serve import schemas
from duragent.worker.serve.parse import (
    agent_id,
    body,
    client,
    created,
    give_up_without_worker,
    list_response,
    query,
)
from duragent.worker.settings import Settings
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentInput, ApprovalDecision, ApprovalPolicy


async def list_agents(request: Request) -> JSONResponse:
    """``GET /api/v1/agents?status=&owner=&limit=``: from Temporal visibility, newest first."""
    return await list_response(request, "agents", schemas.ListAgents, listing.list_agents)


async def start_agent(request: Request) -> JSONResponse:
    """``POST /api/v1/agents``: start an agent; 201 with its id."""
    given = await body(request, schemas.StartAgent)
    settings: Settings = request.app.state.config.settings
    input = AgentInput(
        task=given.task,
        model=given.model or settings.model,
        system_prompt=given.system_prompt,
        tools=given.tools,
        max_cycles=given.max_cycles,
        owner=given.owner or settings.owner,
        workspace=given.workspace,
        approval=ApprovalPolicy(tools=given.approval or {}),
    )
    handle = await ops.start(
        client(request), input, task_queue=settings.task_queue, agent_id=given.id
    )
    notes = [
        f"{name!r} is no built-in tool; the agent fails at its start unless its worker "
        "registers a tool of that name"
        for name in unknown_tools(given.tools)
    ]
    return created("agents", handle.id, notes=notes)


async def status(request: Request) -> JSONResponse:
    """``GET /api/v1/agents/{id}``: the status query (what history says, once it ended)."""
    state = await ops.agent_state(client(request), await agent_id(request))
    return JSONResponse({"id": state.run_id, **state.json()})


async def transcript(request: Request) -> JSONResponse:
    """``GET /api/v1/agents/{id}/transcript?offset=&limit=``: a page of messages."""
    page = query(request, schemas.Page)
    found = await ops.transcript_page(
        client(request), await agent_id(request), page.offset, page.limit
    )
    return JSONResponse(found.model_dump(mode="json"))


async def todos(request: Request) -> JSONResponse:
    """``GET /api/v1/agents/{id}/todos``: the todo list as the agent last wrote it."""
    handle = agent_handle(client(request), await agent_id(request))
    asked = handle.query(AgentWorkflow.todos, rpc_timeout=ops.QUERY_TIMEOUT)
    items = await ops.answered(client(request), handle, asked)
    return JSONResponse({"todos": [item.model_dump(mode="json") for item in items]})


async def usage(request: Request) -> JSONResponse:
    """``GET /api/v1/agents/{id}/usage``: tokens in total and per model, cycles, calls."""
    handle = agent_handle(client(request), await agent_id(request))
    asked = handle.query(AgentWorkflow.usage, rpc_timeout=ops.QUERY_TIMEOUT)
    view = await ops.answered(client(request), handle, asked)
    return JSONResponse(view.model_dump(mode="json"))


async def pending(request: Request) -> JSONResponse:
    """``GET /api/v1/agents/{id}/pending``: questions and approvals of its agent tree."""
    tree = await ops.agent_pending(client(request), await agent_id(request))
    return JSONResponse(tree.model_dump(mode="json"))


async def result(request: Request) -> JSONResponse:
    """``GET /api/v1/agents/{id}/result``: the result from history, or that it still runs."""
    handle = agent_handle(client(request), await agent_id(request))
    outcome = await final_outcome(handle)
    return JSONResponse(outcome)


async def final_outcome(handle: Any) -> dict[str, Any]:
    """A run's result as JSON (from history: no worker needed), or ``running: true``."""
    described = await handle.describe()
    if described.status is WorkflowExecutionStatus.RUNNING:
        return {"running": True, "status": ops.recorded_status(described)}
    try:
        outcome = await handle.result()
    except WorkflowFailureError as err:
        return {"running": False, "status": ops.closed_by(err), "error": str(err.cause)}
    return {"running": False, **outcome.model_dump(mode="json")}


async def reply(request: Request) -> JSONResponse:
    """``POST /api/v1/agents/{id}/reply``: answer the pending question."""
    given = await body(request, schemas.Reply)
    question_id = await ops.send_reply(
        client(request),
        await agent_id(request),
        given.answer,
        given.question_id,
        slow=give_up_without_worker,
    )
    return JSONResponse({"question_id": question_id})


async def decide(request: Request) -> JSONResponse:
    """``POST /api/v1/agents/{id}/decide``: approve, reject or edit a pending tool call."""
    given = await body(request, schemas.Decide)
    decision = ApprovalDecision(
        call_id=given.call_id,
        action=given.action,
        message=given.message,
        arguments=given.arguments if isinstance(given.arguments, str) else None,
        fingerprint=given.fingerprint,
    )
    call_id = await ops.send_decision(
        client(request), await agent_id(request), decision, slow=give_up_without_worker
    )
    return JSONResponse({"call_id": call_id, "action": decision.action.value})


async def say(request: Request) -> JSONResponse:
    """``POST /api/v1/agents/{id}/say``: a message the agent reads before its next call."""
    given = await body(request, schemas.Say)
    await ops.steer(client(request), await agent_id(request), given.message)
    return JSONResponse({"queued": True}, status_code=202)


async def cancel(request: Request) -> JSONResponse:
    """``POST /api/v1/agents/{id}/cancel``: request cancellation (it stops at once or soon)."""
    given = await body(request, schemas.Cancel)
    reason = given.reason or "cancelled from the API"
    await ops.cancel_agent(client(request), await agent_id(request), reason)
    return JSONResponse({"cancelling": True}, status_code=202)


_ONE = "/api/v1/agents/{agent_id}"
ROUTES = [
    Route("/api/v1/agents", list_agents, methods=["GET"]),
    Route("/api/v1/agents", start_agent, methods=["POST"]),
    Route(_ONE, status, methods=["GET"]),
    Route(f"{_ONE}/transcript", transcript, methods=["GET"]),
    Route(f"{_ONE}/todos", todos, methods=["GET"]),
    Route(f"{_ONE}/usage", usage, methods=["GET"]),
    Route(f"{_ONE}/pending", pending, methods=["GET"]),
    Route(f"{_ONE}/result", result, methods=["GET"]),
    Route(f"{_ONE}/reply", reply, methods=["POST"]),
    Route(f"{_ONE}/decide", decide, methods=["POST"]),
    Route(f"{_ONE}/say", say, methods=["POST"]),
    Route(f"{_ONE}/cancel", cancel, methods=["POST"]),
]
