"""What live events cost in history, and how soon streamed text reaches a reader.

One agent answers with about ``TOKENS`` tokens of streamed text (the scripted LLM sends
16 characters, about 4 tokens, every ``PACE`` seconds, as a model writing at 1/PACE
chunks a second) and finishes. Each row runs it once and prints:

- history bytes (the server's own count) added per 1,000 streamed tokens over the run
  without token events (``token_batch_seconds=0``), and history events added. Each batch
  costs about 1 KB (its signal and the workflow task it wakes), so the cost per token
  falls as the model writes faster or the batches grow;
- the latency from a chunk leaving the scripted LLM to its text reaching a reader of
  the stream (p50, p95, max), when the row has a reader.

Rows: tokens off; batches of 0.1 s, 0.25 s (the default) and 1 s, each read by
``subscribe`` (queries: nothing written to history); and 0.25 s read by the stream
library's own long-poll update reader, whose every answer is written to history.

    uv run python -m bench.stream_history [TOKENS] [PACE]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from duragent.activities.events import TOPIC
from duragent.worker.client import start_agent
from duragent.worker.embedded import Embedded, embedded
from duragent.worker.events import subscribe
from duragent.worker.main import agent_worker
from duragent.workflows.models import AgentInput, LLMPolicy

PIECE = 16  # characters per chunk of the scripted stream
COOLDOWN = timedelta(milliseconds=50)  # the update reader's pause, as subscribe's


@dataclass
class Row:
    """One measured run."""

    name: str
    history_bytes: int
    history_events: int
    tokens: int
    latencies: list[float]
    seconds: float
    """How long the scripted LLM took to send the text."""


Reader = Callable[[Client, str], Awaitable[list[tuple[float, int]]]]
"""Reads a run's stream to its end: (arrival time, text length so far) per token event."""


async def query_reader(client: Client, agent_id: str) -> list[tuple[float, int]]:
    seen, length = [], 0
    async for event in subscribe(client, agent_id):
        if event["type"] == "token":
            length += len(str(event["text"]))
            seen.append((time.time(), length))
    return seen


async def update_reader(client: Client, agent_id: str) -> list[tuple[float, int]]:
    seen, length = [], 0
    reader = WorkflowStreamClient.create(client, agent_id)
    async for item in reader.subscribe(TOPIC, poll_cooldown=COOLDOWN):
        if item.data["type"] == "token":
            length += len(item.data["text"])
            seen.append((time.time(), length))
        if item.data["type"] == "finished":
            break
    return seen


async def no_reader(client: Client, agent_id: str) -> list[tuple[float, int]]:
    await client.get_workflow_handle(agent_id).result()
    return []


async def run_once(
    env: Embedded, name: str, batch: float, reader: Reader, step: dict[str, Any]
) -> Row:
    client, llm = env.client, env.llm
    marker = f"[stream {name}]"
    llm.add_script({"name": marker, "match": marker, "steps": [step]})
    input = AgentInput(
        task=f"{marker} tell", model="scripted", llm_policy=LLMPolicy(token_batch_seconds=batch)
    )
    handle: WorkflowHandle[Any, Any] = await start_agent(client, input, task_queue="embedded")
    seen = await reader(client, handle.id)
    result = await handle.result()
    info = (await handle.describe()).raw_description.workflow_execution_info
    sent = next(r for r in llm.requests if r.script == marker).chunk_times[1:]  # role chunk
    return Row(
        name,
        info.history_size_bytes,
        info.history_length,
        result.usage.output_tokens,
        _latencies(sent, seen),
        sent[-1] - sent[0],
    )


def _step(text: str, pace: float) -> dict[str, Any]:
    return {
        "content": text,
        "chunk_seconds": pace,
        "tool_calls": [{"name": "_task_finish", "arguments": {"message": "told"}}],
    }


def _latencies(sent: list[float], seen: list[tuple[float, int]]) -> list[float]:
    """Per content chunk: when its last character was read, minus when it was sent."""
    out = []
    for index, left in enumerate(sent):
        end = (index + 1) * PIECE
        arrived = next((at for at, length in seen if length >= end), None)
        if arrived is not None:
            out.append(arrived - left)
    return out


def report(rows: list[Row]) -> None:
    base = rows[0]
    print(f"{'row':<34} {'bytes/1k tok':>12} {'events/1k tok':>13} {'p50 ms':>7} {'p95 ms':>7}")
    for row in rows:
        per = 1000 / max(row.tokens, 1)
        extra_bytes = (row.history_bytes - base.history_bytes) * per
        extra_events = (row.history_events - base.history_events) * per
        p50 = p95 = "-"
        if row.latencies:
            cuts = statistics.quantiles(row.latencies, n=20)
            p50 = f"{statistics.median(row.latencies) * 1000:.0f}"
            p95 = f"{cuts[18] * 1000:.0f}"
        print(f"{row.name:<34} {extra_bytes:>12,.0f} {extra_events:>13.1f} {p50:>7} {p95:>7}")
    rate = base.tokens / base.seconds
    print(
        f"({base.tokens} tokens a run at {rate:.0f} tokens/s; the run without token events "
        f"has {base.history_bytes:,} history bytes in {base.history_events} events)"
    )


async def main(tokens: int, pace: float) -> None:
    text = "".join(f"<{i:05d} token text>"[:PIECE] for i in range(tokens * 4 // PIECE))
    rows_spec: list[tuple[str, float, Reader]] = [
        ("tokens off (baseline)", 0.0, no_reader),
        ("batch 0.1 s, query reader", 0.1, query_reader),
        ("batch 0.25 s (default), no reader", 0.25, no_reader),
        ("batch 0.25 s (default), query reader", 0.25, query_reader),
        ("batch 1 s, query reader", 1.0, query_reader),
        ("batch 0.25 s, update reader", 0.25, update_reader),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        async with embedded(Path(tmp)) as env, agent_worker(env.client, env.settings):
            step = _step(text, pace)
            rows = [await run_once(env, name, b, reader, step) for name, b, reader in rows_spec]
    report(rows)


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 1000, float(args[1]) if len(args) > 1 else 0.02))
