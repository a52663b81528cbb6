"""Sub-agents as child workflows, on a real server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from duragent.activities.tools import default_tools
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentStatus, PendingView, ReplyInput, SubAgentSpec
from tests.conftest import Harness, eventually
from tests.test_agent import call, finish, start, tool_messages
from tests.test_operating import process_gone, slow

HELPER = {"helper": SubAgentSpec(description="does small jobs", model="child-model", max_cycles=3)}


def child_script(harness: Harness, tag: str, steps: list[dict[str, Any]]) -> str:
    """A script for sub-tasks whose text carries ``tag``; returns the tag to put in a task."""
    marker = f"{harness.marker}-{tag}"
    harness.llm.add_script({"name": marker, "match": marker, "steps": steps})
    return marker


async def test_batch_with_one_failing_child(harness: Harness) -> None:
    ok = child_script(harness, "ok", [finish("child done")])
    bad = child_script(harness, "bad", [{"content": "x", "faults": [{"status": 400}] * 3}])
    tasks = [f"first {ok}", f"second {bad}", f"third {ok}"]
    task = harness.script(
        [{"tool_calls": [call("_batch_sub_tasks", agent="helper", tasks=tasks)]}, finish("all in")]
    )
    async with harness.worker():
        handle = await start(harness, task, sub_agents=HELPER, max_concurrent_sub_tasks=2)
        result = await handle.result()
        usage = await handle.query(AgentWorkflow.usage)

    assert result.status is AgentStatus.COMPLETED and result.answer == "all in"
    [report] = tool_messages(harness.requests()[-1].body)
    outcomes = json.loads(report)
    assert [o["status"] for o in outcomes] == ["completed", "failed", "completed"]
    assert outcomes[0]["answer"] == "child done"
    assert "LLM rejected the request (400)" in outcomes[1]["error"]
    # The children's tokens roll up into the parent's usage, under the child model.
    assert usage.by_model["child-model"].input_tokens > 0
    assert usage.total.input_tokens > usage.by_model["scripted"].input_tokens


async def test_unknown_sub_agent_goes_back_to_the_model(harness: Harness) -> None:
    task = harness.script(
        [{"tool_calls": [call("_create_sub_task", agent="nobody", task="x")]}, finish()]
    )
    async with harness.worker():
        await (await start(harness, task, sub_agents=HELPER)).result()
    assert tool_messages(harness.requests()[-1].body) == [
        "ERROR (unknown_agent): no sub-agent named 'nobody'; available: helper"
    ]


async def test_a_child_question_is_answered_through_the_parent(harness: Harness) -> None:
    asking = child_script(
        harness,
        "asks",
        [{"tool_calls": [call("_ask_user", question="Which format?")]}, finish("csv it is")],
    )
    task = harness.script(
        [
            {"tool_calls": [call("_create_sub_task", agent="helper", task=f"export {asking}")]},
            finish("exported"),
        ]
    )
    async with harness.worker():
        handle = await start(harness, task, sub_agents=HELPER)

        async def routed() -> PendingView | None:
            view = await handle.query(AgentWorkflow.pending)
            return view if view.sub_agent_questions else None

        pending = await eventually(routed)
        [question] = pending.sub_agent_questions
        assert question.question == "Which format?" and question.agent_id is not None
        status = await handle.query(AgentWorkflow.status)
        assert status.waiting_for is not None and "Which format?" in status.waiting_for
        answered = await handle.execute_update(
            AgentWorkflow.reply, ReplyInput(answer="csv", question_id=question.id)
        )
        result = await handle.result()

    assert answered == question.id
    assert result.answer == "exported"
    child_requests = [r for r in harness.llm.requests if r.script == asking]
    assert tool_messages(child_requests[-1].body) == ["csv"]
    assert tool_messages(harness.requests()[-1].body) == ["csv it is"]


async def test_cancelling_the_parent_cancels_its_children(harness: Harness) -> None:
    busy = child_script(harness, "busy", [{"tool_calls": [call("_slow")]}, finish()])
    task = harness.script(
        [{"tool_calls": [call("_create_sub_task", agent="helper", task=f"wait {busy}")]}, finish()]
    )
    async with harness.worker(tools=[*default_tools(), slow]):
        handle = await start(harness, task, sub_agents=HELPER)
        pid_file = harness.folder(handle.id) / "slow.pid"  # the child works in its parent's
        await eventually(pid_file.exists)
        pid = int(pid_file.read_text())
        await handle.cancel(reason="stop everything")
        with pytest.raises(WorkflowFailureError):
            await handle.result()

    child_id = f"{handle.id}-call_0_0-0"
    child = harness.client.get_workflow_handle(child_id)
    assert (await child.describe()).status is WorkflowExecutionStatus.CANCELED
    assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED
    await eventually(lambda: process_gone(pid))
