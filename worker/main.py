"""The worker process: read settings, connect, run until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from openai import AsyncOpenAI
from temporalio.client import Client
from temporalio.worker import Worker

from activities.tools import Tool
from activities.tools.background import BackgroundCommands
from activities.tools.sandbox import SandboxMode
from worker.plugin import (
    DuragentPlugin,
    agent_workspace,
    blob_store,
    build_openai_client,
    precompile_workflows,
    shell_sandbox,
    worker_activities,
    worker_interceptors,
)
from worker.settings import Settings
from worker.telemetry import Telemetry

log = logging.getLogger("duragent.worker")

# In-flight activities get this long to finish after SIGTERM before they are cancelled;
# what does not finish is retried on another worker, so a deploy loses no work.
GRACEFUL_SHUTDOWN = timedelta(seconds=30)
# A workflow task offered to a dead worker's sticky queue waits this long before any
# worker may take it: after a SIGKILL it is the last wait before the run moves on (the
# SDK's 10 s default doubled the recovery time). A busy live worker that misses it only
# replays the run's history from the normal queue.
STICKY_TIMEOUT = timedelta(seconds=3)


@asynccontextmanager
async def agent_worker(
    client: Client, settings: Settings, *, tools: Sequence[Tool[Any]] | None = None
) -> AsyncIterator[Worker]:
    """Run a worker inside the block; on exit it shuts down gracefully.

    The worker owns its OpenAI-compatible client and its background commands: built
    here, closed after the last activity has finished.
    """
    sandbox = shell_sandbox(settings.shell)
    if sandbox.mode is SandboxMode.NONE and settings.shell.sandbox is None:
        log.warning(
            "bubblewrap (bwrap) not found: shell commands run WITHOUT a sandbox and can "
            "read this worker's files and processes; install bubblewrap, or set "
            "DURAGENT_SHELL_SANDBOX=none to run this way on purpose"
        )
    with BackgroundCommands(sandbox=sandbox) as background:
        async with build_openai_client(settings.llm) as llm_client:
            worker = build_worker(client, settings, llm_client, tools=tools, background=background)
            async with worker:
                yield worker


def build_worker(
    client: Client,
    settings: Settings,
    llm_client: AsyncOpenAI,
    *,
    tools: Sequence[Tool[Any]] | None = None,
    background: BackgroundCommands | None = None,
) -> Worker:
    """A worker for the agent workflow and its activities, with the duragent plugin."""
    precompile_workflows()
    activities = worker_activities(
        client=llm_client,
        workspace=agent_workspace(settings),
        tools=tools,
        background=background,
        store=blob_store(settings),
        families=settings.model_families,
        prices=settings.prices,
    )
    # A client made by ``worker.client.connect`` carries the plugin already, and the
    # worker inherits it; a plugin given twice would register the workflow twice.
    has_plugin = any(isinstance(p, DuragentPlugin) for p in client.config()["plugins"])
    return Worker(
        client,
        task_queue=settings.task_queue,
        activities=activities,
        plugins=[] if has_plugin else [DuragentPlugin()],
        interceptors=worker_interceptors(settings),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
        max_cached_workflows=settings.max_cached_workflows,
    )


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
