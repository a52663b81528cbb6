"""What operators see through the CLI, on a real server.

`ls`, `status`, `pending`, ended agents, missing workers, pipes, replies that carry
their question id, the read commands' JSON, help and version.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType

from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    AgentStatus,
    ApprovalPolicy,
    HistoryPolicy,
    LLMPolicy,
    OnRetriesExhausted,
    SubAgentSpec,
)
from tests.conftest import Harness, eventually
from tests.processes import cli, worker_env
from tests.test_agent import call, finish, start
from tests.test_operating import ask, status_is
from tests.test_outage import QUICK


async def rows(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    out = await cli(env, "ls", "--json", *args)
    assert out.returncode == 0, out.stderr
    listed: list[dict[str, Any]] = json.loads(out.stdout)
    return listed


async def test_ls_one_row_per_agent_and_running_means_open(harness: Harness) -> None:
    owner = f"can-{harness.task_queue}"
    task = harness.script([{"tool_calls": [call("_list_files")]}])  # repeats to max_cycles
    env = worker_env(harness)
    async with harness.worker():
        handle = await start(
            harness, task, owner=owner, max_cycles=25, history=HistoryPolicy(max_events=100)
        )
        result = await handle.result()
    assert result.runs >= 2, "the agent continued as new"

    async def listed() -> list[dict[str, Any]] | None:
        found = await rows(env, "--owner", owner)
        return found if found and found[0]["status"] == "max_cycles" else None

    [row] = await eventually(listed, within=30)  # one row, not one per run
    assert row["id"] == handle.id
    assert await rows(env, "--owner", owner, "--status", "running") == []
    text = await cli(env, "ls", "--owner", owner)
    assert len(text.stdout.splitlines()) == 2  # the header and the agent


async def test_terminated_agent_shows_terminated(harness: Harness) -> None:
    owner = f"term-{harness.task_queue}"
    env = worker_env(harness)
    async with harness.worker():
        handle = await start(harness, harness.script([ask(), finish()]), owner=owner)
        await eventually(lambda: status_is(handle, AgentStatus.WAITING_USER))
        await handle.terminate(reason="operator")
        status = await cli(env, "status", handle.id)  # a worker answers the query
        as_json = await cli(env, "status", handle.id, "--json")
    without_worker = await cli(env, "status", handle.id)
    said = await cli(env, "say", handle.id, "hello?")
    replied = await cli(env, "reply", handle.id, "blue")

    async def listed() -> list[dict[str, Any]] | None:
        found = await rows(env, "--owner", owner)
        return found if found and found[0]["status"] == "terminated" else None

    await eventually(listed, within=30)
    assert await rows(env, "--owner", owner, "--status", "waiting_user") == []
    assert [r["id"] for r in await rows(env, "--owner", owner, "--status", "terminated")] == [
        handle.id
    ]
    assert "status:  terminated" in status.stdout.splitlines(), status.stderr
    assert json.loads(as_json.stdout)["status"] == "terminated"
    assert "status:  terminated" in without_worker.stdout.splitlines(), without_worker.stderr
    assert without_worker.returncode == 0  # Temporal alone knows how the run ended
    for ended in (said, replied):
        assert ended.returncode == 2
        assert "has ended (terminated)" in ended.stderr, ended.stderr
        assert "no agent with id" not in ended.stderr


async def test_status_without_a_worker_names_the_task_queue(harness: Harness) -> None:
    handle = await start(harness, harness.script([finish()]))  # no worker ever polls
    result = await cli(worker_env(harness), "status", handle.id)
    await handle.terminate()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"duragent: error: no worker is polling task queue {harness.task_queue!r}, so agent "
        f"{handle.id!r} cannot answer; start one with "
        f"`DURAGENT_TASK_QUEUE={harness.task_queue} duragent worker`"
    ]


async def test_run_wait_without_a_worker_says_so_and_keeps_waiting(harness: Harness) -> None:
    agent_id = f"lonely-{harness.task_queue}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "duragent.worker.cli",
        "run",
        harness.script([finish("found one")]),
        "--id",
        agent_id,
        "--wait",
        env=worker_env(harness),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        notice = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert f"no worker is polling task queue {harness.task_queue!r}" in notice.decode()
        assert proc.returncode is None  # still waiting
        async with harness.worker():
            out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    assert out.decode().splitlines()[0] == agent_id
    assert "answer: found one" in out.decode()


async def test_output_into_a_closed_pipe_ends_quietly(harness: Harness) -> None:
    task = harness.script([finish()])
    await start(harness, task)  # something to list
    for args in (["ls"], ["--help"], ["run", task]):
        read, write = os.pipe()
        os.close(read)  # like `| head -1` that has already gone
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "duragent.worker.cli",
                *args,
                env=worker_env(harness),
                stdout=write,
                stderr=asyncio.subprocess.PIPE,
            )
        finally:
            os.close(write)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert "Traceback" not in err.decode() and "BrokenPipe" not in err.decode(), args
        assert proc.returncode in (0, 141), (args, proc.returncode, err)


async def test_reply_always_sends_the_question_id(harness: Harness) -> None:
    task = harness.script([ask("First?"), ask("Second?"), finish()])
    env = worker_env(harness)
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: status_is(handle, AgentStatus.WAITING_USER))
        first = await handle.query(AgentWorkflow.pending)
        assert first.question is not None
        replied = await cli(env, "reply", handle.id, "one")  # no --question-id given

        async def second_question() -> bool:
            view = await handle.query(AgentWorkflow.pending)
            return view.question is not None and view.question.question == "Second?"

        await eventually(second_question)
        # The double click: the same reply for the first question, now stale.
        again = await cli(env, "reply", handle.id, "one", "--question-id", first.question.id)
        view = await handle.query(AgentWorkflow.pending)
        await handle.terminate()

    assert replied.returncode == 0, replied.stderr
    assert again.returncode == 2 and "reply rejected" in again.stderr, again.stderr
    assert view.question is not None and view.question.question == "Second?"  # unanswered
    sent = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    [payload] = sent[0].args.payloads
    assert json.loads(payload.data)["question_id"] == first.question.id


async def test_pending_shows_a_sub_agents_approval_with_its_command(
    harness: Harness, tmp_path: Path
) -> None:
    child = f"{harness.marker}-writer"
    harness.llm.add_script(
        {
            "name": child,
            "match": child,
            "steps": [
                {"tool_calls": [call("_write_file", path="c.txt", content="C")]},
                finish("child wrote"),
            ],
        }
    )
    task = harness.script(
        [
            {"tool_calls": [call("_create_sub_task", agent="helper", task=f"write {child}")]},
            finish("parent done"),
        ]
    )
    env = worker_env(harness)
    helper = {"helper": SubAgentSpec(description="writes", max_cycles=3)}
    approval = ApprovalPolicy(tools={"_write_file": "always"})
    async with harness.worker():
        handle = await start(harness, task, sub_agents=helper, approval=approval)

        async def tree() -> dict[str, Any] | None:
            out = await cli(env, "pending", handle.id, "--json")
            data: dict[str, Any] = json.loads(out.stdout) if out.returncode == 0 else {}
            return data if data.get("items") else None

        data = await eventually(tree, within=60)
        [item] = data["items"]
        text = await cli(env, "pending", handle.id)
        decided = await cli(env, "approve", item["send_to"], item["id"])
        result = await handle.result()

    assert item["kind"] == "approval" and item["send_to"] != handle.id
    assert item["command"] == f"duragent approve {item['send_to']} {item['id']}"
    assert f"approve: duragent approve {item['send_to']} {item['id']}" in text.stdout
    assert decided.returncode == 0, decided.stderr
    assert result.answer == "parent done"
    assert (harness.folder(handle.id) / "c.txt").read_text() == "C"


async def test_watch_prints_the_command_that_answers(harness: Harness) -> None:
    task = harness.script([ask("Which colour?"), finish("blue it is")])
    env = worker_env(harness)
    async with harness.worker():
        handle = await start(harness, task)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "duragent.worker.cli",
            "watch",
            handle.id,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        seen: list[str] = []
        try:
            while not any("duragent reply" in line for line in seen):
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                assert line, f"watch ended without a hint: {seen}"
                seen.append(line.decode())
            replied = await cli(env, "reply", handle.id, "blue")
            rest, _ = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        view = await handle.query(AgentWorkflow.transcript)
    [question_id] = [c.id for m in view.messages for c in m.tool_calls if c.name == "_ask_user"]

    assert replied.returncode == 0, replied.stderr
    assert f'duragent reply {handle.id} --question-id {question_id} "ANSWER"' in seen[-1]
    assert rest.decode().rstrip().endswith("answer: blue it is")


async def test_usage_todos_and_json_read_commands(harness: Harness) -> None:
    todo = [{"id": "1", "content": "write it", "status": "in_progress"}]
    task = harness.script(
        [{"tool_calls": [call("_todo_write", todos=todo)]}, ask("Ready?"), finish()]
    )
    env = worker_env(harness)
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: status_is(handle, AgentStatus.WAITING_USER))
        outs = {
            name: await cli(env, name, handle.id, "--json")
            for name in ("status", "pending", "transcript", "usage", "todos", "result")
        }
        todos = await cli(env, "todos", handle.id)
        usage = await cli(env, "usage", handle.id)
        await handle.terminate()
    parsed = {name: json.loads(out.stdout) for name, out in outs.items()}
    assert parsed["status"]["status"] == "waiting_user"
    assert parsed["pending"]["items"][0]["kind"] == "question"
    assert parsed["transcript"]["total"] >= 3
    assert parsed["usage"]["cycles"] == 2
    assert parsed["todos"] == todo
    assert parsed["result"] == {"status": "waiting_user", "running": True}
    assert todos.stdout.splitlines() == ["[~] write it  (1)"]
    assert "cycles:  2" in usage.stdout


async def test_version_and_help_with_defaults_and_an_example(harness: Harness) -> None:
    env = worker_env(harness)
    version = await cli(env, "--version")
    helped = await cli(env, "transcript", "--help")
    assert version.returncode == 0 and version.stdout.startswith("duragent ")
    assert "(default: 50)" in helped.stdout
    assert "example:\n  duragent transcript" in helped.stdout


async def test_task_from_a_file_and_from_standard_input(harness: Harness, tmp_path: Path) -> None:
    long_task = harness.script([finish("read it")]) + " " + "context " * 30_000  # > 128 KiB
    (tmp_path / "task.md").write_text(long_task)
    env = worker_env(harness)
    from_file = await cli(env, "run", "--task-file", str(tmp_path / "task.md"))
    from_stdin = await cli(env, "run", "-", stdin=long_task.encode(), within=60)
    assert from_file.returncode == 0 and from_stdin.returncode == 0, (
        from_file.stderr,
        from_stdin.stderr,
    )
    for agent_id in (from_file.stdout.strip(), from_stdin.stdout.strip()):
        handle = harness.client.get_workflow_handle(agent_id)
        events = [e async for e in handle.fetch_history_events()]
        started = events[0].workflow_execution_started_event_attributes
        assert json.loads(started.input.payloads[0].data)["task"] == long_task
        await handle.terminate()


async def test_retry_verb(harness: Harness) -> None:
    task = harness.script([finish("after the retry")])
    harness.llm.outage(harness.marker, 600)

    def policy(seconds: float) -> LLMPolicy:
        return LLMPolicy(
            **QUICK,
            max_retry_duration=timedelta(seconds=seconds),
            on_exhausted=OnRetriesExhausted.WAIT,
        )

    env = worker_env(harness)
    async with harness.worker():
        # One agent still has minutes of retries ahead (however slow the CLI is to
        # start), the other runs out of them in 2 s and waits for an operator.
        retrying = await start(harness, task, llm_policy=policy(600))
        handle = await start(harness, task, llm_policy=policy(2))
        early = await cli(env, "retry", retrying.id)

        async def awaiting_operator() -> bool:
            view = await handle.query(AgentWorkflow.status)
            return view.provider_outage is not None and view.provider_outage.next_retry_at is None

        await eventually(awaiting_operator, "retries ran out", within=60)
        harness.llm.outage(harness.marker, 0)
        retried = await cli(env, "retry", handle.id, "--reason", "provider is back")
        result = await handle.result()
        # The other one needed no operator: its own retries got through.
        unattended = await retrying.result()

    assert early.returncode == 2 and "retry rejected" in early.stderr, early.stderr
    assert retried.returncode == 0, retried.stderr
    assert result.answer == unattended.answer == "after the retry"
