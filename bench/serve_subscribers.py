"""What ``duragent serve`` costs with 100 browsers on one streaming agent; token latency.

Starts a dev server, the scripted LLM, one ``duragent worker`` and one ``duragent serve``
(each its own process). Each row starts an agent whose answer streams slowly (about
``TOKENS`` tokens: 16 characters every ``PACE`` seconds), opens ``N`` Server-Sent Events
subscribers on ``GET /api/v1/agents/{id}/events`` (httpx, all in this process), and reads
until the stream's ``end``. It prints, over the streaming window:

- CPU of the serve process (per cent of one core) and its RSS, idle and at the peak;
- CPU of the worker process (it answers the stream's poll queries: one reader per run
  in serve, however many subscribers);
- the latency from a chunk leaving the scripted LLM to its text reaching an SSE client
  (p50, p95, max over every subscriber and chunk), with the token batch interval of
  the row (``llm_policy.token_batch_seconds``; the default is 0.25 s).

    uv run python -m bench.serve_subscribers [N] [TOKENS] [PACE]
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from bench.stream_history import PIECE, _latencies
from duragent.worker.client import connect, start_agent
from duragent.worker.devserver import DevServer
from duragent.workflows import search_attributes as search
from duragent.workflows.models import AgentInput, LLMPolicy

TOKEN = "bench-token-0123456789abcdef"
TICK = os.sysconf("SC_CLK_TCK")
QUEUE = "bench-serve"


@dataclass
class Usage:
    """CPU seconds and RSS of a process, sampled while a row runs."""

    pid: int
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    rss_peak: float = 0.0

    def sample(self) -> None:
        """Note the RSS now, if it is the highest yet."""
        self.rss_peak = max(self.rss_peak, rss_mib(self.pid))


@dataclass
class Row:
    """One measured run: its settings, then what was measured."""

    subscribers: int
    batch: float
    seconds: float = 0.0
    serve: Usage | None = None
    worker: Usage | None = None
    latencies: list[float] = field(default_factory=list)
    events: int = 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def spawn(env: dict[str, str], log: Path, *args: str) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, *args, env=env, stdout=out, stderr=out
        )


async def wait_for(log: Path, pattern: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(log.read_text, errors="replace")
        found = re.search(pattern, text)
        if found:
            return found.group(1)
        await asyncio.sleep(0.1)  # polling a log for a process's start line
    raise RuntimeError(f"{log.name}: no {pattern!r} within 60 s:\n{text[-2000:]}")


async def subscriber(http: httpx2.AsyncClient, agent_id: str) -> list[tuple[float, int]]:
    """Read an agent's SSE stream to its end: (arrival, text length so far) per token."""
    seen: list[tuple[float, int]] = []
    length, kind = 0, ""
    async with http.stream("GET", f"/api/v1/agents/{agent_id}/events") as response:
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "token":
                length += len(json.loads(line[6:])["text"])
                seen.append((time.time(), length))
            elif line.startswith("data: ") and kind == "end":
                break
    return seen


async def run_row(row: Row, ctx: dict[str, Any]) -> Row:
    marker = f"[bench serve {row.subscribers} {row.batch}]"
    step = {
        "content": ctx["text"],
        "chunk_seconds": ctx["pace"],
        "delay_seconds": 3.0,  # every subscriber is connected before the text starts
        "tool_calls": [{"name": "_task_finish", "arguments": {"message": "told"}}],
    }
    llm: httpx2.AsyncClient = ctx["llm"]
    await llm.post("/_scripts", json={"name": marker, "match": marker, "steps": [step]})
    policy = LLMPolicy(token_batch_seconds=row.batch)
    input = AgentInput(task=f"{marker} tell", model="scripted", llm_policy=policy)
    handle = await start_agent(ctx["client"], input, task_queue=QUEUE)
    row.serve, row.worker = Usage(ctx["serve_pid"]), Usage(ctx["worker_pid"])
    for usage in (row.serve, row.worker):
        usage.cpu_start = cpu_seconds(usage.pid)
    started = time.monotonic()
    readers = [subscriber(ctx["http"], handle.id) for _ in range(row.subscribers)]
    sampling = asyncio.create_task(sample(row))
    seen = await asyncio.gather(*readers)
    sampling.cancel()
    row.seconds = time.monotonic() - started
    for usage in (row.serve, row.worker):
        usage.cpu_end = cpu_seconds(usage.pid)
    requests = (await llm.get("/_requests")).json()["requests"]
    sent = next(r for r in requests if r["script"] == marker)["chunk_times"][1:]  # role chunk
    row.latencies = [lat for one in seen for lat in _latencies(sent, one)]
    row.events = sum(len(one) for one in seen)
    await handle.result()
    return row


async def sample(row: Row) -> None:
    assert row.serve is not None and row.worker is not None
    while True:
        row.serve.sample()
        row.worker.sample()
        await asyncio.sleep(0.1)  # sampling interval of the measurement


def report(rows: list[Row], idle_rss: float, tokens: int) -> None:
    print(
        f"{'subscribers':>11} {'batch s':>7} {'serve CPU':>9} {'serve RSS MiB':>17} "
        f"{'worker CPU':>10} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'token events':>12}"
    )
    for row in rows:
        assert row.serve is not None and row.worker is not None
        serve_cpu = (row.serve.cpu_end - row.serve.cpu_start) / row.seconds * 100
        worker_cpu = (row.worker.cpu_end - row.worker.cpu_start) / row.seconds * 100
        cuts = statistics.quantiles(row.latencies, n=20)
        print(
            f"{row.subscribers:>11} {row.batch:>7.2f} {serve_cpu:>8.1f}% "
            f"{idle_rss:>7.1f} -> {row.serve.rss_peak:>6.1f} {worker_cpu:>9.1f}% "
            f"{statistics.median(row.latencies) * 1000:>7.0f} {cuts[18] * 1000:>7.0f} "
            f"{max(row.latencies) * 1000:>7.0f} {row.events:>12}"
        )
    print(
        f"({tokens} tokens a run, streamed over about {rows[0].seconds - 3:.1f} s; CPU is "
        "per cent of one core over the run, from the first subscriber's connect to the "
        "last one's end; RSS idle is before any subscriber)"
    )


async def main(n: int, tokens: int, pace: float) -> None:
    text = "".join(f"<{i:05d} token text>"[:PIECE] for i in range(tokens * 4 // PIECE))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        script = root / "scripts.json"
        script.write_text("[]")
        llm_port = free_port()
        async with DevServer(ui=False, search_attributes=search.DEV_SERVER) as server:
            env = {
                **os.environ,
                "TEMPORAL_ADDRESS": server.address,
                "OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
                "OPENAI_API_KEY": "bench",
                "DURAGENT_TASK_QUEUE": QUEUE,
                "DURAGENT_WORKSPACE": str(root / "workspace"),
                "DURAGENT_MODEL": "scripted",
                "DURAGENT_METRICS_PORT": "0",
                "DURAGENT_API_TOKEN": TOKEN,
            }
            procs = [
                await spawn(env, root / "llm.log", "-m", "duragent.worker.scripted_llm",
                            "--port", str(llm_port), "--script", str(script)),
                await spawn(env, root / "worker.log", "-m", "duragent.worker.cli", "worker"),
                await spawn(env, root / "serve.log", "-m", "duragent.worker.cli", "serve",
                            "--port", "0"),
            ]  # fmt: skip
            try:
                url = await wait_for(root / "serve.log", r"API at (http://\S+)/api/v1")
                await wait_for(root / "worker.log", r"(polling) task queue")
                await measure(env, url, llm_port, procs, n, tokens, text, pace)
            finally:
                for proc in procs:
                    proc.terminate()
                    await proc.wait()


async def measure(
    env: dict[str, str],
    url: str,
    llm_port: int,
    procs: list[asyncio.subprocess.Process],
    n: int,
    tokens: int,
    text: str,
    pace: float,
) -> None:
    limits = httpx2.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120) as http,
        httpx2.AsyncClient(base_url=f"http://127.0.0.1:{llm_port}") as llm,
    ):
        ctx = {
            "client": await connect(env),
            "http": http,
            "llm": llm,
            "serve_pid": procs[2].pid,
            "worker_pid": procs[1].pid,
            "text": text,
            "pace": pace,
        }
        idle = rss_mib(procs[2].pid)
        rows = [Row(1, 0.25), Row(n, 0.25), Row(n, 0.05)]
        for row in rows:
            await run_row(row, ctx)
    report(rows, idle, tokens)


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            int(args[0]) if args else 100,
            int(args[1]) if len(args) > 1 else 1000,
            float(args[2]) if len(args) > 2 else 0.02,
        )
    )
