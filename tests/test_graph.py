"""Graphs on the real dev server with the scripted LLM: agents, gates, routes, loops, maps."""

from __future__ import annotations

import dataclasses
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from duragent.worker.main import agent_worker
from duragent.workflows import search_attributes as search
from duragent.workflows.graph import GraphWorkflow
from duragent.workflows.graph_load import load_graph
from duragent.workflows.graph_models import (
    GateDecision,
    GraphInput,
    GraphResult,
    GraphStatus,
    NodeStatus,
)
from duragent.workflows.graph_spec import GraphSpec
from tests.conftest import Harness, eventually
from tests.processes import spawn_worker, worker_env
from tests.replay import replay
from tests.test_agent import call, finish

EXAMPLES = Path(__file__).parent.parent / "examples" / "graphs"


def loop_graph(marker: str, *, max_reviews: int = 3, deadline: str | None = None) -> GraphSpec:
    """Write a draft, a person reviews it: approve ends, revise writes again."""
    gate: dict[str, Any] = {
        "prompt": "Approve the draft of ${topic}?",
        "show": "${draft}",
        "answer": {
            "type": "object",
            "properties": {"decision": {"enum": ["approve", "revise"]}},
            "required": ["decision"],
        },
    }
    if deadline is not None:
        gate |= {"deadline": deadline, "on_timeout": {"decision": "approve"}}
    return load_graph(
        {
            "graph": "loop",
            "state": {
                "topic": {"type": "string"},
                "draft": {"type": "string"},
                "verdict": {"type": "object"},
            },
            "nodes": {
                "write": {"agent": {"task": f"{marker} write about ${{topic}}"}, "writes": "draft"},
                "review": {
                    "gate": gate,
                    "writes": "verdict",
                    "max_visits": max_reviews,
                    "on_exhausted": "END",
                },
            },
            "edges": [
                ["START", "write", "review"],
                {
                    "from": "review",
                    "on": "${verdict.decision}",
                    "to": {"approve": "END", "revise": "write"},
                },
            ],
        }
    )


async def start_graph(
    h: Harness, spec: GraphSpec, input: dict[str, Any], **extra: Any
) -> WorkflowHandle[GraphWorkflow, GraphResult]:
    graph_id = f"graph-{uuid.uuid4().hex[:10]}"
    return await h.client.start_workflow(
        GraphWorkflow.run,
        GraphInput(spec=spec, input=input, model="scripted", **extra),
        id=graph_id,
        task_queue=h.task_queue,
        search_attributes=search.at_start("scripted", None),
    )


async def open_gate(handle: WorkflowHandle[GraphWorkflow, GraphResult]) -> str | None:
    view = await handle.query(GraphWorkflow.status)
    return view.gates[0].id if view.gates else None


async def decide(handle: WorkflowHandle[GraphWorkflow, GraphResult], gate: str, answer: Any) -> str:
    result: str = await handle.execute_update(
        GraphWorkflow.decide, GateDecision(gate_id=gate, answer=answer)
    )
    return result


async def test_a_draft_is_revised_once_then_approved(harness: Harness) -> None:
    task = harness.script([finish("a fine draft")])
    marker = task.removesuffix(" do the task")
    spec = loop_graph(marker)
    async with harness.worker():
        handle = await start_graph(harness, spec, {"topic": "durable graphs"})
        first = await eventually(lambda: open_gate(handle), "the first review", within=30)
        assert first == "review@1"
        view = await handle.query(GraphWorkflow.status)
        assert view.status is GraphStatus.WAITING_USER
        assert view.gates[0].prompt == "Approve the draft of durable graphs?"
        assert view.gates[0].show == "a fine draft"
        assert await decide(handle, first, {"decision": "revise"}) == "review@1"
        second = await eventually(
            lambda: _is(open_gate(handle), "review@2"), "the second review", within=30
        )
        assert second
        await decide(handle, "review@2", {"decision": "approve"})
        result = await handle.result()
        view = await handle.query(GraphWorkflow.status)
    assert result.status is GraphStatus.COMPLETED, result
    assert result.state["verdict"] == {"decision": "approve"}
    assert result.output == result.state  # no `output:` field: the whole state
    visits = {n.name: (n.status, n.visits) for n in view.nodes}
    assert visits == {"write": (NodeStatus.DONE, 2), "review": (NodeStatus.DONE, 2)}
    assert len(harness.requests()) == 2  # the agent ran twice, one cycle each
    assert result.fingerprint == spec.fingerprint()
    replayed = await replay(await handle.fetch_history())
    assert replayed.replay_failure is None, replayed.replay_failure


async def _is(value: Any, expected: Any) -> bool:
    return bool((await value) == expected)


async def test_a_stale_gate_and_a_wrong_answer_are_rejected_before_history(
    harness: Harness,
) -> None:
    task = harness.script([finish("draft")])
    spec = loop_graph(task.removesuffix(" do the task"))
    async with harness.worker():
        handle = await start_graph(harness, spec, {"topic": "t"})
        gate = await eventually(lambda: open_gate(handle), "the review", within=30)
        for gate_id, answer, says in [
            ("review@2", {"decision": "approve"}, "no open gate 'review@2' (open: review@1)"),
            ("nope", {"decision": "approve"}, "no open gate 'nope'"),
            (gate, {"decision": "maybe"}, "decision: 'maybe' is not one of"),
            (gate, {"note": "no decision"}, "'decision' is a required property"),
            (gate, "approve", "is not of type 'object'"),
        ]:
            with pytest.raises(WorkflowUpdateFailedError) as failed:
                await decide(handle, gate_id, answer)
            assert says in str(failed.value.cause), (gate_id, answer, failed.value.cause)
        await decide(handle, gate, {"decision": "approve"})
        # Answered: no longer open (rejected, or the graph has already completed).
        with pytest.raises((WorkflowUpdateFailedError, RPCError)):
            await decide(handle, gate, {"decision": "revise"})
        result = await handle.result()
    assert result.status is GraphStatus.COMPLETED
    accepted = [
        e
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert len(accepted) == 1  # the rejected ones never reached history


async def test_a_gate_past_its_deadline_takes_its_default_answer(harness: Harness) -> None:
    task = harness.script([finish("draft")])
    spec = loop_graph(task.removesuffix(" do the task"), deadline="1s")
    async with harness.worker():
        handle = await start_graph(harness, spec, {"topic": "t"})
        result = await handle.result()
    assert result.status is GraphStatus.COMPLETED
    assert result.state["verdict"] == {"decision": "approve"}


async def test_spent_visits_take_the_on_exhausted_edge(harness: Harness) -> None:
    task = harness.script([finish("draft")])
    spec = loop_graph(task.removesuffix(" do the task"), max_reviews=2)
    async with harness.worker():
        handle = await start_graph(harness, spec, {"topic": "t"})
        for visit in (1, 2):
            gate = f"review@{visit}"
            await eventually(lambda g=gate: _is(open_gate(handle), g), gate, within=30)  # type: ignore[misc]
            await decide(handle, gate, {"decision": "revise"})
        result = await handle.result()
        view = await handle.query(GraphWorkflow.status)
    # Two reviews said revise; the third visit is over the budget: on_exhausted is END.
    assert result.status is GraphStatus.COMPLETED
    nodes = {n.name: (n.status, n.visits) for n in view.nodes}
    assert nodes == {"write": (NodeStatus.DONE, 3), "review": (NodeStatus.SKIPPED, 2)}


async def test_an_invalid_graph_fails_at_start_with_every_problem(harness: Harness) -> None:
    spec = GraphSpec.model_validate(
        {
            "name": "broken",
            "state": {"x": {"type": "string"}},
            "nodes": {"a": {"agent": {"task": "${nope}"}, "writes": "missing"}},
            "edges": [{"from": "START", "to": "a"}, {"from": "a", "to": "b"}],
        }
    )
    async with harness.worker():
        handle = await start_graph(harness, spec, {})
        with pytest.raises(Exception) as failed:
            await handle.result()
    text = str(getattr(failed.value, "cause", failed.value))
    assert "invalid graph 'broken'" in text
    for fragment in ("nope", "missing", "'b'"):
        assert fragment in text, text


async def test_the_report_example_runs_plan_map_review(harness: Harness) -> None:
    """The README's report graph: a typed plan, a map of three writers, a revision."""
    spec = load_graph((EXAMPLES / "report.yaml").read_text(), source="report.yaml")
    sections = ["Intro", "Body", "End"]
    harness.llm.add_script(
        {
            "name": f"plan-{harness.marker}",
            "match": "List the sections of a report on tiny graphs",
            "steps": [
                {
                    "tool_calls": [
                        call("_task_finish", message="planned", output={"sections": sections})
                    ]
                }
            ],
        }
    )
    for name in sections:
        harness.llm.add_script(
            {
                "name": f"write-{name}-{harness.marker}",
                "match": f"Write the section {name}",
                "steps": [finish(f"[{name} text]")],
            }
        )
    async with harness.worker():
        handle = await start_graph(harness, spec, {"topic": "tiny graphs"})
        await eventually(lambda: _is(open_gate(handle), "review@1"), "review", within=60)
        await decide(handle, "review@1", {"decision": "revise", "note": "more"})
        await eventually(lambda: _is(open_gate(handle), "review@2"), "review 2", within=60)
        await decide(handle, "review@2", {"decision": "approve"})
        result = await handle.result()
    assert result.status is GraphStatus.COMPLETED, result
    assert result.state["draft"] == "[Intro text]\n\n[Body text]\n\n[End text]"
    # sections is `append`: the plan's three, written once; each writer ran twice.
    assert result.state["sections"] == sections
    ran = [r.script for r in harness.llm.requests if harness.marker in (r.script or "")]
    assert ran.count(f"plan-{harness.marker}") == 1
    for name in sections:
        assert ran.count(f"write-{name}-{harness.marker}") == 2


async def test_a_gate_answered_while_no_worker_runs_is_applied_when_one_starts(
    harness: Harness,
) -> None:
    task = harness.script([finish("draft")])
    spec = loop_graph(task.removesuffix(" do the task"))
    async with harness.worker():
        handle = await start_graph(harness, spec, {"topic": "t"})
        gate = await eventually(lambda: open_gate(handle), "the review", within=30)
    # No worker: a signal is stored by the server; a stale one is dropped, not fatal.
    await handle.signal(GraphWorkflow.decide_signal, GateDecision(gate_id="review@9", answer={}))
    await handle.signal(
        GraphWorkflow.decide_signal, GateDecision(gate_id=gate, answer={"decision": "approve"})
    )
    async with harness.worker():
        result = await handle.result()
        view = await handle.query(GraphWorkflow.status)
    assert result.status is GraphStatus.COMPLETED
    assert result.state["verdict"] == {"decision": "approve"}
    assert view.dropped_inputs == 1


async def test_a_worker_killed_mid_map_is_replaced_and_done_items_never_rerun(
    harness: Harness, tmp_path: Path
) -> None:
    items = [f"item{i}" for i in range(4)]
    for item in items:  # each item's agent answers after a pause, so the kill lands mid-map
        harness.llm.add_script(
            {
                "name": f"{item}-{harness.marker}",
                "match": f"{harness.marker} handle {item}",
                "steps": [{**finish(f"done {item}"), "delay_seconds": 1.0}],
            }
        )
    spec = load_graph(
        {
            "graph": "fan",
            "state": {"items": {"type": "array"}, "results": {"type": "array"}},
            "nodes": {
                "each": {
                    "map": {
                        "over": "${items}",
                        "node": {"agent": {"task": f"{harness.marker} handle ${{item}}"}},
                        "concurrency": 2,
                    },
                    "writes": "results",
                }
            },
            "edges": [["START", "each", "END"]],
            "output": "results",
        }
    )
    env = worker_env(harness)
    first = await spawn_worker(env, tmp_path / "first.log")
    second = None
    try:
        handle = await start_graph(harness, spec, {"items": items})
        done = await eventually(
            lambda: _children_completed(harness, handle), "an item to finish", within=60
        )
        first.send_signal(signal.SIGKILL)
        await first.wait()
        second = await spawn_worker(env, tmp_path / "second.log")
        result = await handle.result()
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
    assert result.status is GraphStatus.COMPLETED, result
    assert result.output == [f"done {item}" for item in items]  # in item order
    started = [
        e
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    assert len(started) == len(items)  # no item started twice
    open_children, most = 0, 0
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            open_children += 1
            most = max(most, open_children)
        elif e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
            open_children -= 1
    assert most == 2  # the map's concurrency, never more
    asked = [r.script for r in harness.llm.requests]
    for child in done:  # finished before the kill: never asked again
        item = items[int(child.rsplit("[", 1)[1].rstrip("]"))]
        assert asked.count(f"{item}-{harness.marker}") == 1, (item, asked)


async def _children_completed(
    h: Harness, handle: WorkflowHandle[GraphWorkflow, GraphResult]
) -> list[str]:
    try:
        view = await handle.query(GraphWorkflow.status)
    except RPCError:  # the worker process is still starting: no one answers queries yet
        return []
    done = []
    for child in view.nodes[0].children:
        try:
            described = await h.client.get_workflow_handle(child).describe()
        except RPCError:  # initiated, not started yet
            continue
        if described.status is WorkflowExecutionStatus.COMPLETED:
            done.append(child)
    return done


async def test_the_research_example_runs_tasks_a_map_and_a_sub_graph(harness: Harness) -> None:
    """Registered tasks, a typed plan, a map that collects, a child graph with its output."""
    spec = load_graph((EXAMPLES / "research.yaml").read_text(), source="research.yaml")
    queries = ["what is durable", "what is a crash"]
    m = harness.marker
    harness.llm.add_script(
        {
            "name": f"plan-{m}",
            "match": "Write three search queries for: Durable agents?",
            "steps": [
                {"tool_calls": [call("_task_finish", message="ok", output={"queries": queries})]}
            ],
        }
    )
    for i, query in enumerate(queries):
        harness.llm.add_script(
            {
                "name": f"q{i}-{m}",
                "match": f"Research and answer briefly: {query}",
                "steps": [finish(f"note {i}")],
            }
        )
    harness.llm.add_script(
        {
            "name": f"sum-{m}",
            "match": "Summarise these notes: note 0; note 1",
            "steps": [finish("two short notes about durability")],
        }
    )
    settings = dataclasses.replace(harness.settings(), load=("examples.graphs.tasks",))
    async with agent_worker(harness.client, settings):
        handle = await start_graph(harness, spec, {"question": "Durable agents?"})
        result = await handle.result()
        view = await handle.query(GraphWorkflow.status)
    assert result.status is GraphStatus.COMPLETED, result
    assert result.state["slug"] == "durable-agents"
    assert result.state["notes"] == ["note 0", "note 1"]
    assert result.output == {"summary": "two short notes about durability", "words": 5}
    [digest] = [n for n in view.nodes if n.name == "digest"]
    assert digest.children == [f"{handle.id}/digest@1"]
    child = await harness.client.get_workflow_handle(digest.children[0]).result()
    assert child["status"] == "completed" and child["state"]["counts"]["words"] == 5


async def test_a_map_of_a_thousand_tasks_stays_within_temporals_limits(harness: Harness) -> None:
    """1,000 items in one run: far from 51,200 events and 2,000 pending operations."""
    items = [f"w{i} x" for i in range(1000)]
    spec = load_graph(
        {
            "graph": "thousand",
            "state": {"items": {"type": "array"}, "counts": {"type": "array"}},
            "nodes": {
                "count": {
                    "map": {
                        "over": "${items}",
                        "node": {
                            "task": {
                                "ref": "examples.graphs.tasks:word_count",
                                "args": {"text": "${item}"},
                            }
                        },
                        "concurrency": 100,
                    },
                    "writes": "counts",
                }
            },
            "edges": [["START", "count", "END"]],
            "output": "counts",
        }
    )
    settings = dataclasses.replace(harness.settings(), load=("examples.graphs.tasks",))
    async with agent_worker(harness.client, settings):
        handle = await start_graph(harness, spec, {"items": items})
        result = await handle.result()
    assert result.status is GraphStatus.COMPLETED, result
    assert isinstance(result.output, list) and len(result.output) == 1000
    assert result.output[0] == {"words": 2, "lines": 1, "chars": 4}
    events = [e async for e in handle.fetch_history_events()]
    scheduled = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert len(scheduled) == 1000  # one activity per item, none repeated
    assert len(events) < 51_200 // 8  # bench.graph_cost prints the sizes


async def test_a_long_loop_continues_as_new_and_keeps_its_state(harness: Harness) -> None:
    visits = 30
    spec = load_graph(
        {
            "graph": "counter",
            "state": {
                "count": {"type": "integer", "default": 0},
                "log": {"type": "array", "reducer": "append"},
            },
            "nodes": {
                "step": {
                    "task": {
                        "ref": "examples.graphs.tasks:word_count",
                        "args": {"text": "${join(log, ' ')} x"},
                    },
                    "writes": {"count": "${result.words}", "log": "${str(result.words)}"},
                    "max_visits": visits + 5,
                }
            },
            "edges": [
                ["START", "step"],
                {
                    "from": "step",
                    "on": f"${{count < {visits}}}",
                    "to": {"true": "step", "false": "END"},
                },
            ],
        }
    )
    settings = dataclasses.replace(harness.settings(), load=("examples.graphs.tasks",))
    async with agent_worker(harness.client, settings):
        handle = await start_graph(harness, spec, {}, history_max_events=100)
        result = await handle.result()
        view = await handle.query(GraphWorkflow.status)
    assert result.status is GraphStatus.COMPLETED, result
    assert result.runs >= 2 and view.runs == result.runs  # it continued as new
    assert result.state["count"] == visits
    assert result.state["log"] == [str(n) for n in range(1, visits + 1)]
    assert [(n.name, n.visits) for n in view.nodes] == [("step", visits)]


async def test_a_task_the_worker_does_not_run_fails_the_graph_at_start(harness: Harness) -> None:
    spec = load_graph(
        {
            "graph": "typo",
            "state": {"text": {"type": "string"}, "n": {"type": "object"}},
            "nodes": {
                "count": {
                    "task": {"ref": "examples.graphs.tasks:word_cont", "args": {"text": "${text}"}},
                    "writes": "n",
                },
            },
            "edges": [["START", "count", "END"]],
        }
    )
    settings = dataclasses.replace(harness.settings(), load=("examples.graphs.tasks",))
    async with agent_worker(harness.client, settings):
        handle = await start_graph(harness, spec, {"text": "a b"})
        with pytest.raises(Exception) as failed:
            await handle.result()
    text = str(getattr(failed.value, "cause", failed.value))
    assert "invalid graph 'typo'" in text and "examples.graphs.tasks:word_cont" in text, text
    history = [e.event_type async for e in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in history  # nothing ran
