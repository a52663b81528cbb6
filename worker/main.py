"""The worker process: read settings, connect, run until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from openai import AsyncOpenAI
from temporalio.client import Client
from temporalio.worker import Worker

from duragent.activities.llm_providers import Provider
from duragent.activities.tools import Tool
from duragent.activities.tools.background import BackgroundCommands
from duragent.activities.tools.mcp import McpServers
from duragent.activities.tools.mirror import WorkspaceMirrors
from duragent.activities.tools.sandbox import SandboxMode
from duragent.worker.agents import Agent, agent_tools
from duragent.worker.plugin import (
    DuragentPlugin,
    agent_workspace,
    blob_store,
    build_openai_client,
    build_provider_clients,
    host_activities,
    host_queue_name,
    load_modules,
    mcp_servers,
    share_workflow_code,
    shell_sandbox,
    worker_activities,
    worker_interceptors,
)
from duragent.worker.settings import Settings
from duragent.worker.telemetry import Telemetry

log = logging.getLogger("duragent.worker")

# In-flight activities get this long to finish after SIGTERM before they are cancelled;
# what does not finish is retried on another worker, so a deploy loses no work.
GRACEFUL_SHUTDOWN = timedelta(seconds=30)
# A workflow task offered to a worker's sticky queue waits this long for that worker
# before any worker may take it (the SDK's default). A busy worker takes its tasks
# seconds late: at 3 s, 200 agents on one worker bounced 0.5 to 1.1 tasks each to the
# normal queue (a timeout, the whole history sent again, a wait behind new agents; the
# server's CPU per agent 1.16x the bare loop's, 1.01x at 10 s, which bounced none; see
# bench.cycle_cost). After a SIGKILL the retried activity resets the sticky queue
# (activities.sticky), so recovery does not wait for this (still 10 s from the kill to
# the next cycle); a reply or a signal to a killed worker's agent does, once.
STICKY_TIMEOUT = timedelta(seconds=10)


# A host queue's slots: each background command holds one (an idle watch) as long as it
# runs, so they are many; the worker's CPU, not its slots, bounds the shell work it takes.
HOST_SLOTS = 1_000


@dataclass(frozen=True)
class AgentWorkers:
    """One worker process's two Temporal workers and who they are.

    ``shared`` polls the task queue of every worker (workflows and activities); ``host``
    polls this process's own queue, ``host_queue``, where runs pinned to it send their
    shell work (see :mod:`workflows.shell_host`).
    """

    shared: Worker
    host: Worker
    host_queue: str
    identity: str
    """``pid@host-token``: in history, the identity of each activity attempt's worker."""


def worker_identity(task_queue: str) -> tuple[str, str]:
    """This process's identity and host queue: unique per start, readable by operators.

    A restarted worker gets a new host queue, so the runs pinned to the old one see it
    unserved and move on, instead of finding background commands it no longer has.
    """
    identity = f"{os.getpid()}@{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    return identity, host_queue_name(task_queue, identity)


@asynccontextmanager
async def agent_worker(
    client: Client, settings: Settings, *, tools: Sequence[Tool[Any]] | None = None
) -> AsyncIterator[Worker]:
    """Run a worker inside the block; on exit it shuts down gracefully.

    The worker owns its OpenAI-compatible client, its background commands, its local
    copies of object-store workspaces and its MCP servers' connections (and stdio
    servers' processes): built here, closed after the last activity has finished.
    Yields the worker of the shared queue (its host queue runs beside it).
    """
    async with agent_workers(client, settings, tools=tools) as workers:
        yield workers.shared


@asynccontextmanager
async def agent_workers(
    client: Client,
    settings: Settings,
    *,
    tools: Sequence[Tool[Any]] | None = None,
    extra_tools: Sequence[Tool[Any]] = (),
    agents: Sequence[Agent[Any]] = (),
) -> AsyncIterator[AgentWorkers]:
    """:func:`agent_worker`, yielding both of the process's workers (see AgentWorkers).

    Args:
        client: The Temporal client (with duragent's plugin).
        settings: The process's settings.
        tools: The tools offered, in place of the built-in set.
        extra_tools: Tools offered besides ``tools`` (or the built-in set).
        agents: Agent definitions: listed to clients, their tools registered.
    """
    sandbox = shell_sandbox(settings.shell)
    if sandbox.mode is SandboxMode.NONE and settings.shell.sandbox is None:
        log.warning(
            "bubblewrap (bwrap) not found: shell commands run WITHOUT a sandbox and can "
            "read this worker's files and processes; install bubblewrap, or set "
            "DURAGENT_SHELL_SANDBOX=none to run this way on purpose"
        )
    with (
        BackgroundCommands(sandbox=sandbox) as background,
        _local_copies(settings) as mirrors,
    ):
        async with AsyncExitStack() as clients:
            llm_client = await clients.enter_async_context(build_openai_client(settings.llm))
            providers = build_provider_clients(settings)
            for provider in providers.values():
                await clients.enter_async_context(provider.client)
            mcp = await clients.enter_async_context(mcp_servers(settings))
            workers = build_workers(
                client,
                settings,
                llm_client,
                tools=tools,
                extra_tools=extra_tools,
                agents=agents,
                providers=providers,
                background=background,
                mirrors=mirrors,
                mcp=mcp,
            )
            # The host queue is served before any run can claim it, and after the last
            # shared-queue task: shell calls in flight finish within the graceful timeout.
            async with workers.host, workers.shared:
                yield workers


def _local_copies(
    settings: Settings,
) -> contextlib.AbstractContextManager[WorkspaceMirrors | None]:
    """Where shell commands get a folder: only an object-store workspace needs copies."""
    if settings.workspace_store is None:
        return contextlib.nullcontext()
    return contextlib.closing(WorkspaceMirrors())


def build_workers(
    client: Client,
    settings: Settings,
    llm_client: AsyncOpenAI,
    *,
    tools: Sequence[Tool[Any]] | None = None,
    extra_tools: Sequence[Tool[Any]] = (),
    agents: Sequence[Agent[Any]] = (),
    providers: Mapping[str, Provider] | None = None,
    background: BackgroundCommands | None = None,
    mirrors: WorkspaceMirrors | None = None,
    mcp: McpServers | None = None,
) -> AgentWorkers:
    """The worker for the agent workflow and its activities, and its host-queue worker.

    The modules ``settings.load`` names are imported here: their tools join ``tools``
    (the built-in set when ``None``), their tasks are what graphs' task nodes run, and
    their agent definitions join ``agents``, whose tools are registered too.

    Raises:
        ModuleLoadError: A module to load cannot be imported, or clashes.
    """
    share_workflow_code()
    loaded = load_modules(settings.load)
    if settings.load:
        log.info("%s", loaded.summary())
    identity, host_queue = worker_identity(settings.task_queue)
    definitions = [*agents, *(a for a in loaded.agents if a not in agents)]
    activities = worker_activities(
        client=llm_client,
        workspace=agent_workspace(settings),
        tools=loaded.all_tools(tools, [*extra_tools, *agent_tools(definitions)]),
        tasks=loaded.tasks,
        agents=definitions,
        providers=providers,
        background=background,
        store=blob_store(settings),
        families=settings.model_families,
        prices=settings.prices,
        mirrors=mirrors,
        host_queue=host_queue,
        worker=identity,
        mcp=mcp,
    )
    # A client made by ``worker.client.connect`` carries the plugin already, and the
    # worker inherits it; a plugin given twice would register the workflow twice.
    has_plugin = any(isinstance(p, DuragentPlugin) for p in client.config()["plugins"])
    plugins = [] if has_plugin else [DuragentPlugin()]
    shared = Worker(
        client,
        task_queue=settings.task_queue,
        activities=activities,
        plugins=plugins,
        interceptors=worker_interceptors(settings),
        identity=identity,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
        max_cached_workflows=settings.max_cached_workflows,
    )
    host = Worker(
        client,
        task_queue=host_queue,
        activities=host_activities(activities),
        plugins=plugins,
        interceptors=worker_interceptors(settings),
        identity=identity,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_concurrent_activities=HOST_SLOTS,
    )
    return AgentWorkers(shared=shared, host=host, host_queue=host_queue, identity=identity)


async def run_worker(client: Client, settings: Settings) -> None:
    """Run a worker until SIGTERM or SIGINT, then shut down gracefully.

    With the client's telemetry (see ``worker.telemetry``), the worker serves
    ``/metrics``, ``/healthz`` and ``/readyz`` on its metrics port meanwhile, from before
    it polls until its in-flight activities have finished.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health = _Health(stop)
    telemetry = Telemetry.of(client)
    async with AsyncExitStack() as stack:
        if telemetry is not None:
            server = await stack.enter_async_context(
                telemetry.serve(client, settings.task_queue, live=health.live, ready=health.ready)
            )
            if server is not None:
                log.info("metrics on port %d: /metrics, /healthz, /readyz", server.port)
        health.worker = await stack.enter_async_context(agent_worker(client, settings))
        log.info("worker polling task queue %r", settings.task_queue)
        await stop.wait()
        log.info("shutting down: finishing in-flight activities")
    log.info("worker stopped")


class _Health:
    """What the probes report: the worker runs (live), and is not stopping (ready)."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.worker: Worker | None = None
        self._stop = stop

    def live(self) -> bool:
        return self.worker is not None and self.worker.is_running

    def ready(self) -> bool:
        return self.live() and not self._stop.is_set()
