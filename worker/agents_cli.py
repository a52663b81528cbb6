"""``duragent agents`` and ``duragent run --agent NAME``: definitions registered on workers.

The definitions live in the workers' code (:class:`duragent.Agent`); these commands
ask a worker of the task queue for them through the catalog workflow (see
:mod:`duragent.workflows.catalog`) and say so when no worker polls the queue.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from temporalio.client import Client

from duragent.worker.agent_ops import UserError
from duragent.worker.agents import AgentNotFound, AgentSpec, agent_catalog, spec_input
from duragent.worker.cli_args import EXIT_OK
from duragent.worker.inspection import note_missing_worker, print_json
from duragent.worker.settings import Settings
from duragent.workflows.catalog import AgentCatalog
from duragent.workflows.models import AgentInput


async def catalog(client: Client, task_queue: str, name: str | None = None) -> AgentCatalog:
    """A worker's catalog; a note on stderr when no worker seems to poll the queue.

    Raises:
        UserError: No worker answered.
    """
    waiting = asyncio.ensure_future(agent_catalog(client, task_queue, name))
    await note_missing_worker(client, waiting, task_queue=task_queue)
    try:
        return await waiting
    except TimeoutError as err:
        raise UserError(str(err)) from err


async def agents(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """List the agent definitions the workers of the queue registered."""
    found = await catalog(client, settings.task_queue)
    if args.json:
        print_json([a.model_dump(mode="json", exclude={"input"}) for a in found.agents])
        return EXIT_OK
    if not found.agents:
        print(
            f"no agent definitions on task queue {settings.task_queue!r} (a worker lists "
            "those given to duragent.Worker(agents=...) or found by `duragent worker --load`)"
        )
        return EXIT_OK
    for line in _table(found.agents):
        print(line)
    return EXIT_OK


def _table(specs: list[AgentSpec]) -> list[str]:
    rows = [("NAME", "MODEL", "OUTPUT", "TOOLS", "DESCRIPTION")]
    for spec in specs:
        own = [t for t in spec.tools if not t.startswith("_")] or ["-"]
        rows.append(
            (
                spec.name,
                spec.input.model,
                spec.output_type or "text",
                ",".join(own),
                spec.description.splitlines()[0] if spec.description else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        for row in rows
    ]


async def definition_input(
    client: Client, settings: Settings, name: str, task: str, **overrides: Any
) -> AgentInput:
    """The input of a run of definition ``name``, with the flags the user gave.

    Raises:
        UserError: No such definition, no worker answered, or an override is wrong.
    """
    found = await catalog(client, settings.task_queue, name)
    spec = found.get(name)
    if spec is None:
        raise UserError(
            str(
                AgentNotFound(
                    f"no agent named {name!r} on task queue "
                    f"{settings.task_queue!r} (see `duragent agents`)"
                )
            )
        )
    try:
        return spec_input(spec, task, **overrides)
    except (TypeError, ValueError) as err:
        raise UserError(f"agent {name!r}: {err}") from err
