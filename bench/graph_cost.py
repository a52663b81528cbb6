"""What a graph costs in history and time: a 1,000-item map and a 200-visit loop.

``uv run python -m bench.graph_cost [--items 1000] [--visits 200]`` runs, on one dev server
(the throttle lifted) with one in-process worker, the two processes as duragent graphs
(task nodes: ``bench/graph_tasks.py``) and as the naive design (``bench/naive_graph.py``:
the whole state in and out of every activity), and prints per process and engine: wall
time, history events and bytes (all runs of the workflow), per node visit, and runs
(continue-as-new). A benchmark prints numbers; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from bench.naive_graph import NAIVE_WORKFLOW, NaiveGraph, NaiveInput, naive_step
from duragent.worker.embedded import embedded
from duragent.worker.main import agent_worker
from duragent.workflows.graph import GraphWorkflow
from duragent.workflows.graph_load import load_graph
from duragent.workflows.graph_models import GraphInput, GraphStatus
from duragent.workflows.graph_spec import GraphSpec

NAIVE_QUEUE = "bench-naive"


def map_graph(concurrency: int) -> GraphSpec:
    """One map node: ``square(n)`` per item, the results in item order."""
    return load_graph(
        {
            "graph": "bench-map",
            "state": {"items": {"type": "array"}, "results": {"type": "array"}},
            "nodes": {
                "each": {
                    "map": {
                        "over": "${items}",
                        "node": {
                            "task": {"ref": "bench.graph_tasks:square", "args": {"n": "${item}"}}
                        },
                        "concurrency": concurrency,
                    },
                    "writes": "results",
                }
            },
            "edges": [["START", "each", "END"]],
            "output": "results",
        }
    )


def loop_graph(visits: int) -> GraphSpec:
    """One node visited ``visits`` times, each appending its count to a log."""
    return load_graph(
        {
            "graph": "bench-loop",
            "state": {
                "count": {"type": "integer", "default": 0},
                "log": {"type": "array", "reducer": "append"},
            },
            "nodes": {
                "step": {
                    "task": {"ref": "bench.graph_tasks:bump", "args": {"count": "${count}"}},
                    "writes": {"count": "${result}", "log": "${result}"},
                    "max_visits": visits + 1,
                    "on_exhausted": "END",
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


@dataclasses.dataclass
class Row:
    """One process on one engine: what it took."""

    process: str
    engine: str
    visits: int
    seconds: float
    events: int
    size: int
    runs: int


async def history_of(client: Client, handle: WorkflowHandle[Any, Any]) -> tuple[int, int, int]:
    """Events and bytes of every run of a workflow, and how many runs."""
    events = size = runs = 0
    run_id: str | None = (await handle.describe()).run_id
    # Walk back from the last run through the continued-as-new chain.
    seen: set[str] = set()
    while run_id and run_id not in seen:
        seen.add(run_id)
        runs += 1
        previous = None
        async for event in client.get_workflow_handle(
            handle.id, run_id=run_id
        ).fetch_history_events():
            events += 1
            size += event.ByteSize()
            started = event.workflow_execution_started_event_attributes
            if started.continued_execution_run_id:
                previous = started.continued_execution_run_id
        run_id = previous
    return events, size, runs


async def run_graph(
    client: Client, queue: str, spec: GraphSpec, input: dict[str, Any]
) -> tuple[float, Any]:
    began = time.perf_counter()
    handle = await client.start_workflow(
        GraphWorkflow.run,
        GraphInput(spec=spec, input=input, model="none"),
        id=f"{spec.name}-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
    )
    result = await handle.result()
    assert result.status is GraphStatus.COMPLETED, result
    return time.perf_counter() - began, handle


async def run_naive(client: Client, shape: str, n: int, concurrency: int) -> tuple[float, Any]:
    began = time.perf_counter()
    handle = await client.start_workflow(
        NAIVE_WORKFLOW,
        NaiveInput(shape=shape, items=n, concurrency=concurrency),
        id=f"naive-{shape}-{uuid.uuid4().hex[:8]}",
        task_queue=NAIVE_QUEUE,
    )
    count = await handle.result()
    assert count == n, count
    return time.perf_counter() - began, handle


async def main(items: int, visits: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with embedded(Path(tmp), task_queue="bench-graph") as env:
            settings = dataclasses.replace(env.settings, load=("bench.graph_tasks",))
            naive = Worker(
                env.client,
                task_queue=NAIVE_QUEUE,
                workflows=[NaiveGraph],
                activities=[naive_step],
                max_concurrent_activities=concurrency * 2,
            )
            rows: list[Row] = []
            async with agent_worker(env.client, settings), naive:
                client, queue = env.client, settings.task_queue
                for process, n in (("map", items), ("loop", visits)):
                    if process == "map":
                        ours = await run_graph(
                            client, queue, map_graph(concurrency), {"items": list(range(n))}
                        )
                    else:
                        ours = await run_graph(client, queue, loop_graph(n), {})
                    theirs = await run_naive(client, process, n, concurrency)
                    for engine, (seconds, handle) in (("duragent", ours), ("naive", theirs)):
                        events, size, runs = await history_of(client, handle)
                        rows.append(Row(process, engine, n, seconds, events, size, runs))
    print(f"{'process':<14}{'engine':<10}{'wall s':>8}{'events':>9}{'KiB':>9}"
          f"{'ev/visit':>10}{'B/visit':>10}{'runs':>6}")  # fmt: skip
    for r in rows:
        label = f"{r.process} {r.visits}"
        print(
            f"{label:<14}{r.engine:<10}{r.seconds:>8.1f}{r.events:>9,}{r.size / 1024:>9,.0f}"
            f"{r.events / r.visits:>10.1f}{r.size / r.visits:>10,.0f}{r.runs:>6}"
        )
    by = {(r.process, r.engine): r for r in rows}
    for process in ("map", "loop"):
        mine, naive_row = by[(process, "duragent")], by[(process, "naive")]
        print(f"{process}: naive history is {naive_row.size / mine.size:.1f}x duragent's bytes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="map items (default 1000)")
    parser.add_argument("--visits", type=int, default=200, help="loop visits (default 200)")
    parser.add_argument("--concurrency", type=int, default=50, help="map concurrency (default 50)")
    args = parser.parse_args()
    asyncio.run(main(args.items, args.visits, args.concurrency))
