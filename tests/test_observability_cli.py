"""Readable locally: `duragent trace` prints a run as a tree, `watch` says where things are."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle

from duragent.worker.client import start_agent
from duragent.worker.telemetry import history_trace, render_tree
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import ActivityPolicy, AgentInput, AgentStatus, ReplyInput
from tests.conftest import Harness, eventually
from tests.processes import cli, worker_env
from tests.test_agent import call, finish


async def waiting(handle: WorkflowHandle[Any, Any]) -> bool:
    view = await handle.query(AgentWorkflow.status)
    return bool(view.status is AgentStatus.WAITING_USER)


def names(text: str) -> list[str]:
    """Each line's name (before the first double space), indented as printed."""
    return [_name(line) for line in text.splitlines()]


def _name(line: str) -> str:
    depth = len(line) - len(line.lstrip(" "))
    return " " * depth + line.strip().split("  ")[0]


async def test_trace_prints_the_run_as_a_tree(harness: Harness) -> None:
    task = harness.script(
        [
            {
                "faults": [{"status": 500}],
                "tool_calls": [call("_write_file", path="a.txt", content="A")],
                "usage": {"prompt_tokens": 120, "completion_tokens": 7},
            },
            {"tool_calls": [call("_ask_user", question="Go on?")]},
            finish(),
        ]
    )
    policy = ActivityPolicy(initial_interval_seconds=0.1)
    env = worker_env(harness)
    async with harness.worker():
        input = AgentInput(task=task, model="scripted", llm_policy=policy)
        handle = await start_agent(harness.client, input, task_queue=harness.task_queue)
        await eventually(lambda: waiting(handle))
        _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="yes"))
        await handle.result()
        # `watch` of a finished run reads its last messages from a worker, then says
        # where to look further.
        watched = await cli(env, "watch", handle.id)

    text = render_tree(await history_trace(harness.client, handle.id))
    lines = text.splitlines()
    assert names(text) == [
        f"agent {handle.id}",
        "  duragent.describe_tools",
        "  cycle 1",
        "    chat scripted",
        "    execute_tool _write_file",
        "  cycle 2",
        "    chat scripted",
        "    update reply",
        "  cycle 3",
        "    chat scripted",
    ], text
    assert "completed" in lines[0]
    assert lines[1].endswith(" s  local")  # listed by a local activity, in the first task
    assert "2 attempts" in lines[3]
    assert "tokens 120 in / 7 out, finish tool_calls" in lines[3]
    assert lines[4].endswith("success")
    assert all(" s" in line for line in lines if "update" not in line), "every step's duration"

    # The same from the command line, without a worker: it is all in history.
    printed = await cli(env, "trace", handle.id)
    assert printed.returncode == 0, printed.stderr
    assert names(printed.stdout) == names(text)
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.startswith("trace:   not exported")  # no OTEL_* variables here
    assert f"tree:    duragent trace {handle.id}" in watched.stdout
    assert "metrics: off in this environment (DURAGENT_METRICS_PORT=0)" in watched.stdout


async def test_trace_of_an_unknown_agent_is_one_line(harness: Harness) -> None:
    printed = await cli(worker_env(harness), "trace", "agent-nope")
    assert printed.returncode == 2
    assert printed.stderr.strip() == "duragent: error: no agent with id 'agent-nope'"
