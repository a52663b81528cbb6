"""The ASGI application of ``duragent serve``: routes, middleware, error handlers.

Layers, outermost first: security headers on every response; the bearer token on every
``/api/`` request (:mod:`~worker.serve.auth`); the body size limit; then Starlette's
router with the JSON error handlers (:mod:`~worker.serve.errors`). The app holds no
state of its own beyond a Temporal client and the event hub: every answer comes from
Temporal (visibility, describe, queries, updates, signals, the runs' event streams).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from temporalio.client import Client

from duragent.worker import events
from duragent.worker.serve import routes_agents, routes_events, routes_graphs
from duragent.worker.serve.auth import EVENTS_COOKIE, BearerAuth, events_cookie
from duragent.worker.serve.errors import HANDLERS
from duragent.worker.serve.guards import MAX_BODY_BYTES, BodyLimit, SecurityHeaders
from duragent.worker.serve.hub import Event, Hub
from duragent.worker.settings import Settings

STATIC: Final = Path(__file__).parent / "static"
"""The console: hand-written HTML, JS and CSS, served as they are (no build step)."""


@dataclass(frozen=True)
class ServeConfig:
    """What ``duragent serve`` runs with."""

    token: str
    """The bearer token every ``/api/`` request needs."""
    settings: Settings
    """Task queue, default model and owner of what the API starts."""
    max_body_bytes: int = MAX_BODY_BYTES
    keepalive_seconds: float = 15.0
    """Seconds of quiet on an event stream before a keep-alive comment."""


def create_app(config: ServeConfig, client: Client) -> Starlette:
    """The app, answering from ``client``'s Temporal namespace.

    Args:
        config: Token, settings and limits.
        client: A connected client with duragent's data converter.
    """

    def upstream(workflow_id: str, offset: int) -> AsyncIterator[Event]:
        return events.subscribe(client, workflow_id, from_offset=offset)

    hub = Hub(upstream)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await hub.close()

    app = Starlette(
        routes=[
            Route("/", console, methods=["GET"]),
            Route("/api/v1/health", health, methods=["GET"]),
            Route("/api/v1/session", session, methods=["POST", "DELETE"]),
            *routes_agents.ROUTES,
            *routes_graphs.ROUTES,
            *routes_events.ROUTES,
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(BearerAuth, token=config.token),
            Middleware(BodyLimit, max_bytes=config.max_body_bytes),
        ],
        exception_handlers=dict(HANDLERS),
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.client = client
    app.state.hub = hub
    return app


async def console(request: Request) -> Response:
    """``GET /``: the console's page (it asks for the token, then calls the API)."""
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


async def health(request: Request) -> JSONResponse:
    """``GET /api/v1/health``: the server answers (no token needed, nothing revealed)."""
    return JSONResponse({"ok": True})


async def session(request: Request) -> Response:
    """``POST /api/v1/session``: the events cookie for ``EventSource``; ``DELETE`` drops it.

    The cookie opens only ``GET …/events`` (see :mod:`worker.serve.auth`).
    """
    response = Response(status_code=204)
    if request.method == "DELETE":
        response.delete_cookie(EVENTS_COOKIE, path="/api/")
        return response
    config: ServeConfig = request.app.state.config
    response.set_cookie(
        EVENTS_COOKIE,
        events_cookie(config.token),
        path="/api/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


__all__ = ["ServeConfig", "create_app"]
