"""What ``import duragent`` offers an application: connect, start, run a worker.

These functions are the library's entry points, so they may read the process
environment when an argument is left out, as the ``duragent`` CLI does: Temporal's
standard variables (``TEMPORAL_ADDRESS``...) and ``DURAGENT_TASK_QUEUE``; the worker
reads all of :class:`~duragent.worker.settings.Settings`. Below them nothing reads it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar, overload

from pydantic import JsonValue
from temporalio.client import Client

from duragent.activities.tools.registry import Tool
from duragent.worker.agents import Agent, agent_spec, spec_input
from duragent.worker.client import connect as _connect
from duragent.worker.client import new_agent_id, start_agent
from duragent.worker.handle import AgentHandle
from duragent.worker.main import AgentWorkers, agent_workers
from duragent.worker.settings import DEFAULT_TASK_QUEUE, Settings

OutputT = TypeVar("OutputT")


async def connect(address: str | None = None, *, namespace: str | None = None) -> Client:
    """A Temporal client with duragent's data converter and plugin.

    Args:
        address: ``host:port``; ``TEMPORAL_ADDRESS`` (else ``localhost:7233``) when
            ``None``. TLS, API keys and profiles come from Temporal's own environment
            configuration, as for the ``temporal`` CLI.
        namespace: ``TEMPORAL_NAMESPACE`` (else ``default``) when ``None``.

    Raises:
        duragent.worker.client.TemporalUnavailable: Nothing answers at the address.
    """
    env = dict(os.environ)
    if address is not None:
        env["TEMPORAL_ADDRESS"] = address
    if namespace is not None:
        env["TEMPORAL_NAMESPACE"] = namespace
    return await _connect(env)


@overload
async def start(
    client: Client,
    agent: Agent[OutputT],
    task: str,
    *,
    id: str | None = None,
    task_queue: str | None = None,
    **overrides: Any,
) -> AgentHandle[OutputT]: ...


@overload
async def start(
    client: Client,
    agent: str,
    task: str,
    *,
    id: str | None = None,
    task_queue: str | None = None,
    **overrides: Any,
) -> AgentHandle[Any]: ...


async def start(
    client: Client,
    agent: Agent[Any] | str,
    task: str,
    *,
    id: str | None = None,
    task_queue: str | None = None,
    **overrides: Any,
) -> AgentHandle[Any]:
    """Start a run of an agent definition; returns its typed handle at once.

    Args:
        client: From :func:`connect`.
        agent: The definition, or the name of one a worker of the queue registered
            (looked up from a worker: see :mod:`duragent.workflows.catalog`).
        task: What to do: the first user message.
        id: The agent's id (its workflow id); a new one when ``None``. Starting again
            with the id of a running agent returns that agent.
        task_queue: The workers' queue; ``DURAGENT_TASK_QUEUE`` (else ``duragent``).
        **overrides: Any ``AgentInput`` field over the definition's (``model``,
            ``owner``, ``max_cycles``, ``workspace``...).

    Raises:
        duragent.AgentNotFound: No definition of that name on the queue's workers.
        TypeError: An override names no setting.
    """
    queue = task_queue or os.environ.get("DURAGENT_TASK_QUEUE") or DEFAULT_TASK_QUEUE
    if isinstance(agent, str):
        spec = await agent_spec(client, queue, agent)
        input = spec_input(spec, task, **overrides)
        # Its type is in the worker's code, not here: the output as JSON.
        output = _as_json if input.output_schema is not None else None
    else:
        input = agent.input(task, **overrides)
        output = agent.output if agent.output_type is not None else None
    handle = await start_agent(client, input, task_queue=queue, agent_id=id or new_agent_id())
    return AgentHandle(client, handle.id, output=output)


def _as_json(value: JsonValue) -> JsonValue:
    return value


async def run(client: Client, agent: Agent[OutputT], task: str, **options: Any) -> OutputT:
    """:func:`start`, then wait for the result (typed when the agent has an output type).

    Raises:
        duragent.AgentFailed: The run ended without completing.
    """
    handle = await start(client, agent, task, **options)
    return await handle.result()


@asynccontextmanager
async def Worker(
    client: Client,
    *,
    agents: Sequence[Agent[Any]] = (),
    tools: Sequence[Tool[Any]] = (),
    task_queue: str | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[AgentWorkers]:
    """Run a worker in this process while the block runs; it stops gracefully after.

    It serves duragent's workflows and activities, the built-in tools, the agents'
    tools and ``tools``, and answers the catalog with ``agents``. Its settings come
    from the environment (``OPENAI_BASE_URL``, ``DURAGENT_WORKSPACE``,
    ``duragent.toml``...; see :class:`~duragent.worker.settings.Settings`).

    Args:
        client: From :func:`connect`.
        agents: Agent definitions: their tools are registered, and clients can start
            them by name.
        tools: More tool functions (``@duragent.tool``), besides the built-in ones.
        task_queue: ``DURAGENT_TASK_QUEUE`` (else ``duragent``) when ``None``.
        env: The environment to read settings from (``os.environ`` when ``None``).
    """
    settings = Settings.from_env(os.environ if env is None else env)
    if task_queue is not None:
        settings = replace(settings, task_queue=task_queue)
    async with agent_workers(client, settings, extra_tools=tools, agents=agents) as workers:
        yield workers


__all__ = ["Worker", "connect", "run", "start"]
