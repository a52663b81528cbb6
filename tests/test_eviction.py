"""Agents evicted from a worker's cache mid-cycle, with tracing on: nothing leaks.

A worker that keeps one workflow in memory evicts an agent each time another one gets
a workflow task. Eviction tears the run's coroutines down, sometimes outside the
workflow's event loop: a run the SDK could not tear down in its loop (a worker shutting
down under load) is left to the garbage collector, which closes its coroutines with
``GeneratorExit`` on whatever thread it runs. The span helper of ``workflows.telemetry``
and the worker's tracing interceptor are then on the stack; they must not call workflow
APIs there: that raised ``_NotInWorkflowEventLoopError`` from the coroutine's close,
which Python reports as an unraisable exception (a ``make test`` that failed with every
test passing) and which the worker would log on every such eviction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from duragent.activities.tools.background import BackgroundCommands
from duragent.worker.client import start_agent
from duragent.worker.devserver import DevServer
from duragent.worker.main import agent_worker
from duragent.worker.plugin import build_openai_client, worker_activities
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.worker.settings import Settings
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentInput, AgentResult, AgentStatus, ReplyInput
from tests.conftest import Harness, eventually
from tests.observability_support import OTLPReceiver, isolated_global_tracer_provider
from tests.test_agent import call, finish
from tests.test_observability_tracing import traced_harness, waiting_for_reply

AGENTS = 4
CYCLES = 5
# The SDK logs each eviction at debug level on this logger, with core's reason.
_SDK_WORKFLOW_LOGGER = "temporalio.worker._workflow"


@dataclasses.dataclass
class Leaks:
    """What escaped while the test ran: unraisable exceptions and error log records."""

    unraisable: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    evictions: list[str] = dataclasses.field(default_factory=list)
    """The SDK's debug line per eviction, with its reason: proof the test evicted."""


class _Records(logging.Handler):
    def __init__(self, leaks: Leaks) -> None:
        super().__init__(level=logging.DEBUG)
        self._leaks = leaks

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == _SDK_WORKFLOW_LOGGER and str(record.msg).startswith("Evicting"):
            self._leaks.evictions.append(record.getMessage())
        if record.levelno < logging.ERROR:
            return
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        self._leaks.errors.append(f"{record.name}: {text}")


@pytest.fixture
def leaks() -> Iterator[Leaks]:
    """Capture unraisable exceptions and ERROR log records of every logger."""
    found = Leaks()

    def hook(unraisable: Any) -> None:
        found.unraisable.append(f"{unraisable.exc_type.__name__}: {unraisable.exc_value}")
        previous_hook(unraisable)  # pytest's: an unraisable exception fails the test too

    previous_hook = sys.unraisablehook
    sys.unraisablehook = hook
    handler = _Records(found)
    root = logging.getLogger()
    root.addHandler(handler)
    sdk = logging.getLogger(_SDK_WORKFLOW_LOGGER)
    previous_level = sdk.level
    sdk.setLevel(logging.DEBUG)
    try:
        yield found
    finally:
        sdk.setLevel(previous_level)
        root.removeHandler(handler)
        sys.unraisablehook = previous_hook


@asynccontextmanager
async def unsafely_evicting_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    """The product's worker, but an evicted run is left to the garbage collector.

    Safe eviction (the SDK's default) cancels a run's tasks inside its event loop; a run
    it cannot tear down that way (a worker shutting down under load) is dropped, and its
    coroutines are closed later, wherever the collector runs. The SDK's
    ``disable_safe_workflow_eviction`` takes that path on every eviction, so the test
    does not depend on luck.
    """
    with BackgroundCommands() as background:
        async with build_openai_client(settings.llm) as llm_client:
            # What ``worker.main.build_worker`` builds; the client carries the plugin.
            activities = worker_activities(
                client=llm_client,
                workspace=settings.workspace,
                background=background,
                store=settings.store_dir,
            )
            async with Worker(
                client,
                task_queue=settings.task_queue,
                activities=activities,
                max_cached_workflows=settings.max_cached_workflows,
                disable_safe_workflow_eviction=True,
            ) as worker:
                yield worker


WorkerFactory = Callable[[Client, Settings], AbstractAsyncContextManager[Worker]]


def _agent(h: Harness) -> Harness:
    """Another agent on ``h``'s queue and servers, with a script of its own."""
    return Harness(client=h.client, llm=h.llm, workspace=h.workspace, task_queue=h.task_queue)


async def _start_cycling(h: Harness) -> WorkflowHandle[Any, AgentResult]:
    agent = _agent(h)
    steps = [{"tool_calls": [call("_list_files", path=".")]} for _ in range(CYCLES)]
    task = agent.script([*steps, finish("cycled")])
    return await start_agent(
        h.client, AgentInput(task=task, model="scripted"), task_queue=h.task_queue
    )


async def _start_asking(h: Harness) -> WorkflowHandle[Any, AgentResult]:
    agent = _agent(h)
    task = agent.script([{"tool_calls": [call("_ask_user", question="Go on?")]}, finish("asked")])
    return await start_agent(
        h.client, AgentInput(task=task, model="scripted"), task_queue=h.task_queue
    )


@pytest.mark.parametrize(
    "make_worker",
    [
        pytest.param(unsafely_evicting_worker, id="collected"),
        pytest.param(lambda client, settings: agent_worker(client, settings), id="stock"),
    ],
)
async def test_evictions_mid_cycle_leak_nothing_with_tracing_on(
    temporal: DevServer,
    llm: ScriptedLLMServer,
    tmp_path: Path,
    leaks: Leaks,
    make_worker: WorkerFactory,
) -> None:
    """Agents evicted mid-cycle, mid-question and done: no unraisable error, no error log.

    ``collected`` drops each evicted run for the garbage collector (the path that
    failed CI); ``stock`` is the product's worker, whose evictions cancel the run's
    tasks in its loop.
    """
    with OTLPReceiver() as receiver, isolated_global_tracer_provider():
        async with traced_harness(temporal, llm, receiver, tmp_path / "workspace") as h:
            # One workflow in memory: every task of another agent evicts the cached one,
            # whatever it is doing (an LLM call or a tool call in flight, or a question).
            settings = dataclasses.replace(h.settings(), max_cached_workflows=1)
            async with make_worker(h.client, settings):
                asking = [await _start_asking(h) for _ in range(AGENTS)]
                cycling = await asyncio.gather(*(_start_cycling(h) for _ in range(AGENTS)))
                for handle in asking:
                    await eventually(partial(waiting_for_reply, handle), "a pending question")
                results = await asyncio.gather(*(handle.result() for handle in cycling))
                for handle in asking:
                    _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="yes"))
                results += await asyncio.gather(*(handle.result() for handle in asking))
                # Evicted runs' coroutines are closed when collected.
                gc.collect()
        spans = receiver.snapshot()

    assert [r.status for r in results] == [AgentStatus.COMPLETED] * (2 * AGENTS)
    full = [e for e in leaks.evictions if e.endswith("Workflow cache full")]
    assert len(full) >= AGENTS * CYCLES, f"the agents were hardly evicted: {leaks.evictions}"
    assert {s.name for s in spans} >= {f"cycle {n}" for n in range(1, CYCLES + 2)}
    assert leaks.unraisable == [], "an evicted run's coroutine raised while being closed"
    span_errors = [e for e in leaks.errors if "event loop" in e or "span" in e.lower()]
    assert span_errors == [], "eviction logged errors about the span helper"
    assert leaks.errors == [], "errors logged while agents were evicted"
