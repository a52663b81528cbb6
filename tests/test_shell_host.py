"""Shell work pinned to one worker: background commands checked where they run, lost with it.

Real dev server, real worker processes (a SIGKILL is a SIGKILL), the scripted LLM. The
agent's other activities run wherever the shared task queue sends them; its shell calls
and the watches of its background commands go to its worker's own queue.
"""

from __future__ import annotations

import hashlib
import signal
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle

from duragent.worker.client import start_agent
from duragent.worker.main import agent_workers
from duragent.worker.render import status_lines
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    AgentInput,
    AgentResult,
    AgentStatus,
    AgentView,
    BackgroundState,
    HistoryPolicy,
    ReplyInput,
)
from tests.conftest import Harness, eventually
from tests.processes import spawn_worker, worker_env
from tests.test_agent import call, finish, tool_messages
from tests.test_sandbox import live_pids_with, needs_bwrap

RUN_TOOL = "duragent.run_tool"
WATCH = "duragent.watch_background"
LLM = "duragent.llm_chat"
ENDINGS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}


def session_of(agent_id: str, cycle: int, step: int) -> str:
    """The session id ``_bash(background=true)`` returns for the scripted call of a step."""
    key = f"{agent_id}:{cycle}:call_{step}_0"
    return "bg-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def tag() -> str:
    """A unique number for a command line, so its processes can be found by it."""
    return f"{uuid.uuid4().int % 10**6:06d}"


async def start(h: Harness, task: str, agent_id: str, **overrides: Any) -> WorkflowHandle[Any, Any]:
    input = AgentInput(task=task, model="scripted", **overrides)
    return await start_agent(h.client, input, task_queue=h.task_queue, agent_id=agent_id)


async def view(handle: WorkflowHandle[Any, Any]) -> AgentView:
    result: AgentView = await handle.query(AgentWorkflow.status)
    return result


async def waiting(handle: WorkflowHandle[Any, Any]) -> bool:
    return (await view(handle)).status is AgentStatus.WAITING_USER


async def reply(handle: WorkflowHandle[Any, Any], answer: str = "go on") -> None:
    _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer=answer))


async def activity_events(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """Each activity of the run: its type, queue, input payload text and who started it."""
    scheduled: dict[int, dict[str, Any]] = {}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            asked = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = {
                "type": asked.activity_type.name,
                "queue": asked.task_queue.name,
                "input": b"".join(p.data for p in asked.input.payloads).decode(),
                "identity": None,
            }
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            took = event.activity_task_started_event_attributes
            scheduled[took.scheduled_event_id]["identity"] = took.identity
        elif event.event_type in ENDINGS:
            attrs = getattr(event, ENDINGS[event.event_type])
            scheduled[attrs.scheduled_event_id]["end"] = ENDINGS[event.event_type].split("_")[2]
    return list(scheduled.values())


async def test_a_background_command_is_checked_and_stopped_where_it_runs(
    harness: Harness,
) -> None:
    """Started on worker A; checked and stopped there while B runs everything else."""
    agent_id = f"pinned-{uuid.uuid4().hex[:8]}"
    marker = tag()
    session = session_of(agent_id, 1, 0)
    task = harness.script(
        [
            {
                "tool_calls": [
                    call("_bash", command=f"echo up; sleep 120.{marker}", background=True)
                ]
            },
            {"tool_calls": [call("_ask_user", question="go on?")]},
            {"tool_calls": [call("_check_background_command", session_id=session)]},
            {"tool_calls": [call("_write_file", path="b.txt", content="from b")]},
            {"tool_calls": [call("_stop_background_command", session_id=session)]},
            finish(),
        ]
    )
    settings = harness.settings()
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(agent_workers(harness.client, settings))
        handle = await start(harness, task, agent_id)
        await eventually(lambda: waiting(handle), "the question", within=30)
        assert live_pids_with(f"sleep 120.{marker}"), "the command runs"
        pinned = await view(handle)
        assert pinned.shell is not None and pinned.shell.host == a.host_queue
        # A stops taking the shared queue's work; its host queue (and the command) stay.
        await a.shared.shutdown()
        b = await stack.enter_async_context(agent_workers(harness.client, settings))
        await reply(handle)
        result: AgentResult = await handle.result()
        events = await activity_events(handle)
        final = await view(handle)

    assert result.status is AgentStatus.COMPLETED, result
    check, _, stop = tool_messages(harness.requests()[-1].body)[2:5]
    assert "running" in check and "up" in check, check
    assert "ended" in stop and "SIGTERM" in stop, stop
    assert not live_pids_with(f"sleep 120.{marker}")
    shell_calls = [e for e in events if e["type"] == RUN_TOOL and "background" in e["input"]]
    assert len(shell_calls) == 3  # start, check, stop
    assert {e["queue"] for e in shell_calls} == {a.host_queue}
    assert {e["identity"] for e in shell_calls} == {a.identity}
    watches = [e for e in events if e["type"] == WATCH]
    assert [(w["queue"], w["identity"]) for w in watches] == [(a.host_queue, a.identity)]
    # Everything else after the answer ran on B: the LLM calls and the file tool.
    llm_calls = [e for e in events if e["type"] == LLM]
    write = [e for e in events if e["type"] == RUN_TOOL and "b.txt" in e["input"]]
    assert len(llm_calls) == 6 and len(write) == 1
    assert {e["identity"] for e in [*llm_calls[2:], *write]} == {b.identity}
    assert final.shell is not None
    [stopped] = final.shell.background
    assert (stopped.state, stopped.exit_code) == (BackgroundState.ENDED, -signal.SIGTERM)


@needs_bwrap  # without the sandbox, only the shell dies with its worker (see README)
async def test_a_killed_workers_command_is_lost_and_gone_and_the_agent_goes_on(
    harness: Harness, tmp_path: Path
) -> None:
    agent_id = f"lost-{uuid.uuid4().hex[:8]}"
    marker = tag()
    session = session_of(agent_id, 1, 0)
    task = harness.script(
        [
            {
                "tool_calls": [
                    call("_bash", command=f"echo up; sleep 300.{marker}", background=True)
                ]
            },
            {"tool_calls": [call("_ask_user", question="go on?")]},
            {"tool_calls": [call("_check_background_command", session_id=session)]},
            {"tool_calls": [call("_bash", command="echo after the loss")]},
            finish(),
        ]
    )
    env = worker_env(harness)
    harness.workspace.mkdir(parents=True, exist_ok=True)
    first = await spawn_worker(env, tmp_path / "first.log")
    second = None
    try:
        handle = await start(harness, task, agent_id)
        await eventually(lambda: waiting(handle), "the question", within=60)
        pids = await eventually(lambda: live_pids_with(f"sleep 300.{marker}"), "the command")
        pinned = await view(handle)
        assert pinned.shell is not None and str(first.pid) in (pinned.shell.host or "")
        second = await spawn_worker(env, tmp_path / "second.log")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        await reply(handle)
        result: AgentResult = await handle.result()
        final = await view(handle)
        events = await activity_events(handle)
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()

    assert result.status is AgentStatus.COMPLETED, result
    check, after = tool_messages(harness.requests()[-1].body)[2:4]
    assert "lost" in check and session in check, check
    assert "after the loss" in after
    assert not set(live_pids_with(f"sleep 300.{marker}")) & set(pids)
    assert final.shell is not None and final.shell.host is not None
    assert str(second.pid) in final.shell.host  # the shell moved to the live worker
    assert [s.state for s in final.shell.background] == [BackgroundState.LOST]
    shown = status_lines(agent_id, final)  # what `duragent status` prints
    assert f"shell:   on {final.shell.worker}" in shown
    assert f"{session} lost: echo up; sleep 300.{marker}" in shown and "stopped responding" in shown
    # The watch timed out on its heartbeat, and the check was answered by that, never by
    # waiting out its own pickup timeout: sent to the dead queue and cancelled, or (when
    # the reply's task waited out the dead worker's sticky timeout first) answered from
    # the lost state without a call.
    [watch] = [e for e in events if e["type"] == WATCH]
    checks = [e for e in events if e["type"] == RUN_TOOL and "_check_background" in e["input"]]
    assert watch["end"] == "timed"
    assert [(c["end"], c["identity"]) for c in checks] in ([], [("canceled", None)]), checks


async def test_a_command_outlives_continue_as_new_and_stops_with_the_run(
    harness: Harness,
) -> None:
    agent_id = f"carried-{uuid.uuid4().hex[:8]}"
    marker = tag()
    session = session_of(agent_id, 1, 0)
    task = harness.script(
        [
            {
                "tool_calls": [
                    call("_bash", command=f"echo up; sleep 120.{marker}", background=True)
                ]
            },
            *[{"tool_calls": [call("_list_files")]} for _ in range(12)],
            {"tool_calls": [call("_check_background_command", session_id=session)]},
            finish(),
        ]
    )
    async with harness.worker():
        handle = await start(harness, task, agent_id, history=HistoryPolicy(max_events=100))
        result: AgentResult = await handle.result()
    assert result.status is AgentStatus.COMPLETED and result.runs >= 2, result
    check = tool_messages(harness.requests()[-1].body)[-1]
    assert "running" in check and "up" in check, check
    # The run ended: its command was stopped, not left to the worker.
    assert not live_pids_with(f"sleep 120.{marker}")


async def test_a_cancelled_agent_stops_its_background_commands(harness: Harness) -> None:
    agent_id = f"cancel-{uuid.uuid4().hex[:8]}"
    marker = tag()
    task = harness.script(
        [
            {"tool_calls": [call("_bash", command=f"sleep 120.{marker}", background=True)]},
            {"tool_calls": [call("_ask_user", question="wait here")]},
        ]
    )
    async with harness.worker():
        handle = await start(harness, task, agent_id)
        await eventually(lambda: waiting(handle), "the question", within=30)
        assert live_pids_with(f"sleep 120.{marker}")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):  # closed Canceled, after the cleanup
            await handle.result()
        assert not live_pids_with(f"sleep 120.{marker}")
        final = await view(handle)
    assert final.status is AgentStatus.CANCELLED
    assert final.shell is not None
    assert [s.state for s in final.shell.background] == [BackgroundState.STOPPED]


async def test_a_worker_shutting_down_stops_its_commands_and_the_shell_moves(
    harness: Harness,
) -> None:
    """A deploy does not wait for background commands: they stop, the run hears why."""
    agent_id = f"deploy-{uuid.uuid4().hex[:8]}"
    marker = tag()
    session = session_of(agent_id, 1, 0)
    task = harness.script(
        [
            {"tool_calls": [call("_bash", command=f"sleep 120.{marker}", background=True)]},
            {"tool_calls": [call("_ask_user", question="go on?")]},
            {"tool_calls": [call("_check_background_command", session_id=session)]},
            {"tool_calls": [call("_bash", command="echo on the new worker")]},
            finish(),
        ]
    )
    async with agent_workers(harness.client, harness.settings()) as old:
        handle = await start(harness, task, agent_id)
        await eventually(lambda: waiting(handle), "the question", within=30)
        assert live_pids_with(f"sleep 120.{marker}")
    assert not live_pids_with(f"sleep 120.{marker}")  # stopped before the worker exited
    async with agent_workers(harness.client, harness.settings()) as new:
        await reply(handle)
        result: AgentResult = await handle.result()
        final = await view(handle)
        events = await activity_events(handle)
    assert result.status is AgentStatus.COMPLETED, result
    check, after = tool_messages(harness.requests()[-1].body)[2:4]
    assert "lost" in check and "shut down" in check, check
    assert "on the new worker" in after
    assert final.shell is not None and final.shell.host == new.host_queue
    shells = [e["queue"] for e in events if e["type"] == RUN_TOOL and "_bash" in e["input"]]
    assert shells == [old.host_queue, new.host_queue]
