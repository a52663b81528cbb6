"""``GET /api/v1/{agents|graphs}/{id}/events``: a run's live events as Server-Sent Events.

Each event is one SSE message: ``id:`` its stream offset, ``event:`` its type, ``data:``
its JSON (the schema of :mod:`duragent.activities.events`). A client that reconnects
sends ``Last-Event-ID`` (browsers' ``EventSource`` does it by itself) and the stream
goes on after that offset; ``?from=N`` starts at offset ``N`` instead. A comment line
every ``keepalive`` seconds of quiet keeps proxies from closing the connection. The
stream ends with ``event: end`` (``data: {"reason": "finished"}``, or ``"error"`` with
the error), after the run's ``finished`` event: a client closes then, rather than
reconnecting. A subscriber too slow for the server's buffer is disconnected without
``end``, and resumes by reconnecting.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Final

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from duragent.worker.agent_ops import UserError, WrongKind
from duragent.worker.client import TemporalUnavailable
from duragent.worker.events import NoStream
from duragent.worker.serve.errors import ApiError
from duragent.worker.serve.hub import Event, Hub, Lagged
from duragent.workflows.agent import WORKFLOW_NAME
from duragent.workflows.graph_models import GRAPH_WORKFLOW_NAME

RETRY_MS: Final = 2_000
"""How long a browser waits before reconnecting a dropped stream."""
SSE_HEADERS: Final = {
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # nginx and the like pass each event on at once
}

log = logging.getLogger("duragent.serve")


def first_offset(request: Request) -> int:
    """Where the stream starts: after ``Last-Event-ID``, else at ``?from=``, else 0.

    Raises:
        ApiError: Either is not a whole number (422, naming it).
    """
    last = request.headers.get("last-event-id")
    if last is not None and last.strip():
        return _whole(last, "Last-Event-ID") + 1
    given = request.query_params.get("from")
    return 0 if given is None else _whole(given, "from")


def _whole(text: str, field: str) -> int:
    if not text.strip().isdigit():
        raise ApiError(422, f"{field}: expected an event offset (a whole number)", field=field)
    return int(text)


def sse(event: Event) -> str:
    """One event as an SSE message (JSON has no raw newline, so one ``data:`` line)."""
    kind = event.get("type", "message")
    return f"id: {event.get('offset')}\nevent: {kind}\ndata: {json.dumps(event)}\n\n"


def end(reason: str, error: str | None = None) -> str:
    """The last message of a stream."""
    data = {"reason": reason, **({"error": error} if error else {})}
    return f"event: end\ndata: {json.dumps(data)}\n\n"


async def stream(hub: Hub, workflow_id: str, offset: int, keepalive: float) -> AsyncIterator[str]:
    """The SSE text of a run's events from ``offset`` on."""
    yield f"retry: {RETRY_MS}\n\n"
    try:
        async with contextlib.aclosing(
            hub.follow(workflow_id, offset, keepalive=keepalive)
        ) as batches:
            async for batch in batches:
                yield "".join(sse(event) for event in batch) if batch else ": keep-alive\n\n"
    except Lagged:
        return  # no `end`: the browser reconnects and resumes from its last id
    except (NoStream, UserError, TemporalUnavailable) as err:
        yield end("error", str(err))
        return
    except Exception as err:
        log.exception("the event stream of %s failed", workflow_id)
        yield end("error", f"the event stream failed ({type(err).__name__})")
        return
    yield end("finished")


async def _events(request: Request, kind: str, workflow_type: str) -> StreamingResponse:
    run_id = request.path_params[f"{kind}_id"]
    offset = first_offset(request)
    # Checked before the stream starts: once it has, errors can only be SSE messages.
    description = await request.app.state.client.get_workflow_handle(run_id).describe()
    if description.workflow_type != workflow_type:
        raise WrongKind(f"{run_id!r} is a {description.workflow_type} run, not a {kind}")
    state = request.app.state
    return StreamingResponse(
        stream(state.hub, run_id, offset, state.config.keepalive_seconds),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


async def agent_events(request: Request) -> StreamingResponse:
    """An agent's events (``GET /api/v1/agents/{agent_id}/events``)."""
    return await _events(request, "agent", WORKFLOW_NAME)


async def graph_events(request: Request) -> StreamingResponse:
    """A graph's events (``GET /api/v1/graphs/{graph_id}/events``)."""
    return await _events(request, "graph", GRAPH_WORKFLOW_NAME)


ROUTES = [
    Route("/api/v1/agents/{agent_id}/events", agent_events, methods=["GET"]),
    Route("/api/v1/graphs/{graph_id}/events", graph_events, methods=["GET"]),
]
