"""Reading a request: its JSON body and query string as models, the run it names.

A body that is no JSON, a field of the wrong type or a value the CLI would refuse are
pydantic validation errors, which :mod:`worker.serve.errors` answers with 422.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from temporalio.client import Client, WorkflowHandle

from duragent.worker.agent_ops import NoWorker, WrongKind, no_worker
from duragent.worker.client import workflow_pollers
from duragent.worker.serve import schemas
from duragent.workflows.agent import WORKFLOW_NAME
from duragent.workflows.graph_models import GRAPH_WORKFLOW_NAME

M = TypeVar("M", bound=BaseModel)
NO_WORKER_WAIT = 5.0
"""Seconds an update may wait for a worker before the API checks that one polls."""


async def body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model`` (an empty body is ``{}``)."""
    raw = await request.body()
    return model.model_validate_json(raw if raw.strip() else b"{}")


def query(request: Request, model: type[M]) -> M:
    """The query string as ``model``."""
    return model.model_validate(dict(request.query_params))


def client(request: Request) -> Client:
    """The server's Temporal client."""
    found: Client = request.app.state.client
    return found


async def list_response(
    request: Request,
    kind: str,
    schema: type[schemas.ListAgents],
    fetch: Callable[[Client, str | None, str | None, int], Awaitable[list[dict[str, Any]]]],
) -> JSONResponse:
    """A list endpoint: the filters of ``schema`` from the query, ``{kind: rows}``."""
    asked = query(request, schema)
    rows = await fetch(client(request), asked.status, asked.owner, asked.limit)
    return JSONResponse({kind: rows})


def created(kind: str, run_id: str, **extra: Any) -> JSONResponse:
    """201 for a run started: its id, where to read it, and ``extra``."""
    path = f"/api/v1/{kind}/{run_id}"
    return JSONResponse({"id": run_id, **extra}, status_code=201, headers={"location": path})


async def agent_id(request: Request) -> str:
    """The agent the path names, once Temporal says it is an agent.

    Raises:
        WrongKind: The id names a run of another kind (404).
        RPCError: No run has the id (``NOT_FOUND``: 404 too).
    """
    run_id: str = request.path_params["agent_id"]
    described = await client(request).get_workflow_handle(run_id).describe()
    if described.workflow_type != WORKFLOW_NAME:
        raise WrongKind(f"{run_id!r} is a {described.workflow_type} run, not an agent")
    return run_id


async def give_up_without_worker(
    client: Client, waiting: asyncio.Future[Any], handle: WorkflowHandle[Any, Any]
) -> None:
    """An update's slow hook: after a few seconds, refuse when no worker polls its queue.

    The CLI waits on (a person sees its note); an HTTP client would hang on a request
    that no worker can answer, so it gets 503 instead.
    """
    done, _ = await asyncio.wait({waiting}, timeout=NO_WORKER_WAIT)
    if done:
        return
    described = await handle.describe()
    if not await workflow_pollers(client, described.task_queue):
        kind = "graph" if described.workflow_type == GRAPH_WORKFLOW_NAME else "agent"
        raise NoWorker(no_worker(described.task_queue, handle.id, kind))
