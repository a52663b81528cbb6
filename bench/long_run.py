"""History growth of a long run: duragent's references against the naive design.

Runs one agent for N cycles with the scripted LLM (each cycle appends a 200-character
line to a file), then the same agent with ``ship_full_transcript`` (every LLM activity
input carries the whole transcript, as other engines do). After each run it walks the
history of every run in the continue-as-new chain and prints, per 100 cycles: events and
bytes of the run current at that cycle, how many runs so far, and wall time per cycle.

    uv run python -m bench.long_run [N]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from duragent.activities.memory import SUMMARY_SYSTEM
from duragent.worker.client import start_agent
from duragent.worker.embedded import embedded
from duragent.worker.main import agent_worker
from duragent.workflows.models import AgentInput, HistoryPolicy

LINE = "x" * 200
SCRIPTS = [
    {"name": "summary", "match": SUMMARY_SYSTEM[:60], "steps": [{"content": "- appended lines"}]},
    {
        "name": "bench",
        "match": "[long run]",
        "steps": [
            {
                "tool_calls": [
                    {
                        "name": "_write_file",
                        "arguments": {"path": "log.txt", "content": LINE + "\n", "append": True},
                    }
                ]
            }
        ],
    },
]


@dataclass
class Mark:
    """The state of the run current at a cycle."""

    cycle: int
    run_events: int
    run_bytes: int
    runs: int
    at: float


async def measure(client: Client, agent_id: str, first_run: str) -> list[Mark]:
    """Walk every run of the chain; one mark at the start of each LLM call."""
    marks: list[Mark] = []
    run_id: str | None = first_run
    runs = 0
    while run_id is not None:
        runs += 1
        events = bytes_ = 0
        next_run = None
        async for e in client.get_workflow_handle(agent_id, run_id=run_id).fetch_history_events():
            events += 1
            bytes_ += e.ByteSize()
            if (
                e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                and e.activity_task_scheduled_event_attributes.activity_type.name
                == "duragent.llm_chat"
            ):
                at = e.event_time.ToDatetime().timestamp()
                marks.append(Mark(len(marks) + 1, events, bytes_, runs, at))
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                next_run = (
                    e.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                )
        run_id = next_run
    return marks


async def run_one(client: Client, n: int, *, naive: bool) -> list[Mark]:
    history = HistoryPolicy(ship_full_transcript=naive)
    input = AgentInput(
        task="[long run] append lines", model="scripted", max_cycles=n, history=history
    )
    started = time.monotonic()
    handle = await start_agent(client, input, task_queue="bench")
    result = await handle.result()
    elapsed = time.monotonic() - started
    label = "naive" if naive else "duragent"
    print(
        f"{label}: {result.cycles} cycles, {result.runs} runs, {result.compactions} "
        f"compactions, {elapsed:.0f} s ({1000 * elapsed / max(1, result.cycles):.0f} ms/cycle)",
        flush=True,
    )
    assert handle.result_run_id is not None
    return await measure(client, handle.id, handle.result_run_id)


def table(ours: list[Mark], naive: list[Mark]) -> None:
    print(
        f"{'cycle':>6} | {'run events':>10} {'run KiB':>9} {'runs':>5} {'ms/cycle':>8} | "
        f"{'naive events':>12} {'naive KiB':>10} {'runs':>5} {'ms/cycle':>8}"
    )
    for i in range(99, min(len(ours), len(naive)), 100):
        row = [_cells(ours, i), _cells(naive, i)]
        print(
            f"{i + 1:>6} | {row[0][0]:>10} {row[0][1]:>9} {row[0][2]:>5} {row[0][3]:>8} | "
            f"{row[1][0]:>12} {row[1][1]:>10} {row[1][2]:>5} {row[1][3]:>8}"
        )


def _cells(marks: list[Mark], i: int) -> tuple[int, str, int, str]:
    m = marks[i]
    window = marks[max(0, i - 99) : i + 1]
    per_cycle = (window[-1].at - window[0].at) / max(1, len(window) - 1)
    return m.run_events, f"{m.run_bytes / 1024:.0f}", m.runs, f"{per_cycle * 1000:.0f}"


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with embedded(Path(tmp), scripts=SCRIPTS, task_queue="bench") as env:
            async with agent_worker(env.client, env.settings):
                ours = await run_one(env.client, n, naive=False)
                naive = await run_one(env.client, n, naive=True)
    table(ours, naive)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000))
