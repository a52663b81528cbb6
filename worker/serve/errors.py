"""How ``duragent serve`` answers mistakes: a JSON body ``{"error": …}``, never a traceback.

The mapping, in one place::

    pydantic ValidationError   422  {"error", "field", "errors": [{"field", "error"}]}
    ApiError                   its own status (400, 404, 409, 413, 422…)
    RPCError NOT_FOUND         404 no such run, or 409 it has ended (takes no input)
    RPCError (other)           502 Temporal refused the request (its message)
    NoWorker                   503 no worker polls the run's task queue
    Rejected                   409 the workflow's validator refused (its words); 422 for
                               edited arguments the tool does not accept
    Ended                      409 the run has ended
    WrongKind                  404 the id names a run of another kind
    UserError (other)          409 the run's state does not allow it (the reason)
    TemporalUnavailable        503
    HTTPException              its status (unknown path 404, wrong method 405)
    anything else              500 {"error": "internal error", "incident": ID}, logged
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from temporalio.service import RPCError

from duragent.worker.agent_ops import (
    Ended,
    NoWorker,
    Rejected,
    UserError,
    WrongKind,
    status_of_id,
)
from duragent.worker.client import TemporalUnavailable, is_not_found

log = logging.getLogger("duragent.serve")


class ApiError(Exception):
    """A request the API refuses, with its HTTP status and, when one is at fault, the field.

    Args:
        status: The HTTP status.
        message: What is wrong, for a person.
        field: The request field at fault (``task``, ``answer``, ``Last-Event-ID``…).
    """

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """The JSON error response every failure is."""
    return JSONResponse({"error": message, **extra}, status_code=status)


def field_name(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a dotted field name (``body`` for the body itself)."""
    return ".".join(str(part) for part in loc) or "body"


async def on_validation(request: Request, exc: Exception) -> JSONResponse:
    """422 naming the first field at fault, with every problem listed."""
    assert isinstance(exc, ValidationError)
    problems = [
        {"field": field_name(e["loc"]), "error": e["msg"].removeprefix("Value error, ")}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    first = problems[0]
    return error(422, f"{first['field']}: {first['error']}", field=first["field"], errors=problems)


async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
    """The status and message the route chose."""
    assert isinstance(exc, ApiError)
    return error(exc.status, exc.message, **({"field": exc.field} if exc.field else {}))


async def on_user_error(request: Request, exc: Exception) -> JSONResponse:
    """Mistakes the CLI prints in one line, as HTTP statuses."""
    assert isinstance(exc, UserError)
    if isinstance(exc, NoWorker):
        return error(503, str(exc))
    if isinstance(exc, Rejected):
        if exc.kind == "InvalidArguments":  # the edited arguments, refused by the tool
            return error(422, exc.why, field="arguments", rejected_by=exc.kind)
        return error(409, exc.why, rejected_by=exc.kind or None)
    if isinstance(exc, WrongKind):
        return error(404, str(exc))
    if isinstance(exc, Ended):
        return error(409, str(exc), ended=True)
    return error(409, str(exc))


async def on_rpc_error(request: Request, exc: Exception) -> JSONResponse:
    """No such run (404), a run that has ended (409), or Temporal's refusal (502)."""
    assert isinstance(exc, RPCError)
    params = request.path_params
    kind = "agent" if "agent_id" in params else "graph"
    run_id = params.get("agent_id", params.get("graph_id"))
    if not is_not_found(exc) or run_id is None:
        return error(502, f"Temporal refused the request: {exc.message}")
    how = await status_of_id(request.app.state.client, run_id)
    if how is None:
        return error(404, f"no {kind} with id {run_id!r}")
    return error(409, f"{kind} {run_id!r} has ended ({how}); it takes no more input", ended=True)


async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Temporal does not answer."""
    return error(503, str(exc))


async def on_http(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own: an unknown path, a wrong method."""
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail)


async def on_crash(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback under an incident id; the client gets the id only."""
    incident = uuid.uuid4().hex[:12]
    log.error("incident %s: %s %s failed", incident, request.method, request.url.path, exc_info=exc)
    return error(500, "internal error (logged by the server)", incident=incident)


HANDLERS = {
    ValidationError: on_validation,
    ApiError: on_api_error,
    UserError: on_user_error,
    RPCError: on_rpc_error,
    TemporalUnavailable: on_unavailable,
    HTTPException: on_http,
    Exception: on_crash,
}
"""Exception handlers of the app, by the exception class they answer."""
