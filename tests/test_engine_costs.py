"""The engine's per-call savings keep its behaviour: cached tool schemas, a raw body."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType

from activities.tools import ToolRegistry, default_tools
from tests.conftest import Harness
from worker.client import start_agent
from workflows.models import AgentInput, AgentStatus, LLMPolicy


def test_tool_schemas_are_built_once_per_worker() -> None:
    registry = ToolRegistry(default_tools())
    names = ["_read_file", "_task_finish", "no_such_tool"]
    first = registry.schemas(names)
    again = registry.schemas(iter(names))  # any iterable of the same names
    assert [t["function"]["name"] for t in first] == ["_read_file", "_task_finish"]
    assert all(a is b for a, b in zip(first, again, strict=True))
    other = registry.schemas(["_task_finish"])
    assert other[0] is first[1]  # one entry per tool, whatever list it is in


def test_a_changed_schema_list_does_not_change_the_next_one() -> None:
    registry = ToolRegistry(default_tools())
    first = registry.schemas(["_read_file"])
    first.clear()
    assert [t["function"]["name"] for t in registry.schemas(["_read_file"])] == ["_read_file"]


# --- the LLM heartbeat timeout: short for recovery, never too short for a slow model ---


async def test_a_model_slower_than_the_heartbeat_timeout_is_not_taken_for_dead(
    harness: Harness,
) -> None:
    policy = LLMPolicy()
    assert policy.heartbeat_seconds is not None and policy.heartbeat_seconds <= 6  # recovery
    slow = 12.0  # more than twice the heartbeat timeout, before the first byte
    assert slow > 2 * policy.heartbeat_seconds
    finish = {"name": "_task_finish", "arguments": {"message": "done"}}
    task = harness.script(
        [{"content": "thinking", "delay_seconds": slow}, {"tool_calls": [finish]}]
    )
    async with harness.worker():
        handle = await start_agent(
            harness.client, AgentInput(task=task, model="scripted"), task_queue=harness.task_queue
        )
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    assert [r.step for r in harness.requests()] == [0, 1]  # each step asked once
    events = [e async for e in handle.fetch_history_events()]
    assert not [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT]
    started = [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert started and set(started) == {1}
