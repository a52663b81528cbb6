"""A run outlives its workers: replaced between cycles, or killed with SIGKILL mid-call."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, TaskQueueKind
from temporalio.client import WorkflowHandle

from duragent.worker.client import start_agent
from duragent.worker.main import agent_worker
from duragent.worker.settings import Settings
from duragent.workflows.models import ActivityPolicy, AgentInput, AgentStatus
from tests.conftest import Harness, eventually
from tests.processes import cli, spawn_worker, worker_env

CYCLES = 4  # three logging cycles, then _task_finish


def logging_script(slow_step: int, delay: float) -> list[dict[str, Any]]:
    """Each cycle appends one line to log.txt, so a repeated cycle would show twice."""
    steps: list[dict[str, Any]] = [
        {
            "tool_calls": [
                {
                    "name": "_write_file",
                    "arguments": {"path": "log.txt", "content": f"cycle {i}\n", "append": True},
                }
            ]
        }
        for i in range(CYCLES - 1)
    ]
    steps.append({"tool_calls": [{"name": "_task_finish", "arguments": {"message": "logged"}}]})
    steps[slow_step]["delay_seconds"] = delay
    return steps


async def scheduled_llm_calls(handle: WorkflowHandle[Any, Any]) -> int:
    return len(
        [
            e
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_type.name == "duragent.llm_chat"
        ]
    )


async def queue_after_retried_attempt(handle: WorkflowHandle[Any, Any]) -> int:
    """The kind of queue the workflow task after a retried activity's completion went to."""
    retried, completed = False, False
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            retried = e.activity_task_started_event_attributes.attempt > 1
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed = retried
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED and completed:
            return e.workflow_task_scheduled_event_attributes.task_queue.kind
    raise AssertionError("no retried activity completed")


def assert_each_cycle_once(workspace: Path) -> None:
    lines = (workspace / "log.txt").read_text().splitlines()
    assert lines == [f"cycle {i}" for i in range(CYCLES - 1)]


async def test_worker_replaced_between_cycles_repeats_no_cycle(harness: Harness) -> None:
    task = harness.script(logging_script(slow_step=1, delay=1.0))
    async with harness.worker():
        handle = await start_agent(
            harness.client, AgentInput(task=task, model="scripted"), task_queue=harness.task_queue
        )
        await eventually(lambda: any(r.step == 1 for r in harness.requests()))
        # Leaving the block shuts worker A down gracefully while cycle 2's LLM call runs.
    async with harness.worker():  # worker B: an empty cache, so it replays history
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    assert result.cycles == CYCLES
    assert await scheduled_llm_calls(handle) == CYCLES
    assert Counter(r.step for r in harness.requests()) == dict.fromkeys(range(CYCLES), 1)
    assert_each_cycle_once(harness.folder(handle.id))


async def test_worker_killed_mid_llm_call_resumes_on_a_new_process(
    harness: Harness, tmp_path: Path
) -> None:
    task = harness.script(logging_script(slow_step=1, delay=3.0))
    env = worker_env(harness)
    # A short heartbeat timeout, so the killed attempt is retried in seconds, not minutes.
    policy = ActivityPolicy(heartbeat_seconds=1.0, initial_interval_seconds=0.1)
    first = await spawn_worker(env, tmp_path / "worker-1.log")
    try:
        handle = await start_agent(
            harness.client,
            AgentInput(task=task, model="scripted", llm_policy=policy),
            task_queue=harness.task_queue,
        )
        await eventually(lambda: any(r.step == 1 for r in harness.requests()), within=60)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    second = await spawn_worker(env, tmp_path / "worker-2.log")
    try:
        result = await cli(env, "result", handle.id, "--wait")
    finally:
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 60) == 0  # graceful exit on SIGTERM

    assert result.returncode == 0, result.stderr
    assert "status: completed" in result.stdout and "answer: logged" in result.stdout
    assert await scheduled_llm_calls(handle) == CYCLES  # the attempt was retried, not the cycle
    steps = Counter(r.step for r in harness.requests())
    assert steps[1] == 2 and all(steps[s] == 1 for s in (0, 2, 3))
    assert_each_cycle_once(harness.folder(handle.id))
    # The retried attempt reset the sticky queue: the next workflow task was not offered to
    # the dead worker first (where it would have waited out the sticky timeout).
    assert await queue_after_retried_attempt(handle) == TaskQueueKind.TASK_QUEUE_KIND_NORMAL


async def hand_over(harness: Harness, first: Settings, second: Settings) -> list[str]:
    """Start an agent on a worker with ``first``, finish it on one with ``second``.

    Returns:
        The messages of the activity failures on the way.
    """
    task = harness.script(logging_script(slow_step=1, delay=1.0))
    async with agent_worker(harness.client, first):
        handle = await start_agent(
            harness.client, AgentInput(task=task, model="scripted"), task_queue=harness.task_queue
        )
        await eventually(lambda: any(r.step == 1 for r in harness.requests()))
    async with agent_worker(harness.client, second):
        result = await handle.result()
    assert result.status is AgentStatus.COMPLETED
    assert_each_cycle_once(harness.folder(handle.id))
    return [
        e.activity_task_failed_event_attributes.failure.message
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
    ]


async def test_a_worker_without_the_stored_transcript_gets_it_whole(
    harness: Harness, tmp_path: Path
) -> None:
    # The second worker has its own, empty store: as if it ran on another machine.
    elsewhere = dataclasses.replace(harness.settings(), store_dir=tmp_path / "other-store")
    failures = await hand_over(harness, harness.settings(), elsewhere)
    assert any("is not in the store" in f for f in failures)  # then resent whole
