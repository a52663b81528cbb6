"""Recorded histories: what running agents replay after a code change.

``uv run python -m tests.replay record`` runs the reference scenario on an embedded
server and writes ``tests/histories/<name>.json``. Record a new file (keep the old ones)
when a change is deliberately versioned with ``workflow.patched()``; the replay test
replays every committed file, so a change that would break running agents fails CI.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer, WorkflowReplayResult

from duragent.activities import limits
from duragent.worker.client import start_agent
from duragent.worker.embedded import embedded
from duragent.worker.main import agent_worker
from duragent.worker.plugin import DuragentPlugin
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    AgentInput,
    AgentStatus,
    ApprovalDecision,
    ApprovalPolicy,
    HistoryPolicy,
    ReplyInput,
    SteerInput,
    SubAgentSpec,
)
from tests.conftest import eventually

HISTORIES = Path(__file__).with_name("histories")

# Tools over several cycles, a malformed call, an unknown tool, a nudge, a question
# answered by update, then finish: every branch of the cycle once.
REFERENCE_STEPS: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "_write_file", "arguments": {"path": "a.txt", "content": "A"}}]},
    {"tool_calls": [{"name": "_read_file", "arguments": '{"path": '}, {"name": "_nope"}]},
    {"content": "thinking out loud"},
    {"tool_calls": [{"name": "_ask_user", "arguments": {"question": "Go on?"}}]},
    {"tool_calls": [{"name": "_task_finish", "arguments": {"message": "done"}}]},
]


async def replay(history: WorkflowHistory) -> WorkflowReplayResult:
    """Replay one history with the same plugin the worker uses."""
    replayer = Replayer(workflows=[], plugins=[DuragentPlugin()])
    return await replayer.replay_workflow(history, raise_on_replay_failure=False)


async def record_reference(name: str) -> Path:
    """Run the reference scenario and save its history."""
    scripts = [{"name": "ref", "match": "[reference]", "steps": REFERENCE_STEPS}]
    with tempfile.TemporaryDirectory() as tmp:
        async with embedded(Path(tmp), scripts=scripts, task_queue="record") as env:
            async with agent_worker(env.client, env.settings):
                input = AgentInput(task="[reference] write, read, ask, finish", model="scripted")
                handle = await start_agent(env.client, input, task_queue="record", agent_id=name)
                await eventually(lambda: _waiting(handle))
                _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="yes"))
                await handle.result()
            history = await handle.fetch_history()
    path = HISTORIES / f"{name}.json"
    path.write_text(history.to_json(), encoding="utf-8")
    return path


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


# Version 2 adds: todos, a large result kept as an artifact, a rejected approval, a
# steering message, a sub-agent (child workflow), and a continue-as-new.
REFERENCE_V2_STEPS: list[dict[str, Any]] = [
    {
        "tool_calls": [
            {
                "name": "_todo_write",
                "arguments": {
                    "todos": [{"id": "1", "content": "write and read", "status": "in_progress"}]
                },
            },
            {"name": "_write_file", "arguments": {"path": "big.txt", "content": "y" * 5_000}},
        ]
    },
    _call("_read_file", path="big.txt"),
    _call("_bash", command="rm -rf /"),
    _call("_create_sub_task", agent="helper", task="[reference child] say hi"),
    *[_call("_list_files") for _ in range(6)],
    {
        "tool_calls": [
            {
                "name": "_todo_write",
                "arguments": {
                    "todos": [{"id": "1", "content": "write and read", "status": "completed"}]
                },
            },
            {"name": "_task_finish", "arguments": {"message": "done"}},
        ]
    },
]


Drive = Callable[[WorkflowHandle[AgentWorkflow, Any]], Coroutine[Any, Any, None]]


async def _record_runs(
    name: str, scripts: list[dict[str, Any]], input: AgentInput, drive: Drive
) -> list[Path]:
    """Run a scenario that continues as new; save its first and its last run's histories.

    ``drive`` answers what the scenario waits for and checks how it ended.
    """
    with tempfile.TemporaryDirectory() as tmp:
        async with embedded(Path(tmp), scripts=scripts, task_queue="record") as env:
            client = env.client
            async with agent_worker(client, env.settings):
                handle = await start_agent(client, input, task_queue="record", agent_id=name)
                await drive(handle)
                result = await handle.result()
                assert result.runs >= 2, "the scenario must continue as new"
            assert handle.result_run_id is not None
            first = client.get_workflow_handle(name, run_id=handle.result_run_id)
            runs = [await first.fetch_history(), await handle.fetch_history()]
    paths = [HISTORIES / f"{name}@run{i}.json" for i in (1, 2)]
    for path, history in zip(paths, runs, strict=True):
        path.write_text(history.to_json(), encoding="utf-8")
    return paths


async def record_reference_v2(name: str) -> list[Path]:
    """Run the version 2 scenario; save the first and the last run's histories."""
    scripts = [
        {
            "name": "child",
            "match": "[reference child]",
            "steps": [_call("_task_finish", message="hi")],
        },
        {"name": "ref2", "match": "[reference v2]", "steps": REFERENCE_V2_STEPS},
    ]
    input = AgentInput(
        task="[reference v2] everything once",
        model="scripted",
        sub_agents={"helper": SubAgentSpec(description="says hi")},
        history=HistoryPolicy(max_events=100),
    )

    async def drive(handle: WorkflowHandle[AgentWorkflow, Any]) -> None:
        pending = await eventually(lambda: _approval(handle))
        await handle.signal(AgentWorkflow.say, SteerInput(message="be brief"))
        decision = ApprovalDecision(call_id=pending, action="reject", message="no")
        _ = await handle.execute_update(AgentWorkflow.decide, decision)

    return await _record_runs(name, scripts, input, drive)


async def _approval(handle: WorkflowHandle[AgentWorkflow, Any]) -> str | None:
    view = await handle.query(AgentWorkflow.pending)
    return view.approvals[0].call_id if view.approvals else None


async def _waiting(handle: WorkflowHandle[AgentWorkflow, Any]) -> bool:
    view = await handle.query(AgentWorkflow.status)
    return view.status is AgentStatus.WAITING_USER


# Version 3 (issue 9) adds: a tool call the LLM activity refused as oversize, a
# sub-agent started with a share of the parent's token budget, a steering message
# dropped as oversize next to one taken in, and an approval decided by an edit.
OVERSIZE_ARGUMENTS = json.dumps({"path": "huge.txt", "content": "h" * 300_000})
REFERENCE_V3_STEPS: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "_write_file", "arguments": OVERSIZE_ARGUMENTS}]},
    _call("_create_sub_task", agent="helper", task="[reference child] say hi"),
    _call("_write_file", path="b.txt", content="proposed"),
    _call("_task_finish", message="done"),
]


async def record_reference_v3(name: str) -> Path:
    """Run the version 3 scenario and save its history."""
    scripts = [
        {
            "name": "child",
            "match": "[reference child]",
            "steps": [_call("_task_finish", message="hi")],
        },
        {"name": "ref3", "match": "[reference v3]", "steps": REFERENCE_V3_STEPS},
    ]
    with tempfile.TemporaryDirectory() as tmp:
        async with embedded(Path(tmp), scripts=scripts, task_queue="record") as env:
            async with agent_worker(env.client, env.settings):
                input = AgentInput(
                    task="[reference v3] bounds, budgets, edits",
                    model="scripted",
                    stream=False,
                    sub_agents={"helper": SubAgentSpec(description="says hi")},
                    max_tokens=1_000_000,
                    approval=ApprovalPolicy(tools={"_write_file": "always"}),
                )
                handle = await start_agent(env.client, input, task_queue="record", agent_id=name)
                pending = await eventually(lambda: _approval(handle))
                too_long = SteerInput(message="x" * (limits.MAX_SAY_BYTES + 1))
                await handle.signal(AgentWorkflow.say, too_long)
                await handle.signal(AgentWorkflow.say, SteerInput(message="be brief"))
                await eventually(lambda: _dropped(handle))
                edited = json.dumps({"path": "b.txt", "content": "edited"})
                decision = ApprovalDecision(call_id=pending, action="edit", arguments=edited)
                _ = await handle.execute_update(AgentWorkflow.decide, decision)
                result = await handle.result()
                assert result.status is AgentStatus.COMPLETED, result
            history = await handle.fetch_history()
    path = HISTORIES / f"{name}.json"
    path.write_text(history.to_json(), encoding="utf-8")
    return path


async def _dropped(handle: WorkflowHandle[AgentWorkflow, Any]) -> bool:
    view = await handle.query(AgentWorkflow.status)
    return view.dropped_inputs == 1


# Version 4 (issue 11) adds per-agent workspaces: the run decides its folder (the
# ``per-agent-workspace`` patch), a sub-agent works in it too, a large result becomes an
# artifact there, and continue-as-new carries the folder into the second run.
REFERENCE_V4_STEPS: list[dict[str, Any]] = [
    _call("_write_file", path="mine.txt", content="M" * 5_000),
    _call("_read_file", path="mine.txt"),
    _call("_create_sub_task", agent="helper", task="[reference v4 child] read mine.txt"),
    *[_call("_list_files") for _ in range(6)],
    _call("_read_file", path="mine.txt", start_line=1, end_line=1),
    _call("_task_finish", message="done", files=["mine.txt"]),
]


async def record_reference_v4(name: str) -> list[Path]:
    """Run the version 4 scenario; save the first and the last run's histories."""
    scripts = [
        {
            "name": "child",
            "match": "[reference v4 child]",
            "steps": [_call("_read_file", path="mine.txt"), _call("_task_finish", message="M")],
        },
        {"name": "ref4", "match": "[reference v4]", "steps": REFERENCE_V4_STEPS},
    ]
    input = AgentInput(
        task="[reference v4] a workspace of its own",
        model="scripted",
        sub_agents={"helper": SubAgentSpec(description="reads")},
        history=HistoryPolicy(max_events=100),
    )

    async def drive(handle: WorkflowHandle[AgentWorkflow, Any]) -> None:
        result = await handle.result()
        assert result.status is AgentStatus.COMPLETED, result
        assert result.workspace == name, result

    return await _record_runs(name, scripts, input, drive)


def _session(agent_id: str, cycle: int, step: int) -> str:
    """The session id of the background command a scripted step starts."""
    key = f"{agent_id}:{cycle}:call_{step}_0"
    return "bg-" + hashlib.sha256(key.encode()).hexdigest()[:16]


# Version 5 adds shell work pinned to a worker: the claim, a background command and its
# watch, a foreground command and a check on the host queue, the command carried across
# a continue-as-new and watched again, then stopped.
def reference_v5_steps(agent_id: str) -> list[dict[str, Any]]:
    """The version 5 scenario's steps (session ids follow from the agent id)."""
    session = _session(agent_id, 1, 0)
    return [
        _call("_bash", command="echo up; sleep 60", background=True),
        _call("_bash", command="echo foreground"),
        _call("_check_background_command", session_id=session),
        *[_call("_list_files") for _ in range(8)],
        _call("_check_background_command", session_id=session),
        _call("_stop_background_command", session_id=session),
        _call("_task_finish", message="done"),
    ]


async def record_reference_v5(name: str) -> list[Path]:
    """Run the version 5 scenario; save the first and the last run's histories."""
    scripts = [{"name": "ref5", "match": "[reference v5]", "steps": reference_v5_steps(name)}]
    input = AgentInput(
        task="[reference v5] a shell on one worker",
        model="scripted",
        history=HistoryPolicy(max_events=100),
    )

    async def drive(handle: WorkflowHandle[AgentWorkflow, Any]) -> None:
        result = await handle.result()
        assert result.status is AgentStatus.COMPLETED, result
        transcript = await handle.query(AgentWorkflow.transcript)
        checks = [m.content or "" for m in transcript.messages if m.name and "check" in m.name]
        assert checks and all("running" in c for c in checks), checks

    return await _record_runs(name, scripts, input, drive)


# Graph version 1: a task node, a map of two agents, a gate answered "revise" then
# "approve" (a loop), routes, and a continue-as-new between steps.
GRAPH_V1: dict[str, Any] = {
    "graph": "reference",
    "state": {
        "title": {"type": "string"},
        "slug": {"type": "string"},
        "parts": {"type": "array"},
        "drafts": {"type": "array"},
        "verdict": {"type": "object"},
    },
    "nodes": {
        "name": {
            "task": {"ref": "examples.graphs.tasks:slugify", "args": {"title": "${title}"}},
            "writes": "slug",
        },
        "write": {
            "map": {
                "over": "${parts}",
                "node": {"agent": {"task": "[reference graph] write ${item} of ${slug}"}},
                "concurrency": 2,
            },
            "writes": "drafts",
        },
        "review": {
            "gate": {
                "prompt": "Approve ${slug}?",
                "show": "${drafts}",
                "answer": {"type": "object", "required": ["decision"]},
            },
            "writes": "verdict",
            "max_visits": 3,
            "on_exhausted": "END",
        },
    },
    "edges": [
        ["START", "name", "write", "review"],
        {
            "from": "review",
            "on": "${verdict.decision}",
            "to": {"approve": "END", "revise": "write"},
        },
    ],
}


async def record_graph_v1(name: str) -> list[Path]:
    """Run the graph scenario; save its first and its last run's histories."""
    from duragent.workflows.graph import GraphWorkflow
    from duragent.workflows.graph_load import load_graph
    from duragent.workflows.graph_models import GateDecision, GraphInput, GraphStatus

    scripts = [
        {
            "name": "parts",
            "match": "[reference graph]",
            "steps": [_call("_task_finish", message="a part")],
        }
    ]
    with tempfile.TemporaryDirectory() as tmp:
        async with embedded(Path(tmp), scripts=scripts, task_queue="record") as env:
            client = env.client
            settings = dataclasses.replace(env.settings, load=("examples.graphs.tasks",))
            async with agent_worker(client, settings):
                input = GraphInput(
                    spec=load_graph(GRAPH_V1),
                    input={"title": "Reference Graph", "parts": ["intro", "body", "more", "end"]},
                    model="scripted",
                    history_max_events=100,
                )
                handle = await client.start_workflow(
                    GraphWorkflow.run, input, id=name, task_queue="record"
                )
                decisions = [
                    ("review@1", "revise"),
                    ("review@2", "revise"),
                    ("review@3", "approve"),
                ]
                for gate, decision in decisions:
                    await eventually(functools.partial(_gate_open, handle, gate), within=60)
                    _ = await handle.execute_update(
                        GraphWorkflow.decide,
                        GateDecision(gate_id=gate, answer={"decision": decision}),
                    )
                result = await handle.result()
                assert result.status is GraphStatus.COMPLETED, result
                assert result.runs >= 2, "the scenario must continue as new"
            first = client.get_workflow_handle(name, run_id=handle.first_execution_run_id)
            runs = [await first.fetch_history(), await handle.fetch_history()]
    paths = [HISTORIES / f"{name}@run{i}.json" for i in (1, 2)]
    for path, history in zip(paths, runs, strict=True):
        path.write_text(history.to_json(), encoding="utf-8")
    return paths


async def _gate_open(handle: WorkflowHandle[Any, Any], gate: str) -> bool:
    from duragent.workflows.graph import GraphWorkflow

    view = await handle.query(GraphWorkflow.status)
    return any(g.id == gate for g in view.gates)


# Live events (the ``live-events`` patch): text streamed in token batches (signals from
# the LLM activity), a malformed publish dropped, a reader's long-poll update, an
# approval and a question, and the stream carried across a continue-as-new.
REFERENCE_EVENTS_STEPS: list[dict[str, Any]] = [
    {"content": "Writing a file first.", **_call("_write_file", path="e.txt", content="E")},
    {"content": "Then one question.", **_call("_ask_user", question="Go on?")},
    *[{"content": f"Listing, step {i}.", **_call("_list_files")} for i in range(6)],
    _call("_task_finish", message="streamed"),
]


async def record_events(name: str) -> list[Path]:
    """Run the live events scenario; save the first and the last run's histories."""
    from temporalio.contrib.workflow_streams import PublishInput, WorkflowStreamClient

    from duragent.workflows.events import PUBLISH_SIGNAL

    scripts = [{"name": "events", "match": "[reference events]", "steps": REFERENCE_EVENTS_STEPS}]
    input = AgentInput(
        task="[reference events] stream, ask, approve",
        model="scripted",
        approval=ApprovalPolicy(tools={"_write_file": "always"}),
        history=HistoryPolicy(max_events=100),
    )

    async def drive(handle: WorkflowHandle[AgentWorkflow, Any]) -> None:
        await handle.signal(PUBLISH_SIGNAL, PublishInput(publisher_id="x" * 300))
        reader = WorkflowStreamClient(handle, client=handle._client)
        async for item in reader.subscribe(from_offset=0):  # the library's update poll
            if item.offset >= 2:
                break
        pending = await eventually(lambda: _approval(handle))
        decision = ApprovalDecision(call_id=pending, action="approve")
        _ = await handle.execute_update(AgentWorkflow.decide, decision)
        await eventually(lambda: _waiting(handle))
        _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="yes"))

    return await _record_runs(name, scripts, input, drive)


RECORDERS: dict[str, Callable[[str], Coroutine[Any, Any, object]]] = {
    "record": record_reference,
    "record-v2": record_reference_v2,
    "record-v3": record_reference_v3,
    "record-v4": record_reference_v4,
    "record-v5": record_reference_v5,
    "record-graph-v1": record_graph_v1,
    "record-events": record_events,
    # The graph scenario again, recorded with the live-events patch (graph-v2).
    "record-graph-v2": record_graph_v1,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in RECORDERS:
        sys.exit(f"usage: python -m tests.replay {'|'.join(RECORDERS)} NAME")
    print(asyncio.run(RECORDERS[sys.argv[1]](sys.argv[2])))
