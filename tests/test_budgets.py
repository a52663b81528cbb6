"""Budgets that hold, on a real server (issue 9, item 7).

Tokens split with children, a wall-clock deadline children inherit, a cost budget priced
by the worker's table, and an idempotency key unique per cycle.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from duragent.activities.providers import Price, PriceTable
from duragent.activities.tools import ToolContext, default_tools, tool
from duragent.worker.main import agent_worker
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentStatus, SubAgentSpec, TranscriptQuery
from tests.conftest import Harness, eventually
from tests.test_agent import call, finish, start, tool_messages
from tests.test_operating import ask
from tests.test_sub_agents import child_script
from tests.workflow_checks import assert_no_failed_workflow_task, started_input, waiting_user

PARENT_CALL = 300
"""Tokens of each of the parent's LLM calls (as the scripted LLM reports them)."""
CHILD_CALL = 200
HELPER = {"helper": SubAgentSpec(description="small jobs", model="child-model", max_cycles=10)}


def used(tokens: int) -> dict[str, int]:
    """A step's ``usage``: exactly ``tokens`` tokens, 2/3 of them input."""
    return {"prompt_tokens": tokens - tokens // 3, "completion_tokens": tokens // 3}


def busy_child(harness: Harness, tag: str, tokens: int) -> str:
    """A sub-agent script that lists files forever, each call costing ``tokens``."""
    return child_script(harness, tag, [{**call_step("_list_files"), "usage": used(tokens)}])


def call_step(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [call(name, **arguments)]}


def batch(tasks: list[str]) -> dict[str, Any]:
    step = call_step("_batch_sub_tasks", agent="helper", tasks=tasks)
    return {**step, "usage": used(PARENT_CALL)}


async def test_a_token_budget_is_split_among_a_batch_of_sub_agents(harness: Harness) -> None:
    # The repro: max_tokens 1,500 and a batch of 4 children ended at 7,080 tokens.
    budget = 1_500
    marker = busy_child(harness, "busy", CHILD_CALL)
    task = harness.script([batch([f"job {i} {marker}" for i in range(4)]), finish()])
    async with harness.worker():
        handle = await start(harness, task, sub_agents=HELPER, max_tokens=budget)
        result = await handle.result()
        view = await handle.query(AgentWorkflow.status)
        children = [
            await started_input(harness.client, f"{handle.id}-call_0_0-{i}") for i in range(4)
        ]

    # Four children started together while 1,200 tokens were left: 300 each.
    assert [c.max_tokens for c in children] == [(budget - PARENT_CALL) // 4] * 4
    assert result.status is AgentStatus.BUDGET_EXCEEDED
    assert view.error is not None and view.error.startswith("token budget spent")
    assert result.error == view.error
    # Each child checks its share before each LLM call, so it overshoots by at most one
    # call; the parent stops before its next call. Hence: budget + one call per child.
    # (Without shares each child would run its 10 cycles: 300 + 4 * 2,000 tokens.)
    assert result.usage.total_tokens <= budget + 4 * CHILD_CALL
    assert len(harness.requests()) == 1  # the parent made no call once it was spent
    await assert_no_failed_workflow_task(handle)


async def test_a_spent_parent_starts_no_more_sub_tasks(harness: Harness) -> None:
    marker = busy_child(harness, "big", 500)
    task = harness.script([batch([f"job {i} {marker}" for i in range(3)]), finish()])
    async with harness.worker():
        handle = await start(
            harness, task, sub_agents=HELPER, max_tokens=1_000, max_concurrent_sub_tasks=1
        )
        result = await handle.result()
        page = await handle.query(AgentWorkflow.transcript, TranscriptQuery())

    # One at a time: 700 // 3 = 233 for the first (it spends 500), 200 // 2 = 100 for the
    # second (500 again), and nothing is left for the third.
    assert result.status is AgentStatus.BUDGET_EXCEEDED
    reports = json.loads(page.messages[-1].content or "")
    assert [r["status"] for r in reports] == ["budget_exceeded"] * 3
    assert "not started" not in reports[1]["error"]
    assert reports[2]["error"].startswith("sub-task ended budget_exceeded: not started: token")
    assert len([r for r in harness.llm.requests if r.script == marker]) == 2
    await assert_no_failed_workflow_task(handle)


async def test_a_deadline_ends_an_agent_waiting_for_a_reply(harness: Harness) -> None:
    task = harness.script([ask(), finish()])
    async with harness.worker():
        handle = await start(harness, task, max_duration=timedelta(seconds=2))
        waiting = await eventually(lambda: waiting_user(handle))
        result = await handle.result()  # nobody replies
        view = await handle.query(AgentWorkflow.status)

    assert waiting.deadline is not None
    assert result.status is AgentStatus.BUDGET_EXCEEDED
    assert result.error == f"deadline passed: {waiting.deadline.isoformat()}"
    assert view.deadline == waiting.deadline
    assert len(harness.requests()) == 1
    await assert_no_failed_workflow_task(handle)


async def test_a_child_inherits_its_parents_deadline(harness: Harness) -> None:
    marker = child_script(harness, "quick", [finish("child done")])
    task = harness.script(
        [call_step("_create_sub_task", agent="helper", task=f"quick {marker}"), finish("ok")]
    )
    async with harness.worker():
        handle = await start(harness, task, sub_agents=HELPER, max_duration=timedelta(hours=1))
        result = await handle.result()
        parent = await handle.query(AgentWorkflow.status)
        child_id = f"{handle.id}-call_0_0-0"
        child = await harness.client.get_workflow_handle(child_id).query(AgentWorkflow.status)
        child_input = await started_input(harness.client, child_id)

    assert result.status is AgentStatus.COMPLETED
    assert parent.deadline is not None
    assert child_input.deadline == parent.deadline and child.deadline == parent.deadline
    assert child_input.max_tokens is None  # no token budget: none invented for the child


async def test_a_cost_budget_is_priced_by_the_workers_table(harness: Harness) -> None:
    task = harness.script([{**call_step("_list_files"), "usage": used(PARENT_CALL)}])
    # $1,000 per million tokens: each 300-token call costs $0.30.
    prices = PriceTable([Price(match="^scripted$", input_per_mtok=1_000, output_per_mtok=1_000)])
    settings = dataclasses.replace(harness.settings(), prices=prices)
    async with agent_worker(harness.client, settings):
        handle = await start(harness, task, max_cost_usd=0.5)
        result = await handle.result()
        view = await handle.query(AgentWorkflow.status)
        usage = await handle.query(AgentWorkflow.usage)

    assert result.status is AgentStatus.BUDGET_EXCEEDED
    assert result.error == "cost budget spent: $0.6000 of $0.5000"
    assert result.usage.cost_usd == pytest.approx(0.6)
    assert view.usage.cost_usd == pytest.approx(0.6)
    assert usage.total.cost_usd == pytest.approx(0.6)
    assert usage.by_model["scripted"].cost_usd == pytest.approx(0.6)
    assert len(harness.requests()) == 2


# --- the idempotency key --------------------------------------------------------------


class KeyArgs(BaseModel):
    pass


@tool(name="_key")
async def key_tool(args: KeyArgs, ctx: ToolContext) -> str:
    """Return this call's idempotency key."""
    return ctx.idempotency_key


async def test_a_reused_tool_call_id_gets_a_new_key_each_cycle(harness: Harness) -> None:
    same = {"tool_calls": [{"name": "_key", "arguments": {}, "id": "call_same"}]}
    task = harness.script([same, same, finish()])
    async with harness.worker(tools=[*default_tools(), key_tool]):
        handle = await start(harness, task)
        await handle.result()

    first, second = tool_messages(harness.requests()[-1].body)
    assert first != second
    assert first == f"{handle.id}:1:call_same"
    assert second == f"{handle.id}:2:call_same"
