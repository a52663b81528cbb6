"""History per cycle of a long agent whose files and transcripts live in an object store.

One run, one process tree: a dev server, a SeaweedFS S3 server (``tests/objectstore.py``,
built from the Go module proxy the first time), the scripted LLM in this process and one
``duragent worker`` process with ``DURAGENT_WORKSPACE=s3://…`` and ``DURAGENT_STORE=s3://…``.
One agent runs N cycles; in each the model writes a new file of about 2,000 characters
(the transcript grows by that much a cycle) until ``max_cycles`` ends the run. Then the
history of every run of its continue-as-new chain is read, and the table compares the
first and the last cycles: events and bytes of history per cycle, the bytes of the LLM
activity's input (a reference and what is new, so flat), wall time and worker CPU per
cycle. Flat history is the claim; the ratio shows it. What one file tool call costs on
the object store is ``bench.workspace_latency``. Numbers only, nothing asserted. ::

    uv run python -m bench.objectstore_history [--cycles 200] [--window 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bench.cycle_cost import DURAGENT_LLM, DURAGENT_TOOL, Engine, cpu_seconds
from duragent.activities.memory import SUMMARY_SYSTEM
from duragent.worker.client import connect, start_agent
from duragent.worker.devserver import DevServer
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.workflows import search_attributes as search
from duragent.workflows.models import AgentInput, AgentResult, AgentStatus
from tests.objectstore import ObjectStoreServer

MARKER = "[objectstore history]"
TASK_QUEUE = "bench-objectstore-history"
SUMMARIZE = "duragent.summarize"
CHUNK_CHARS = 2_000
"""New content a cycle: the ``content`` of its ``_write_file`` call."""


def chunk(cycle: int) -> str:
    """About :data:`CHUNK_CHARS` characters of text of its own for one cycle."""
    line = f"cycle {cycle:04}: the quick brown fox jumps over the lazy dog.\n"
    return (line * (CHUNK_CHARS // len(line) + 1))[:CHUNK_CHARS]


def scripts(cycles: int) -> list[dict[str, Any]]:
    """One step a cycle, each writing a new file; the agent's ``max_cycles`` ends it.

    The scripted LLM picks a step by the number of assistant messages in the prompt, so
    after a compaction it answers earlier steps again: the content is still new to the
    transcript, and ``max_cycles`` (not a finishing step) ends the run on time. A summary
    answer is there for that compaction.
    """
    writes = [
        {
            "tool_calls": [
                {
                    "name": "_write_file",
                    "arguments": {"path": f"notes/part-{c:04}.md", "content": chunk(c)},
                }
            ]
        }
        for c in range(1, cycles + 1)
    ]
    return [
        {"name": "summary", "match": SUMMARY_SYSTEM[:60], "steps": [{"content": "- notes"}]},
        {"name": "bench", "match": MARKER, "steps": writes},
    ]


@dataclass
class Mark:
    """The chain's history so far when one cycle's LLM call was scheduled."""

    events: int
    bytes: int
    at: float
    """When it was scheduled (server time, seconds)."""
    llm_input_bytes: int
    """Size of that LLM call's input."""


@dataclass
class Chain:
    """A whole continue-as-new chain: one mark per cycle, and the totals at its end."""

    marks: list[Mark] = field(default_factory=list)
    events: int = 0
    bytes: int = 0
    ended: float = 0.0
    runs: int = 0
    compacted_in: list[int] = field(default_factory=list)
    """Cycles during which the memory was compacted."""


async def read_chain(client: Client, handle: WorkflowHandle[Any, Any]) -> Chain:
    """Walk every run of the chain that starts at ``handle``'s first run."""
    chain = Chain()
    run_id: str | None = handle.first_execution_run_id or handle.result_run_id
    while run_id is not None:
        chain.runs += 1
        next_run = None
        async for e in client.get_workflow_handle(handle.id, run_id=run_id).fetch_history_events():
            chain.events += 1
            chain.bytes += e.ByteSize()
            chain.ended = e.event_time.ToDatetime().timestamp()
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = e.activity_task_scheduled_event_attributes
                if attributes.activity_type.name == SUMMARIZE:
                    chain.compacted_in.append(len(chain.marks))
                if attributes.activity_type.name == DURAGENT_LLM:
                    chain.marks.append(
                        # Before this event: the cycle it opens starts here.
                        Mark(
                            chain.events - 1,
                            chain.bytes - e.ByteSize(),
                            chain.ended,
                            attributes.input.ByteSize(),
                        )
                    )
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                continued = e.workflow_execution_continued_as_new_event_attributes
                next_run = continued.new_execution_run_id
        run_id = next_run
    return chain


@dataclass
class Window:
    """Per-cycle figures over cycles ``first``..``last`` (1-based, inclusive)."""

    first: int
    last: int
    events: float
    bytes: float
    llm_input_bytes: float
    wall_ms: float


def window(chain: Chain, first: int, last: int) -> Window:
    """Cycle ``k`` runs from its LLM call's scheduling to the next one's (or the end)."""
    marks = chain.marks
    end = (
        marks[last]
        if last < len(marks)
        else Mark(chain.events, chain.bytes, chain.ended, llm_input_bytes=0)
    )
    start = marks[first - 1]
    n = last - first + 1
    inputs = [m.llm_input_bytes for m in marks[first - 1 : last]]
    return Window(
        first,
        last,
        (end.events - start.events) / n,
        (end.bytes - start.bytes) / n,
        sum(inputs) / n,
        1000 * (end.at - start.at) / n,
    )


def print_table(chain: Chain, size: int, worker_cpu_ms: float, result: AgentResult) -> None:
    """The first and the last ``size`` cycles side by side, then the chain's totals."""
    cycles = len(chain.marks)
    early, late = window(chain, 1, size), window(chain, cycles - size + 1, cycles)
    print(
        f"\n{cycles} cycles, {CHUNK_CHARS:,} new characters a cycle, files and transcripts "
        "in SeaweedFS (S3)\n"
    )
    head = ("events/cycle", 12), ("bytes/cycle", 11), ("LLM input B", 11), ("ms/cycle", 8)
    print(f"{'cycles':>10} | " + " ".join(f"{name:>{width}}" for name, width in head))
    for w in (early, late):
        print(
            f"{f'{w.first}-{w.last}':>10} | {w.events:>12.1f} {w.bytes:>11,.0f} "
            f"{w.llm_input_bytes:>11,.0f} {w.wall_ms:>8.0f}"
        )
    print(
        f"{'last/first':>10} | {_ratio(late.events, early.events):>12} "
        f"{_ratio(late.bytes, early.bytes):>11} "
        f"{_ratio(late.llm_input_bytes, early.llm_input_bytes):>11} "
        f"{_ratio(late.wall_ms, early.wall_ms):>8}"
    )
    largest = max(range(cycles), key=lambda k: chain.marks[k].llm_input_bytes)
    where = ", ".join(map(str, chain.compacted_in))
    compacted = f" (in cycle {where})" if where else ""
    print(
        f"\nwhole chain: {chain.events:,} events, {chain.bytes / 1024:,.0f} KiB; "
        f"runs: {chain.runs} ({chain.runs - 1} continue-as-new); "
        f"compactions: {result.compactions}{compacted}; "
        f"largest LLM input: {chain.marks[largest].llm_input_bytes:,} B (cycle {largest + 1}); "
        f"LLM attempts: {result.llm_attempts}; "
        f"worker CPU: {worker_cpu_ms / max(1, cycles):.0f} ms/cycle"
    )


def _ratio(late: float, early: float) -> str:
    return f"{late / early:.2f}x" if early else "-"


def worker_env(
    server: DevServer, llm: ScriptedLLMServer, store: ObjectStoreServer, bucket: str, root: Path
) -> dict[str, str]:
    """The stock ``duragent worker``'s environment, on the object store."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DURAGENT_", "AWS_"))}
    return {
        **base,
        **store.worker_env(bucket, workspace="agents", store="transcripts"),
        "TEMPORAL_ADDRESS": server.address,
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "bench",
        "DURAGENT_TASK_QUEUE": TASK_QUEUE,
        # Set, but unused with DURAGENT_STORE: nothing may land here.
        "DURAGENT_STORE_DIR": str(root / "unused-store"),
        "DURAGENT_METRICS_PORT": "0",
    }


async def _run_agent(engine: Engine, cycles: int) -> WorkflowHandle[Any, Any]:
    return await start_agent(
        engine.client,
        AgentInput(task=f"{MARKER} write notes", model="scripted", max_cycles=cycles),
        task_queue=engine.task_queue,
    )


async def main(cycles: int, size: int) -> int:
    """Run the agent, print the table; 1 if the agent stopped before its last cycle."""
    with (
        tempfile.TemporaryDirectory(prefix="duragent-bench-") as tmp,
        ObjectStoreServer() as store,
        ScriptedLLMServer(scripts=scripts(cycles)) as llm,
    ):
        root = Path(tmp)
        bucket = store.create_bucket()
        async with DevServer(ui=False, search_attributes=search.DEV_SERVER) as server:
            engine = Engine(
                name="duragent",
                client=await connect({"TEMPORAL_ADDRESS": server.address}),
                task_queue=TASK_QUEUE,
                argv=[sys.executable, "-m", "duragent.worker.cli", "worker"],
                env=worker_env(server, llm, store, bucket, root),
                llm_activity=DURAGENT_LLM,
                tool_activity=DURAGENT_TOOL,
                start=lambda e, _task, n: _run_agent(e, n),
            )
            await engine.start_worker()
            try:
                print(f"agent of {cycles} cycles on worker {engine.pid}...", flush=True)
                cpu = cpu_seconds(engine.pid)
                started = time.monotonic()
                handle = await engine.start(engine, MARKER, cycles)
                result: AgentResult = await handle.result()
                cpu = cpu_seconds(engine.pid) - cpu
                print(f"{result.status.value} in {time.monotonic() - started:.0f} s", flush=True)
            finally:
                await engine.stop_worker()
            chain = await read_chain(engine.client, handle)
        if (root / "unused-store").exists():
            print("warning: the worker wrote to its local store directory", file=sys.stderr)
    if result.status is not AgentStatus.MAX_CYCLES or len(chain.marks) < 2:
        print(f"the agent did not run its cycles: {result}", file=sys.stderr)
        return 1
    print_table(chain, min(size, len(chain.marks) // 2), 1000 * cpu, result)
    return 0


def cli(argv: list[str] | None = None) -> int:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.objectstore_history", description=__doc__
    )
    parser.add_argument("--cycles", type=int, default=200, help="cycles of the agent (default 200)")
    parser.add_argument(
        "--window", type=int, default=50, help="cycles compared at each end (default 50)"
    )
    args = parser.parse_args(argv)
    if args.cycles < 2 or args.window < 1:
        parser.error("--cycles must be at least 2 and --window at least 1")
    return asyncio.run(main(args.cycles, args.window))


if __name__ == "__main__":
    sys.exit(cli())
