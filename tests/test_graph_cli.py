"""``duragent graph`` as a user runs it: files checked and drawn, graphs run and answered."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from duragent.worker.cli import GRAPH_LS_STATUSES
from duragent.worker.devserver import free_port
from duragent.worker.graph_cli import input_problems, read_graph
from duragent.worker.graph_render import mermaid
from duragent.workflows.graph_load import load_graph
from duragent.workflows.graph_models import GraphStatus, NodeStatus, NodeView
from duragent.workflows.graph_validate import validate
from tests.conftest import Harness, eventually
from tests.processes import Completed, cli, log_tail, polling_pids, stop_process, worker_env
from tests.test_agent import call, finish

EXAMPLES = Path(__file__).parent.parent / "examples" / "graphs"
REPORT = str(EXAMPLES / "report.yaml")
HEADLINE = str(EXAMPLES / "headline.yaml")
HEADLINE_TEXT = Path(HEADLINE).read_text()

BROKEN = """\
graph: broken
state:
  topic: {type: string}
nodes:
  plan: {agent: {task: "Plan ${topci}"}, writes: {sections: "${result}"}}
  loop: {task: {ref: "nomodule"}}
  orphan: {gate: {prompt: "?", deadline: soon}}
edges:
  - [START, plan, loop, plan]
  - {from: loop, to: NOWHERE}
"""

REPORT_MERMAID = """\
flowchart TD
    START([START])
    plan["plan (agent)"]
    write[/"write (map of agent)"/]
    review{{"review (gate)"}}
    END([END])
    START --> plan
    plan --> write
    write --> review
    review -->|"approve"| END
    review -->|"revise"| write
    review -.->|"visits spent"| END"""


def offline() -> dict[str, str]:
    """An environment whose Temporal address answers nothing (a failure is pre-connect)."""
    return {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}


def one_line_error(result: Completed, containing: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("duragent: error: "), lines[0]
    assert containing in lines[0], lines[0]
    assert result.stdout == ""  # nothing printed, nothing started


# --- validate and show: no server ------------------------------------------------------


async def test_validate_a_sound_graph_prints_its_name_and_fingerprint() -> None:
    done = await cli(offline(), "graph", "validate", REPORT)
    fingerprint = read_graph(REPORT).fingerprint()
    assert (done.returncode, done.stdout) == (0, f"ok: report ({fingerprint[:12]})\n"), done.stderr


async def test_validate_prints_every_problem_one_per_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    done = await cli(offline(), "graph", "validate", str(broken))
    expected = [f"{p.where}: {p.message}" for p in validate(load_graph(BROKEN))]
    assert done.returncode == 2, done.stderr
    assert done.stdout.splitlines() == expected
    assert len(expected) == 9 and "nodes.plan.agent.task: unknown field 'topci'" in done.stdout


async def test_validate_reports_structural_problems_where_they_were_written(
    tmp_path: Path,
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text(BROKEN.replace("{type: string}", "{type: string, reduce: append}"))
    done = await cli(offline(), "graph", "validate", str(typo))
    assert done.returncode == 2
    assert done.stdout == "state.topic.reduce: unknown key: did you mean 'reducer'?\n"


async def test_validate_with_load_checks_task_refs_against_the_modules(tmp_path: Path) -> None:
    ok = await cli(offline(), "graph", "validate", HEADLINE, "--load", "examples.graphs.tasks")
    assert ok.returncode == 0 and ok.stdout.startswith("ok: headline ("), ok.stderr
    typo = tmp_path / "headline.yaml"
    typo.write_text(HEADLINE_TEXT.replace("tasks:slugify", "tasks:slugfy"))
    done = await cli(offline(), "graph", "validate", str(typo), "--load", "examples.graphs.tasks")
    assert done.returncode == 2
    assert done.stdout.startswith("nodes.slug.task.ref: ")
    assert "examples.graphs.tasks:slugfy" in done.stdout
    missing = await cli(offline(), "graph", "validate", HEADLINE, "--load", "no_such_tasks")
    one_line_error(missing, "cannot load module 'no_such_tasks'")


async def test_show_a_file_prints_mermaid() -> None:
    done = await cli(offline(), "graph", "show", REPORT)
    assert (done.returncode, done.stdout) == (0, REPORT_MERMAID + "\n"), done.stderr


def test_mermaid_of_a_run_shows_each_node_status_and_visits() -> None:
    spec = read_graph(REPORT)
    nodes = {
        "plan": NodeView(name="plan", kind="agent", status=NodeStatus.DONE, visits=1),
        "write": NodeView(name="write", kind="map", status=NodeStatus.DONE, visits=2),
        "review": NodeView(name="review", kind="gate", status=NodeStatus.WAITING, visits=2),
    }
    lines = mermaid(spec, nodes).splitlines()
    assert '    plan["plan (agent)<br/>done, 1 visit"]' in lines
    assert '    review{{"review (gate)<br/>waiting, 2 visits"}}' in lines
    assert "    class review waiting" in lines and "    class plan done" in lines
    assert any(line.startswith("    classDef waiting fill:") for line in lines)


def test_mermaid_ids_avoid_its_keywords_and_labels_are_escaped() -> None:
    spec = load_graph(
        {
            "graph": "odd",
            "nodes": {
                "end": {"gate": {"prompt": "?"}},
                "two words": {"task": {"ref": "m:f"}},
            },
            "edges": [
                ["START", "end", "two words", "END"],
            ],
        }
    )
    text = mermaid(spec)
    assert '    n0{{"end (gate)"}}' in text.splitlines()
    assert '    n1[["two words (task)"]]' in text.splitlines()
    assert "START --> n0" in text and "n0 --> n1" in text and "n1 --> END" in text


def test_child_graph_files_are_inlined_and_a_loop_of_files_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(
        "graph: child\nnodes: {ask: {gate: {prompt: 'ok?'}}}\nedges: [[START, ask, END]]\n"
    )
    (tmp_path / "parent.yaml").write_text(
        "graph: parent\nnodes: {sub: {graph: {file: child.yaml}}}\nedges: [[START, sub, END]]\n"
    )
    spec = read_graph(tmp_path / "parent.yaml")
    inlined = spec.nodes["sub"].graph
    assert inlined is not None and inlined.file is None and inlined.spec is not None
    assert inlined.spec.name == "child" and validate(spec) == []
    (tmp_path / "child.yaml").write_text(
        "graph: child\nnodes: {again: {graph: {file: parent.yaml}}}\nedges: [[START, again, END]]\n"
    )
    with pytest.raises(ValueError, match=r"the file names itself \(parent.yaml -> child.yaml"):
        read_graph(tmp_path / "parent.yaml")


def test_input_is_checked_against_the_state() -> None:
    spec = read_graph(REPORT)
    assert input_problems(spec, {"topic": "tides", "sections": []}) == []
    assert input_problems(spec, {"topic": 3, "colour": "red"}) == [
        "--input: field 'topic' is of type string, got integer",
        "--input: the graph has no state field 'colour' (fields: topic, sections, verdict, draft)",
    ]


@pytest.mark.parametrize(
    ("args", "containing"),
    [
        (["run", REPORT, "--input", "{bad"], "argument --input: the input is not valid JSON"),
        (["run", REPORT, "--input", "[1]"], "the input must be a JSON object, got list"),
        (["run", "/no/such.yaml"], "cannot read the graph file '/no/such.yaml': no such file"),
        (["run", REPORT, "--input", '{"topic": 3}'], "field 'topic' is of type string"),
        (["run", REPORT, "--id", " x"], "the graph id ' x' must not start or end with spaces"),
        (["validate", "/no/such.yaml"], "cannot read the graph file '/no/such.yaml'"),
        (["validate", "/"], "cannot read the graph file '/': not a regular file"),
        (["show", "/no/such.yaml"], "cannot read the graph file '/no/such.yaml': no such file"),
        (["decide", "g", "review@1", "approve"], "the answer is not valid JSON"),
        (["decide", "g"], "the following arguments are required: GATE_ID, JSON"),
        (["status", ""], "the graph id must not be empty"),
        (["ls", "--status", "sleeping"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
        ([], "the following arguments are required"),
    ],
)
async def test_argument_mistakes_are_one_line_before_connecting(
    args: list[str], containing: str
) -> None:
    one_line_error(await cli(offline(), "graph", *args, within=60), containing)


async def test_running_a_graph_with_problems_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    done = await cli(offline(), "graph", "run", str(broken))
    one_line_error(done, f"the graph {broken} has 9 problems, the first: edges[3].to: ")
    assert f"see them all with `duragent graph validate {broken}`" in done.stderr


def test_the_parser_knows_every_graph_status() -> None:
    assert GRAPH_LS_STATUSES == tuple(s.value for s in GraphStatus)


# --- against the server ----------------------------------------------------------------


async def test_ids_the_server_does_not_know_are_one_line(harness: Harness) -> None:
    env = worker_env(harness)
    unknown = [["status", "no-such-graph"], ["result", "nope"], ["pending", "nope"]]
    unknown += [["show", "nope"], ["decide", "nope", "g@1", "1"], ["cancel", "nope"]]
    done = await asyncio.gather(*(cli(env, "graph", *args) for args in unknown))
    for args, result in zip(unknown, done, strict=True):
        one_line_error(result, f"no graph with id '{args[1]}'")
    agent = harness.script([finish("ok")])
    started = await cli(env, "run", agent)
    agent_id = started.stdout.strip()
    one_line_error(
        await cli(env, "graph", "status", agent_id),
        f"'{agent_id}' is a AgentWorkflow run, not a graph; see `duragent status {agent_id}`",
    )


async def test_a_task_graph_runs_on_a_worker_started_with_load(
    harness: Harness, tmp_path: Path
) -> None:
    """The example tasks, through ``duragent.run_task`` on a worker process."""
    env = worker_env(harness)
    log = tmp_path / "duragent.worker.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "duragent.worker.cli", "worker",
            "--load", "examples.graphs.tasks", env=env, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        await eventually(lambda: _polls(harness, proc.pid), "the worker polls", within=60)
        title = '{"title": "Tides of the North Sea"}'
        ran = await cli(
            env,
            "graph",
            "run",
            HEADLINE,
            "--input",
            title,
            "--id",
            "h1-" + harness.task_queue,
            "--wait",
        )
        result = await cli(env, "graph", "result", "h1-" + harness.task_queue, "--json")
    finally:
        assert await stop_process(proc) == 0, log_tail(log)
    assert ran.returncode == 0, (ran.stdout, ran.stderr, log_tail(log))
    assert ran.stdout.splitlines()[:3] == [
        "h1-" + harness.task_queue,
        "status: completed",
        'output: "tides-of-the-north-sea"',
    ]
    data = json.loads(result.stdout)
    assert data["status"] == "completed" and data["output"] == "tides-of-the-north-sea"
    assert data["state"]["stats"] == {"words": 5, "lines": 1, "chars": 22}


async def test_the_report_graph_end_to_end(harness: Harness) -> None:
    """Run, pending, decide, status, show, result and ls, each as its own process."""
    marker = harness.marker
    sections = [f"{marker} Intro", f"{marker} End"]
    harness.llm.add_script(
        {
            "name": f"plan-{marker}",
            "match": f"List the sections of a report on {marker}",
            "steps": [
                {"tool_calls": [call("_task_finish", message="ok", output={"sections": sections})]}
            ],
        }
    )
    for name in sections:
        script = {"name": f"w-{name}", "match": f"Write the section {name}"}
        harness.llm.add_script({**script, "steps": [finish(f"[{name.split()[-1]} text]")]})
    env = worker_env(harness)
    graph_id = f"report-{harness.task_queue}"
    topic = json.dumps({"topic": f"{marker} tides"})
    async with harness.worker():
        running = asyncio.create_task(
            cli(env, "graph", "run", REPORT, "--input", topic, "--id", graph_id, "--wait")
        )
        gate = await eventually(lambda: _open_gate(env, graph_id), "the review gate", within=60)
        status = await cli(env, "graph", "status", graph_id)
        shown = await cli(env, "graph", "show", graph_id)
        pending = await cli(env, "graph", "pending", graph_id)
        wrong = await cli(env, "graph", "decide", graph_id, "review@1", '{"decision": "maybe"}')
        stale = await cli(env, "graph", "decide", graph_id, "review@9", '{"decision": "approve"}')
        decided = await cli(env, "graph", "decide", graph_id, "review@1", '{"decision": "approve"}')
        ran = await asyncio.wait_for(running, 120)
        result = await cli(env, "graph", "result", graph_id, "--json")
        listed = await cli(env, "graph", "ls", "--json", "--limit", "500")
        after = await cli(env, "graph", "decide", graph_id, "review@1", '{"decision": "approve"}')

    assert gate == {
        "id": "review@1",
        "node": "review",
        "prompt": "Approve the draft?",
        "show": "[Intro text]\n\n[End text]",
        "answer_schema": gate["answer_schema"],
        "deadline": gate["deadline"],
        "graph": graph_id,
    }
    assert gate["answer_schema"]["required"] == ["decision"] and gate["deadline"]
    assert "status:  waiting_user" in status.stdout, status.stderr
    assert "gate review@1: Approve the draft?" in status.stdout
    assert f"  decide:   duragent graph decide {graph_id} review@1 JSON" in status.stdout
    assert '    plan["plan (agent)<br/>done, 1 visit"]' in shown.stdout, shown.stderr
    assert "    class review waiting" in shown.stdout
    assert pending.stdout.startswith("gate review@1: Approve the draft?"), pending.stdout
    one_line_error(wrong, "decision rejected: ")
    one_line_error(stale, "decision rejected: no open gate 'review@9' (open: review@1)")
    assert decided.stdout == "answer recorded for gate review@1\n", decided.stderr

    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    lines = ran.stdout.splitlines()
    assert lines[:2] == [graph_id, "status: completed"]
    data = json.loads(result.stdout)
    assert data["status"] == "completed" and data["output"] == data["state"]
    assert data["state"]["verdict"] == {"decision": "approve"}
    assert data["state"]["draft"] == "[Intro text]\n\n[End text]"
    row = next(r for r in json.loads(listed.stdout) if r["id"] == graph_id)
    assert (row["graph"], row["status"]) == ("report", "completed")
    one_line_error(after, f"graph '{graph_id}' has ended (completed)")


async def _polls(h: Harness, pid: int) -> bool:
    return pid in await polling_pids(h.client, h.task_queue)


async def _open_gate(env: dict[str, str], graph_id: str) -> dict[str, Any] | None:
    done = await cli(env, "graph", "pending", graph_id, "--json")
    if done.returncode != 0:
        return None  # not started yet
    gates: list[dict[str, Any]] = json.loads(done.stdout)["gates"]
    return gates[0] if gates else None
