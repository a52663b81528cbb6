"""Provider outages: agents wait them out, say so, and fail or wait only past the policy.

The scripted LLM answers every request of a test's script with 503 for a while
(``ScriptedLLMServer.outage``), as a provider down for a minute does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError

from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    AgentResult,
    AgentStatus,
    LLMPolicy,
    MemoryPolicy,
    OnRetriesExhausted,
    ReplyInput,
    RetryInput,
)
from tests.conftest import Harness, eventually
from tests.test_agent import finish, start
from tests.test_long_runs import TOOLS, summary_script, tick_step
from tests.test_operating import ask, status_is

Handle = WorkflowHandle[Any, AgentResult]

# Quick activity retries, a short pause between rounds: the same shape as the defaults
# (six attempts up to a minute apart, then one-minute rounds for an hour), scaled down.
QUICK = {"initial_interval_seconds": 0.2, "max_attempts": 3, "maximum_interval_seconds": 2.0}


def outage_requests(harness: Harness) -> int:
    return sum(1 for r in harness.requests() if r.fault == "outage")


async def failed_tasks(handle: Handle) -> int:
    return len(
        [
            e
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
    )


async def test_ten_agents_ride_out_a_one_minute_outage(harness: Harness) -> None:
    task = harness.script([ask(), finish("made it")])
    policy = LLMPolicy(**QUICK)
    async with harness.worker():
        handles = [await start(harness, task, llm_policy=policy) for _ in range(10)]

        async def all_asking() -> bool:
            return all([await status_is(h, AgentStatus.WAITING_USER) for h in handles])

        await eventually(all_asking, "every agent asking", within=60)
        # Every agent is mid-run; its next LLM call lands in the outage.
        harness.llm.outage(harness.marker, 60)
        for handle in handles:
            _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="go on"))

        async def all_waiting_on_provider() -> bool:
            views = [await h.query(AgentWorkflow.status) for h in handles]
            return all(v.status is AgentStatus.WAITING_PROVIDER for v in views)

        await eventually(all_waiting_on_provider, "every agent waiting_provider", within=60)
        view = await handles[0].query(AgentWorkflow.status)
        assert view.provider_outage is not None and "503" in view.provider_outage.last_error
        assert view.provider_outage.next_retry_at is not None
        # Operators and dashboards see it through visibility, as for any other status.
        query = f"TaskQueue = '{harness.task_queue}' AND DuragentStatus = 'waiting_provider'"
        await eventually(
            lambda: _count(harness, query, 10), "visibility shows waiting_provider", within=30
        )

        results = [await h.result() for h in handles]
        views = [await h.query(AgentWorkflow.status) for h in handles]

    assert [r.status for r in results] == [AgentStatus.COMPLETED] * 10
    assert all(r.answer == "made it" for r in results)
    assert all(v.provider_outage is None for v in views)
    assert outage_requests(harness) >= 20  # every agent met the outage more than once
    for handle in handles:
        assert await failed_tasks(handle) == 0


async def _count(harness: Harness, query: str, expected: int) -> bool:
    count = await harness.client.count_workflows(query)
    return count.count == expected


async def test_an_outage_longer_than_the_policy_fails_with_the_cause(harness: Harness) -> None:
    task = harness.script([finish()])
    # Five minutes of outage against a three-second budget: the long case, scaled.
    harness.llm.outage(harness.marker, 300)
    policy = LLMPolicy(**QUICK, max_retry_duration=timedelta(seconds=3))
    async with harness.worker():
        handle = await start(harness, task, llm_policy=policy)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        view = await handle.query(AgentWorkflow.status)
    harness.llm.outage(harness.marker, 0)

    assert view.status is AgentStatus.FAILED
    assert view.error is not None
    assert "the LLM provider kept failing for" in view.error and "(503)" in view.error
    assert "ProviderUnavailable" in str(err.value.cause)
    assert outage_requests(harness) >= 2 * QUICK["max_attempts"]  # at least two rounds


async def test_an_operator_retries_once_the_provider_is_back(harness: Harness) -> None:
    task = harness.script([finish("after the retry")])
    harness.llm.outage(harness.marker, 600)
    policy = LLMPolicy(
        **QUICK, max_retry_duration=timedelta(seconds=2), on_exhausted=OnRetriesExhausted.WAIT
    )
    async with harness.worker():
        handle = await start(harness, task, llm_policy=policy)

        async def awaiting_operator() -> bool:
            view = await handle.query(AgentWorkflow.status)
            return view.provider_outage is not None and view.provider_outage.next_retry_at is None

        await eventually(awaiting_operator, "retries ran out", within=60)
        assert await status_is(handle, AgentStatus.WAITING_PROVIDER)
        harness.llm.outage(harness.marker, 0)
        await handle.execute_update(AgentWorkflow.retry, RetryInput(reason="provider is back"))
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED and result.answer == "after the retry"
    assert await failed_tasks(handle) == 0


async def test_retry_is_refused_when_nothing_waits_for_it(harness: Harness) -> None:
    task = harness.script([ask(), finish()])
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: status_is(handle, AgentStatus.WAITING_USER), within=30)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(AgentWorkflow.retry, RetryInput())
        _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="fine"))
        result = await handle.result()

    assert "not waiting for a retry (status waiting_user)" in str(err.value.cause)
    assert result.status is AgentStatus.COMPLETED
    assert await failed_tasks(handle) == 0


async def test_errors_that_retrying_cannot_fix_still_fail_at_once(harness: Harness) -> None:
    task = harness.script([{"content": "x", "faults": [{"status": 401}] * 3}])
    async with harness.worker():
        handle = await start(harness, task, llm_policy=LLMPolicy(**QUICK))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        view = await handle.query(AgentWorkflow.status)

    assert view.status is AgentStatus.FAILED
    assert view.error is not None and "authentication failed (401)" in view.error
    assert view.provider_outage is None
    assert len(harness.requests()) == 1  # not retried: a bad key stays bad


async def test_a_compaction_rides_out_an_outage_too(harness: Harness) -> None:
    summary_script(harness)
    # The summary request quotes the conversation, so this marker finds it whichever
    # summary script answers it (the first one registered in the session does).
    marker = f"{harness.marker}-tick"
    harness.llm.outage(marker, 600)
    steps: list[dict[str, Any]] = [{**tick_step(), "content": marker} for _ in range(3)]
    steps.append({**finish("compacted"), "faults": [{"context_length_exceeded": True}]})
    task = harness.script(steps)
    async with harness.worker(tools=TOOLS):
        handle = await start(
            harness, task, memory=MemoryPolicy(keep_recent_turns=1), llm_policy=LLMPolicy(**QUICK)
        )
        await eventually(
            lambda: status_is(handle, AgentStatus.WAITING_PROVIDER), "summary waits", within=60
        )
        harness.llm.outage(marker, 0)
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED and result.answer == "compacted"
    assert result.compactions == 1
    summaries = [r for r in harness.llm.requests if marker in str(r.body["messages"][-1])]
    assert sum(1 for r in summaries if r.fault == "outage") >= 3
    assert await failed_tasks(handle) == 0
