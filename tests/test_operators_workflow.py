"""What operators see, workflow side (issue 9, item 8): the pending tree and edits."""

from __future__ import annotations

import json
from typing import Any

from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    AgentResult,
    AgentStatus,
    ApprovalAction,
    ApprovalPolicy,
    PendingView,
    TranscriptQuery,
)
from tests.conftest import Harness, eventually
from tests.test_agent import call, finish, start
from tests.test_operating import Handle, decide, pending_approvals, write
from tests.test_sub_agents import HELPER, child_script
from tests.workflow_checks import assert_no_failed_workflow_task

ALWAYS = ApprovalPolicy(tools={"_write_file": "always"})


async def test_the_parent_lists_a_sub_agent_that_waits_for_approval(harness: Harness) -> None:
    marker = child_script(harness, "writes", [{"tool_calls": [write("c.txt", "C")]}, finish("w")])
    task = harness.script(
        [
            {"tool_calls": [call("_create_sub_task", agent="helper", task=f"write {marker}")]},
            finish(),
        ]
    )
    async with harness.worker():
        # The child inherits the parent's approval policy: its write waits for a person.
        handle = await start(harness, task, sub_agents=HELPER, approval=ALWAYS)
        child_id = f"{handle.id}-call_0_0-0"
        child: Handle = harness.client.get_workflow_handle(child_id, result_type=AgentResult)

        async def running_child() -> PendingView | None:
            view = await handle.query(AgentWorkflow.pending)
            return view if view.sub_agents else None

        parent_view = await eventually(running_child)
        child_view = await eventually(lambda: pending_approvals(child, 1))
        [approval] = child_view.approvals
        await decide(child, call_id=approval.call_id, action="approve")
        result = await handle.result()
        after = await handle.query(AgentWorkflow.pending)

    assert parent_view.sub_agents == [child_id]
    assert parent_view.approvals == [] and parent_view.question is None
    assert approval.tool == "_write_file" and json.loads(approval.arguments)["path"] == "c.txt"
    assert result.status is AgentStatus.COMPLETED
    assert after.sub_agents == []  # a finished child is no longer listed
    assert (harness.folder(handle.id) / "c.txt").read_text() == "C"


def assistant_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for m in body["messages"] if m["role"] == "assistant" for c in m["tool_calls"] or []]


async def test_an_edit_shows_what_ran_in_the_transcript_and_to_the_model(
    harness: Harness,
) -> None:
    task = harness.script(
        [{"tool_calls": [write("a.txt", "original"), call("_list_files")]}, finish()]
    )
    edited = json.dumps({"path": "a.txt", "content": "edited"})
    async with harness.worker():
        handle = await start(harness, task, approval=ALWAYS)
        [pending] = (await eventually(lambda: pending_approvals(handle, 1))).approvals
        await decide(handle, call_id=pending.call_id, action=ApprovalAction.EDIT, arguments=edited)
        await handle.result()
        page = await handle.query(AgentWorkflow.transcript, TranscriptQuery())

    assert (harness.folder(handle.id) / "a.txt").read_text() == "edited"
    turn = page.messages[1]
    assert [c.arguments for c in turn.tool_calls] == [edited, "{}"]
    # The next request carries the arguments that ran, not the ones first proposed.
    sent = assistant_calls(harness.requests()[-1].body)
    assert sent[0]["id"] == pending.call_id
    assert sent[0]["function"]["arguments"] == edited
    assert "original" not in json.dumps(harness.requests()[-1].body)
    await assert_no_failed_workflow_task(handle)
