"""``duragent serve``: the HTTP API, live events over Server-Sent Events, the web console.

- :mod:`.main` — the command: token policy, listening socket, uvicorn.
- :mod:`.app` — the Starlette app: routes, middleware, error handlers.
- :mod:`.auth`, :mod:`.guards` — bearer token and events cookie; body limit, headers.
- :mod:`.routes_agents`, :mod:`.routes_graphs`, :mod:`.routes_events` — the endpoints.
- :mod:`.schemas`, :mod:`.parse`, :mod:`.errors` — what comes in, and what goes wrong.
- :mod:`.hub` — one reader of a run's events shared by every subscriber.
- ``static/`` — the console: HTML, JS modules and CSS, served as they are.

Everything answers from Temporal (visibility, describe, queries, updates, signals and
the runs' event streams) through :mod:`worker.agent_ops` and :mod:`worker.graph_ops`,
the functions the CLI calls too.
"""
