"""Size bounds on everything that enters an agent's state, on a real server (issue 9, item 2).

Each input is sent at its bound (accepted) and just over it (dropped or rejected); in
every test the agent goes on and completes, and no workflow task ever fails.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError

from duragent.activities import limits
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    AgentStatus,
    ApprovalAction,
    ApprovalPolicy,
    ReplyInput,
    SteerInput,
    TranscriptQuery,
)
from tests.conftest import Harness, eventually
from tests.test_agent import call, finish, start, tool_messages
from tests.test_operating import ask, decide, pending_approvals, write
from tests.workflow_checks import (
    accepted_updates,
    assert_no_failed_workflow_task,
    dropped,
    reply,
    waiting_user,
)

SAY = limits.MAX_SAY_BYTES
REPLY = limits.MAX_REPLY_BYTES
MB = 1024 * 1024


def user_messages(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


# --- say ----------------------------------------------------------------------------------


async def test_say_at_the_bound_is_read_and_over_it_is_dropped(harness: Harness) -> None:
    task = harness.script([ask(), finish()])
    at_bound, over = "a" * SAY, "b" * (SAY + 1)
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: waiting_user(handle))
        await handle.signal(AgentWorkflow.say, SteerInput(message=over))
        await handle.signal(AgentWorkflow.say, SteerInput(message=at_bound))
        view = await eventually(lambda: dropped(handle, 1))
        await reply(handle, "blue")
        result = await handle.result()
        final = await handle.query(AgentWorkflow.status)

    assert result.status is AgentStatus.COMPLETED
    assert view.last_dropped == "say: the message is 32,769 bytes, over the limit of 32,768"
    assert final.dropped_inputs == 1
    seen = user_messages(harness.requests()[-1].body)
    assert at_bound in seen and over not in seen
    await assert_no_failed_workflow_task(handle)


async def test_an_overfull_inbox_drops_the_messages_past_its_bound(harness: Harness) -> None:
    task = harness.script([ask(), finish()])
    # Unread messages while the agent waits: four fill the 128 KiB inbox exactly.
    messages = [str(i) * SAY for i in range(6)]
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: waiting_user(handle))
        for message in messages:
            await handle.signal(AgentWorkflow.say, SteerInput(message=message))
        view = await eventually(lambda: dropped(handle, 2))
        await reply(handle, "blue")
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    assert view.dropped_inputs == 2
    assert view.last_dropped is not None and "still unread" in view.last_dropped
    assert "inbox limit of 131,072" in view.last_dropped
    seen = user_messages(harness.requests()[-1].body)
    assert [m for m in seen if m in messages] == messages[:4]
    await assert_no_failed_workflow_task(handle)


async def test_two_huge_say_signals_do_not_end_the_agent(harness: Harness) -> None:
    # The repro: two 1.2 MB messages failed a task and the run was terminated.
    task = harness.script([ask(), finish("still here")])
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: waiting_user(handle))
        for letter in "xy":
            await handle.signal(AgentWorkflow.say, SteerInput(message=letter * (12 * MB // 10)))
        view = await eventually(lambda: dropped(handle, 2))
        assert view.status is AgentStatus.WAITING_USER
        await reply(handle, "go on")
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED and result.answer == "still here"
    assert view.last_dropped is not None and "1,258,291 bytes" in view.last_dropped
    await assert_no_failed_workflow_task(handle)


# --- reply ----------------------------------------------------------------------------------


async def test_reply_over_the_bound_is_rejected_before_history(harness: Harness) -> None:
    task = harness.script([ask(), finish()])
    at_bound = "r" * REPLY
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: waiting_user(handle))
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await reply(handle, "r" * (REPLY + 1))
        assert "the answer is 32,769 bytes, over the limit of 32,768" in str(err.value.cause)
        with pytest.raises(WorkflowUpdateFailedError):  # 2 MB: the repro
            await reply(handle, "r" * (2 * MB - 4096))
        assert await accepted_updates(handle) == 0
        assert (await handle.query(AgentWorkflow.status)).status is AgentStatus.WAITING_USER
        await reply(handle, at_bound)
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    assert await accepted_updates(handle) == 1
    assert tool_messages(harness.requests()[-1].body) == [at_bound]
    await assert_no_failed_workflow_task(handle)


async def test_reply_signal_over_the_bound_is_dropped_and_counted(harness: Harness) -> None:
    task = harness.script([ask(), finish()])
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: waiting_user(handle))
        big = ReplyInput(answer="m" * (REPLY + 1))
        await handle.signal(AgentWorkflow.reply_signal, big)
        view = await eventually(lambda: dropped(handle, 1))
        assert view.status is AgentStatus.WAITING_USER
        await handle.signal(AgentWorkflow.reply_signal, ReplyInput(answer="small"))
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    assert view.last_dropped is not None
    assert view.last_dropped.startswith("reply_signal: the answer is 32,769 bytes")
    assert tool_messages(harness.requests()[-1].body) == ["small"]
    await assert_no_failed_workflow_task(handle)


# --- decide -----------------------------------------------------------------------------------


async def test_decide_with_an_oversize_message_or_arguments_is_rejected(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [write("a.txt", "original")]}, finish()])
    approval = ApprovalPolicy(tools={"_write_file": "always"})
    huge_content = "e" * limits.MAX_EDITED_ARGUMENTS_BYTES
    async with harness.worker():
        handle = await start(harness, task, approval=approval)
        [pending] = (await eventually(lambda: pending_approvals(handle, 1))).approvals
        with pytest.raises(WorkflowUpdateFailedError) as message:
            await decide(
                handle,
                call_id=pending.call_id,
                action="reject",
                message="n" * (limits.MAX_DECISION_MESSAGE_BYTES + 1),
            )
        with pytest.raises(WorkflowUpdateFailedError) as arguments:
            edited = json.dumps({"path": "a.txt", "content": huge_content})
            await decide(handle, call_id=pending.call_id, action="edit", arguments=edited)
        assert await accepted_updates(handle) == 0
        assert len((await handle.query(AgentWorkflow.pending)).approvals) == 1
        ok = json.dumps({"path": "a.txt", "content": "e" * 1000})
        await decide(handle, call_id=pending.call_id, action=ApprovalAction.EDIT, arguments=ok)
        result = await handle.result()

    assert "the message is 8,193 bytes, over the limit of 8,192" in str(message.value.cause)
    assert "the edited arguments is 262,1" in str(arguments.value.cause)
    assert "over the limit of 262,144" in str(arguments.value.cause)
    assert result.status is AgentStatus.COMPLETED
    assert (harness.folder(handle.id) / "a.txt").read_text() == "e" * 1000
    await assert_no_failed_workflow_task(handle)


# --- the model's own output ---------------------------------------------------------------------


async def test_three_mb_of_tool_arguments_are_refused_not_fatal(harness: Harness) -> None:
    huge = json.dumps({"path": "big.txt", "content": "z" * (3 * MB)})
    task = harness.script(
        [
            {"tool_calls": [{"name": "_write_file", "arguments": huge}, call("_list_files")]},
            finish("recovered"),
        ]
    )
    async with harness.worker():
        # Not streamed: 3 MB in 16-character deltas would only make the test slow.
        handle = await start(harness, task, stream=False)
        result = await handle.result()
        page = await handle.query(AgentWorkflow.transcript, TranscriptQuery())

    assert result.status is AgentStatus.COMPLETED and result.answer == "recovered"
    refused, listed = tool_messages(harness.requests()[-1].body)
    assert refused.startswith(
        "ERROR (too_large): the arguments of _write_file is 3,145,7"  # 3 MB and the JSON
    )
    assert "over the limit of 262,144; nothing was run" in refused
    assert not listed.startswith("ERROR")  # the call next to it ran
    assert not (harness.folder(handle.id) / "big.txt").exists()
    turn = page.messages[1]
    assert turn.tool_calls[0].arguments == "{}" and turn.tool_calls[0].refused is not None
    await assert_no_failed_workflow_task(handle)


async def test_three_mb_of_content_is_truncated_with_a_note(harness: Harness) -> None:
    task = harness.script([{"content": "c" * (3 * MB)}, finish("recovered")])
    async with harness.worker():
        handle = await start(harness, task, stream=False)
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED and result.answer == "recovered"
    sent_back = next(
        m["content"] for m in harness.requests()[-1].body["messages"] if m["role"] == "assistant"
    )
    assert limits.size(sent_back) <= limits.MAX_TEXT_BYTES
    assert "bytes cut: over the 262,144-byte limit" in sent_back
    assert sent_back.startswith("ccc") and sent_back.endswith("ccc")
    await assert_no_failed_workflow_task(handle)
