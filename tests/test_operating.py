"""Operating running agents on a real server: replies, approvals, cancel, steering, queries."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import CancelledError

from duragent.activities.tools import ToolContext, default_tools, tool
from duragent.worker.devserver import find_temporal_cli
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    AgentResult,
    AgentStatus,
    ApprovalAction,
    ApprovalDecision,
    ApprovalPolicy,
    AskPolicy,
    OnQuestionTimeout,
    ReplyInput,
    SteerInput,
    TranscriptQuery,
)
from tests.conftest import Harness, eventually
from tests.processes import cli, spawn_worker, worker_env
from tests.test_agent import call, finish, start, tool_messages

Handle = WorkflowHandle[AgentWorkflow, AgentResult]


def ask(question: str = "Which colour?", **extra: Any) -> dict[str, Any]:
    return {"tool_calls": [call("_ask_user", question=question, **extra)]}


async def status_is(handle: Handle, status: AgentStatus) -> bool:
    return (await handle.query(AgentWorkflow.status)).status is status


async def accepted_updates(handle: Handle) -> int:
    return len(
        [
            e
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
    )


# --- replies ---------------------------------------------------------------------------


async def test_reply_after_the_worker_was_killed(harness: Harness, tmp_path: Path) -> None:
    task = harness.script([ask(), finish("blue it is")])
    env = worker_env(harness)
    first = await spawn_worker(env, tmp_path / "worker-1.log")
    try:
        handle = await start(harness, task)
        await eventually(lambda: status_is(handle, AgentStatus.WAITING_USER), within=60)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    second = await spawn_worker(env, tmp_path / "worker-2.log")
    try:
        replied = await cli(env, "reply", handle.id, "blue")
        done = await cli(env, "result", handle.id, "--wait")
    finally:
        second.send_signal(signal.SIGTERM)
        await second.wait()

    assert replied.returncode == 0, replied.stderr
    assert done.returncode == 0 and "answer: blue it is" in done.stdout
    assert tool_messages(harness.requests()[-1].body) == ["blue"]


async def test_same_update_id_is_applied_once(harness: Harness) -> None:
    task = harness.script([ask(), finish()])
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: status_is(handle, AgentStatus.WAITING_USER))
        first = await handle.execute_update(
            AgentWorkflow.reply, ReplyInput(answer="once"), id="reply-1"
        )
        again = await handle.execute_update(
            AgentWorkflow.reply, ReplyInput(answer="once"), id="reply-1"
        )
        await handle.result()

    assert first == again
    assert await accepted_updates(handle) == 1
    assert tool_messages(harness.requests()[-1].body) == ["once"]


async def test_choice_outside_the_options_is_rejected(harness: Harness) -> None:
    task = harness.script([ask(options=["red", "blue"], selection="single"), finish()])
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: status_is(handle, AgentStatus.WAITING_USER))
        with pytest.raises(WorkflowUpdateFailedError) as err:
            _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="green"))
        assert "'green' is not one of the options: red, blue" in str(err.value.cause)
        assert await accepted_updates(handle) == 0  # rejected before reaching history
        # The signal form drops an invalid reply and takes a valid one.
        await handle.signal(AgentWorkflow.reply_signal, ReplyInput(answer="green"))
        await handle.signal(AgentWorkflow.reply_signal, ReplyInput(answer="red"))
        await handle.result()

    assert tool_messages(harness.requests()[-1].body) == ["red"]


@pytest.mark.parametrize("on_timeout", [OnQuestionTimeout.DEFAULT_ANSWER, OnQuestionTimeout.FAIL])
async def test_question_deadline(harness: Harness, on_timeout: OnQuestionTimeout) -> None:
    task = harness.script([ask(), finish()])
    policy = AskPolicy(deadline_seconds=1, on_timeout=on_timeout, default_answer="go with red")
    async with harness.worker():
        handle = await start(harness, task, ask=policy)
        if on_timeout is OnQuestionTimeout.FAIL:
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
            assert "nobody answered 'Which colour?' within 1 s" in str(err.value.cause)
            return
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    assert tool_messages(harness.requests()[-1].body) == ["go with red"]


# --- approvals -------------------------------------------------------------------------


def write(path: str, content: str) -> dict[str, Any]:
    return call("_write_file", path=path, content=content)


async def pending_approvals(handle: Handle, count: int) -> Any:
    view = await handle.query(AgentWorkflow.pending)
    return view if len(view.approvals) == count else None


async def decide(handle: Handle, **fields: Any) -> str:
    update: Any = AgentWorkflow.decide  # the SDK's stubs type async updates as coroutines
    result: str = await handle.execute_update(update, ApprovalDecision(**fields))
    return result


async def test_two_pending_approvals_decided_independently(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [write("yes.txt", "Y"), write("no.txt", "N")]}, finish()])
    approval = ApprovalPolicy(tools={"_write_file": "always"})
    async with harness.worker():
        handle = await start(harness, task, approval=approval)
        view = await eventually(lambda: pending_approvals(handle, 2))
        yes, no = view.approvals
        assert (await handle.query(AgentWorkflow.status)).status is AgentStatus.WAITING_APPROVAL
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await decide(handle, call_id=yes.call_id, action="approve", fingerprint="0" * 64)
        assert "fingerprint mismatch" in str(err.value.cause)
        await decide(handle, call_id=yes.call_id, action="approve", fingerprint=yes.fingerprint)
        assert not (harness.folder(handle.id) / "yes.txt").exists()  # waits for the other decision
        await decide(handle, call_id=no.call_id, action="reject", message="not that one")
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    assert (harness.folder(handle.id) / "yes.txt").read_text() == "Y"
    assert not (harness.folder(handle.id) / "no.txt").exists()
    assert tool_messages(harness.requests()[-1].body) == [
        "wrote 1 bytes to yes.txt",
        "ERROR (rejected): the user rejected this call: not that one",
    ]


async def test_edit_is_validated_then_executed(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [write("a.txt", "original")]}, finish()])
    approval = ApprovalPolicy(tools={"_write_file": "always"})
    async with harness.worker():
        handle = await start(harness, task, approval=approval)
        [pending] = (await eventually(lambda: pending_approvals(handle, 1))).approvals
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await decide(
                handle, call_id=pending.call_id, action="edit", arguments='{"path": "a.txt"}'
            )
        assert "content: Field required" in str(err.value.cause)  # and path not a string
        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await decide(handle, call_id="call_nope", action="approve")
        assert "no pending approval for call 'call_nope'" in str(unknown.value.cause)
        edited = json.dumps({"path": "a.txt", "content": "edited"})
        await decide(handle, call_id=pending.call_id, action=ApprovalAction.EDIT, arguments=edited)
        await handle.result()

    assert (harness.folder(handle.id) / "a.txt").read_text() == "edited"


async def test_approval_deadline_rejects_by_default(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [write("late.txt", "x")]}, finish()])
    approval = ApprovalPolicy(tools={"_write_file": "always"}, deadline_seconds=1)
    async with harness.worker():
        handle = await start(harness, task, approval=approval)
        await handle.result()

    assert not (harness.folder(handle.id) / "late.txt").exists()
    assert tool_messages(harness.requests()[-1].body) == [
        "ERROR (rejected): the user rejected this call: nobody approved it within 1 s"
    ]


# --- cancellation and steering ---------------------------------------------------------


class SlowArgs(BaseModel):
    seconds: float = 60.0


@tool(name="_slow", timeout=timedelta(minutes=5), heartbeat=timedelta(seconds=2))
async def slow(args: SlowArgs, ctx: ToolContext) -> str:
    """Run `sleep` in a subprocess; killed when the activity is cancelled."""
    proc = await asyncio.create_subprocess_exec("sleep", str(args.seconds))
    await ctx.workspace.write_text("slow.pid", str(proc.pid))
    try:
        await proc.wait()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        await ctx.workspace.write_text("slow.cancelled", "yes")
        raise
    return "slept"


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # reaped soon


async def test_cancel_during_a_long_tool(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [call("_slow")]}, finish()])
    async with harness.worker(tools=[*default_tools(), slow]):
        handle = await start(harness, task)
        pid_file = harness.folder(handle.id) / "slow.pid"
        await eventually(pid_file.exists)
        pid = int(pid_file.read_text())
        await handle.cancel(reason="user changed their mind")
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        view = await handle.query(AgentWorkflow.status)
        page = await handle.query(AgentWorkflow.transcript, TranscriptQuery())

    assert isinstance(err.value.cause, CancelledError)
    assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED
    assert (harness.folder(handle.id) / "slow.cancelled").read_text() == "yes"
    await eventually(lambda: process_gone(pid))
    assert view.status is AgentStatus.CANCELLED
    assert view.cancel_reason == "user changed their mind"
    assert page.messages[-1].tool_calls[0].name == "_slow"  # the partial transcript
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled[-1] == "duragent.cleanup"


async def test_steering_message_is_read_before_the_next_llm_call(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [call("_slow", seconds=2)]}, finish()])
    async with harness.worker(tools=[*default_tools(), slow]):
        handle = await start(harness, task)
        pid_file = harness.folder(handle.id) / "slow.pid"
        await eventually(pid_file.exists)  # the tool is running
        await handle.signal(AgentWorkflow.say, SteerInput(message="use metric units"))
        await handle.result()

    messages = harness.requests()[-1].body["messages"]
    assert [m["role"] for m in messages[-3:]] == ["assistant", "tool", "user"]
    assert messages[-2]["content"] == "slept"  # the tool was not interrupted
    assert messages[-1]["content"] == "use metric units"


# --- queries, listing, the temporal CLI -----------------------------------------------


async def test_queries_while_waiting_and_after_the_end(harness: Harness) -> None:
    task = harness.script([ask(), finish("done")])
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: status_is(handle, AgentStatus.WAITING_USER))
        waiting = await handle.query(AgentWorkflow.status)
        pending = await handle.query(AgentWorkflow.pending)
        _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="blue"))
        await handle.result()
        usage = await handle.query(AgentWorkflow.usage)
        page = await handle.query(AgentWorkflow.transcript, TranscriptQuery(offset=1, limit=2))

    assert waiting.waiting_for is not None and "Which colour?" in waiting.waiting_for
    assert pending.question is not None and pending.question.question == "Which colour?"
    assert (usage.cycles, usage.llm_calls) == (2, 2)
    assert usage.by_model["scripted"] == usage.total
    assert page.total == 5 and page.offset == 1 and len(page.messages) == 2


async def test_ls_lists_exactly_the_waiting_agents(harness: Harness) -> None:
    owner = f"owner-{harness.task_queue}"
    asking = harness.script([ask(), finish()])
    env = worker_env(harness)
    async with harness.worker():
        waiting = [await start(harness, asking, owner=owner) for _ in range(2)]
        done = await start(harness, "no script: fails fast", owner=owner, max_cycles=1)
        for handle in waiting:
            await eventually(partial(status_is, handle, AgentStatus.WAITING_USER))

        async def listed() -> set[str] | None:
            out = await cli(env, "ls", "--status", "waiting_user", "--owner", owner)
            ids = {line.split()[0] for line in out.stdout.splitlines()[1:]}
            return ids if ids == {h.id for h in waiting} else None

        assert await eventually(listed, within=30)
        for handle in [*waiting, done]:
            await handle.cancel()


async def test_temporal_cli_queries_and_cancels_an_agent(harness: Harness) -> None:
    temporal = find_temporal_cli()
    assert temporal is not None
    address = harness.client.service_client.config.target_host
    task = harness.script([ask(), finish()])
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: status_is(handle, AgentStatus.WAITING_USER))
        query = await run_temporal(
            temporal,
            "workflow",
            "query",
            "--address",
            address,
            "--workflow-id",
            handle.id,
            "--type",
            "status",
            "-o",
            "json",
        )
        assert '"waiting_user"' in query
        await run_temporal(
            temporal, "workflow", "cancel", "--address", address, "--workflow-id", handle.id
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED


async def run_temporal(temporal: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(temporal), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_watch_follows_a_run_to_its_end(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [call("_slow", seconds=1)]}, finish("watched")])
    async with harness.worker(tools=[*default_tools(), slow]):
        handle = await start(harness, task)
        watched = await cli(worker_env(harness), "watch", handle.id)

    assert watched.returncode == 0, watched.stderr
    assert "-> _slow(" in watched.stdout
    assert watched.stdout.rstrip().endswith("answer: watched")
