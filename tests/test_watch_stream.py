"""``duragent watch`` as a person runs it: a CLI process following a live run's events."""

from __future__ import annotations

import asyncio
import json
import sys

from temporalio.client import WorkflowExecutionStatus

from duragent.activities.events import EVENT_TYPES
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    ApprovalAction,
    ApprovalDecision,
    ApprovalPolicy,
    ReplyInput,
)
from tests.conftest import Harness
from tests.processes import cli, stop_process, worker_env
from tests.test_agent import call, finish, start
from tests.test_graph import decide, loop_graph, start_graph

CHUNKS = 24
STORY = "".join(f"[{i:02d} a slow story]" for i in range(CHUNKS))  # 16 characters a chunk


class Output:
    """A CLI process's standard output, read as it comes (streamed text has no newline)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.text = ""

    async def until(self, wanted: str, *, within: float = 30) -> str:
        """Read until ``wanted`` has been printed; fail past the deadline or at EOF."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(within):
            while wanted not in self.text:
                data = await self.proc.stdout.read(4096)
                if not data:
                    raise AssertionError(f"watch ended before {wanted!r}:\n{self.text}")
                self.text += data.decode()
        return self.text

    async def rest(self, *, within: float = 30) -> int:
        """Read to the end; the exit code."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(within):
            self.text += (await self.proc.stdout.read()).decode()
            return await self.proc.wait()


async def watch(h: Harness, *args: str) -> Output:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "duragent.worker.cli",
        "watch",
        *args,
        env=worker_env(h),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return Output(proc)


async def test_watch_prints_streamed_text_before_the_run_ends_and_the_commands_that_answer(
    harness: Harness,
) -> None:
    ask = call("_ask_user", question="Go?")
    slow = {"content": STORY, "chunk_seconds": 0.1, "tool_calls": [ask]}
    task = harness.script(
        [slow, {"tool_calls": [call("_write_file", path="a.txt", content="A")]}, finish("told")]
    )
    approval = ApprovalPolicy(tools={"_write_file": "always"})
    async with harness.worker():
        handle = await start(harness, task, approval=approval)
        out = await watch(harness, handle.id)
        try:
            await out.until(STORY[:32])  # the first two chunks, on screen
            request = next(r for r in harness.requests() if r.step == 0)
            # The model is still writing: the text was shown as it streamed, not after.
            assert len(request.chunk_times) < CHUNKS
            assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
            await out.until(f'duragent reply {handle.id} --question-id call_0_0 "ANSWER"')
            _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="go"))
            await out.until(f"duragent approve {handle.id} call_1_0")
            decision = ApprovalDecision(call_id="call_1_0", action=ApprovalAction.APPROVE)
            _ = await handle.execute_update(AgentWorkflow.decide, decision)
            code = await out.rest()
        finally:
            await stop_process(out.proc)

    assert code == 0, out.text
    lines = out.text.splitlines()
    assert f"   1    assistant: {STORY}" in lines  # streamed whole, shown once
    assert out.text.count(STORY) == 1
    assert "question call_0_0: Go?" in lines
    assert "     .. _write_file running  [call_1_0]" in lines
    assert any(line.startswith("     .. _write_file success in ") for line in lines)
    assert lines[-2:] == ["status: completed", "answer: told"]


async def test_watch_json_prints_one_event_a_line_and_resumes_at_an_offset(
    harness: Harness,
) -> None:
    task = harness.script([{"content": "short", "tool_calls": [call("_list_files")]}, finish()])
    async with harness.worker():
        handle = await start(harness, task)
        await handle.result()
        whole = await cli(worker_env(harness), "watch", handle.id, "--json")
        resumed = await cli(worker_env(harness), "watch", handle.id, "--json", "--offset", "4")

    assert whole.returncode == 0, whole.stderr
    events = [json.loads(line) for line in whole.stdout.splitlines()]
    assert [e["offset"] for e in events] == list(range(len(events)))
    assert all(e["type"] in EVENT_TYPES and e["agent_id"] == handle.id for e in events)
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "completed"
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines() == whole.stdout.splitlines()[4:]


async def test_watch_follows_a_graph_and_prints_how_to_decide_its_gate(harness: Harness) -> None:
    task = harness.script([finish("a draft")])
    spec = loop_graph(task.removesuffix(" do the task"))
    async with harness.worker():
        handle = await start_graph(harness, spec, {"topic": "watching"})
        out = await watch(harness, handle.id)
        try:
            await out.until(f"decide:   duragent graph decide {handle.id} review@1 JSON")
            _ = await decide(handle, "review@1", {"decision": "approve"})
            code = await out.rest()
        finally:
            await stop_process(out.proc)

    assert code == 0, out.text
    lines = out.text.splitlines()
    assert f"node write (agent) visit 1: running  children: {handle.id}/write@1" in lines
    assert "node review (gate) visit 1: waiting" in lines
    assert "gate review@1: Approve the draft of watching?" in lines
    assert lines[-2] == "status: completed"


async def test_watch_of_a_run_temporal_closed_says_how_it_ended(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [call("_ask_user", question="Anyone?")]}])
    async with harness.worker():
        handle = await start(harness, task)
        out = await watch(harness, handle.id)
        try:
            await out.until("question call_0_0: Anyone?")
            await handle.terminate(reason="nobody")
            code = await out.rest()
        finally:
            await stop_process(out.proc)

    assert code == 1, out.text
    assert out.text.splitlines()[-1] == "status: terminated"


async def test_watch_of_an_unknown_id_is_one_line_and_exit_2(harness: Harness) -> None:
    done = await cli(worker_env(harness), "watch", "agent-nobody-here")
    assert done.returncode == 2
    assert done.stderr.strip() == "duragent: error: no agent with id 'agent-nobody-here'"
    assert done.stdout == ""
