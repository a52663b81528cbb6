"""What one durable agent cycle costs: duragent against the bare Temporal loop.

One run, one process tree: a dev server (with the queue-poll throttle lifted, as every
``DevServer`` does), the scripted OpenAI-compatible LLM in this process, and one worker
**process** per engine, so each engine's CPU and memory are read from its own
``/proc/<pid>``. The engines are ``bare`` (``bench.bare_loop``: one LLM activity with the
whole transcript and one tool activity per cycle, the durable floor) and ``duragent``
(``AgentWorkflow`` on the stock ``duragent worker``, default settings: streaming on).
Both get the same script: every cycle the model appends a line to a file.

Modes:

- ``cycles``: one agent of N cycles per engine, rounds interleaved (bare, duragent,
  duragent, bare, ...); per cycle: overhead (wall time minus the model's own latency,
  ``--llm-delay``; the scripted server's parsing counts as overhead, alike for both),
  worker CPU, history events and bytes (all runs of a continue-as-new chain). Medians
  over the rounds.
- ``throughput``: N agents of 5 cycles started at once on a fresh worker: agents/s,
  p50/p95 latency (start to result), the worker's peak RSS (sampled every 50 ms).
- ``recovery``: the worker is SIGKILLed while an LLM call is in flight and a new one is
  started at once: seconds from the kill to the next completed cycle (its tool call
  done).

Every table ends with the ratio to ``bare``. A benchmark, not a test: nothing is
asserted about speed. ::

    uv run python -m bench.cycle_cost [--cycles 50,200] [--agents 200] [--rounds 3]
        [--mode all|cycles|throughput|recovery] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import temporalio.api.taskqueue.v1 as taskqueue
import temporalio.api.workflowservice.v1 as workflow_service
from temporalio.api.enums.v1 import EventType, PendingActivityState, TaskQueueType
from temporalio.client import Client, WorkflowHandle

from bench import bare_loop
from duragent.activities.memory import SUMMARY_SYSTEM
from duragent.worker.client import connect, start_agent
from duragent.worker.devserver import DEV_DYNAMIC_CONFIG, DevServer
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.workflows import search_attributes as search
from duragent.workflows.models import AgentInput

DURAGENT_LLM = "duragent.llm_chat"
DURAGENT_TOOL = "duragent.run_tool"
CYCLE_MARKER = "[cycle cost]"
RECOVERY_MARKER = "[cycle cost recovery]"
THROUGHPUT_CYCLES = 5
# The model's latency in recovery mode: long enough to kill the worker mid-call.
RECOVERY_LLM_SECONDS = 3.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _write_step(line: str, delay: float) -> dict[str, Any]:
    call = {
        "name": "_write_file",
        "arguments": {"path": "log.txt", "content": line, "append": True},
    }
    step: dict[str, Any] = {"tool_calls": [call]}
    if delay:
        step["delay_seconds"] = delay
    return step


def scripts(line: str, delay: float) -> list[dict[str, Any]]:
    """The scripted model: append ``line`` every cycle (and summaries, should it compact)."""
    summary = {"content": "## Decisions\n- append lines\n## Next steps\n- append"}
    return [
        {"name": "summary", "match": SUMMARY_SYSTEM[:60], "steps": [summary]},
        {
            "name": "recovery",
            "match": RECOVERY_MARKER,
            "steps": [_write_step(line, 0), _write_step(line, RECOVERY_LLM_SECONDS)],
        },
        {"name": "cycles", "match": CYCLE_MARKER, "steps": [_write_step(line, delay)]},
    ]


# --------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_mib(pid: int) -> float:
    """Resident memory of a process now."""
    resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident * _PAGE_KIB / 1024


@contextlib.asynccontextmanager
async def peak_rss(pid: int, into: list[float]) -> AsyncIterator[None]:
    """Sample ``pid``'s RSS every 50 ms inside the block; append the peak to ``into``."""
    peak = rss_mib(pid)

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mib(pid))
            await asyncio.sleep(0.05)  # sampling period, not a wait for a condition

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        into.append(max(peak, rss_mib(pid)))


# --------------------------------------------------------------------------- engines


@dataclass
class Engine:
    """One engine: how to run its worker process and start one of its agents."""

    name: str
    client: Client
    task_queue: str
    argv: list[str]
    env: dict[str, str]
    llm_activity: str
    tool_activity: str
    start: Callable[[Engine, str, int], Awaitable[WorkflowHandle[Any, Any]]]
    proc: asyncio.subprocess.Process | None = field(default=None, repr=False)
    profile: Path | None = None
    """Where py-spy writes the worker's collapsed stacks (``--profile``), one file each."""
    profiler: asyncio.subprocess.Process | None = field(default=None, repr=False)
    profiles: int = 0

    @property
    def pid(self) -> int:
        """The worker process's id."""
        assert self.proc is not None, f"{self.name}: no worker running"
        return self.proc.pid

    async def start_worker(self) -> None:
        """Start a worker process and wait until it polls the task queue."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await self.polled()
        if self.profile is not None:
            self.profiles += 1
            out = self.profile / f"{self.name}-{self.profiles}.txt"
            self.profiler = await asyncio.create_subprocess_exec(
                *("py-spy", "record", "--format", "raw", "--rate", "250", "--gil"),
                *("--pid", str(self.pid), "-o", str(out)),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )

    async def polled(self, within: float = 60.0) -> None:
        """Wait until a worker polls this engine's workflow task queue."""
        deadline = time.monotonic() + within
        request = workflow_service.DescribeTaskQueueRequest(
            namespace=self.client.namespace,
            task_queue=taskqueue.TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        while True:
            if self.proc is not None and self.proc.returncode is not None:
                raise RuntimeError(f"{self.name} worker exited with {self.proc.returncode}")
            described = await self.client.workflow_service.describe_task_queue(request)
            if described.pollers:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} worker not polling after {within:.0f} s")
            await asyncio.sleep(0.1)  # polling interval of a deadline wait

    async def stop_worker(self) -> None:
        """SIGTERM the worker and reap it."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            await proc.wait()
        profiler, self.profiler = self.profiler, None
        if profiler is not None:
            await profiler.wait()  # it writes its file when the worker is gone

    def kill_worker(self) -> None:
        """SIGKILL the worker; the caller reaps it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)


async def _start_bare(engine: Engine, task: str, cycles: int) -> WorkflowHandle[Any, Any]:
    return await engine.client.start_workflow(
        bare_loop.WORKFLOW,
        bare_loop.BareInput(task=task, cycles=cycles),
        id=f"bare-{uuid.uuid4().hex[:12]}",
        task_queue=engine.task_queue,
    )


async def _start_duragent(engine: Engine, task: str, cycles: int) -> WorkflowHandle[Any, Any]:
    input = AgentInput(task=task, model="scripted", max_cycles=cycles)
    return await start_agent(engine.client, input, task_queue=engine.task_queue)


async def engines(server: DevServer, llm: ScriptedLLMServer, root: Path) -> list[Engine]:
    """The bare loop and duragent, each with its own queue and worker command."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DURAGENT_"))}
    bare_client = await Client.connect(server.address)
    duragent_client = await connect({"TEMPORAL_ADDRESS": server.address})
    duragent_env = {
        **base_env,
        "TEMPORAL_ADDRESS": server.address,
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "bench",
        "DURAGENT_TASK_QUEUE": "bench-duragent",
        "DURAGENT_WORKSPACE": str(root / "duragent-workspace"),
        "DURAGENT_STORE_DIR": str(root / "duragent-store"),
        "DURAGENT_METRICS_PORT": "0",
    }
    bare_argv = [sys.executable, "-m", "bench.bare_loop", server.address, "bench-bare"]
    return [
        Engine(
            name="bare",
            client=bare_client,
            task_queue="bench-bare",
            argv=[*bare_argv, llm.base_url, str(root / "bare-workspace")],
            env=base_env,
            llm_activity=bare_loop.LLM_ACTIVITY,
            tool_activity=bare_loop.TOOL_ACTIVITY,
            start=_start_bare,
        ),
        Engine(
            name="duragent",
            client=duragent_client,
            task_queue="bench-duragent",
            argv=[sys.executable, "-m", "duragent.worker.cli", "worker"],
            env=duragent_env,
            llm_activity=DURAGENT_LLM,
            tool_activity=DURAGENT_TOOL,
            start=_start_duragent,
        ),
    ]


# --------------------------------------------------------------------------- history


@dataclass
class History:
    """Events and bytes of a whole continue-as-new chain."""

    events: int = 0
    bytes: int = 0
    runs: int = 0


async def history_of(client: Client, handle: WorkflowHandle[Any, Any]) -> History:
    """Walk every run of the chain that starts at ``handle``'s first run."""
    found = History()
    run_id: str | None = handle.first_execution_run_id or handle.result_run_id
    while run_id is not None:
        found.runs += 1
        next_run = None
        run = client.get_workflow_handle(handle.id, run_id=run_id)
        async for event in run.fetch_history_events():
            found.events += 1
            found.bytes += event.ByteSize()
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                attributes = event.workflow_execution_continued_as_new_event_attributes
                next_run = attributes.new_execution_run_id
        run_id = next_run
    return found


# --------------------------------------------------------------------------- cycles


@dataclass
class CycleRound:
    """One agent of N cycles on one engine."""

    overhead_ms: float
    cpu_ms: float
    events: float
    bytes: float
    runs: int


async def one_cycle_round(engine: Engine, cycles: int, llm_delay: float) -> CycleRound:
    """Run one agent to its end; everything per cycle."""
    cpu_before = cpu_seconds(engine.pid)
    started = time.perf_counter()
    handle = await engine.start(engine, f"{CYCLE_MARKER} append lines", cycles)
    await handle.result()
    wall = time.perf_counter() - started
    cpu = cpu_seconds(engine.pid) - cpu_before
    history = await history_of(engine.client, handle)
    return CycleRound(
        overhead_ms=1000 * (wall - cycles * llm_delay) / cycles,
        cpu_ms=1000 * cpu / cycles,
        events=history.events / cycles,
        bytes=history.bytes / cycles,
        runs=history.runs,
    )


async def cycles_mode(
    all_engines: Sequence[Engine], counts: Sequence[int], rounds: int, llm_delay: float
) -> None:
    """Interleaved rounds per cycle count; a table of medians and ratios to bare."""
    for engine in all_engines:  # warm: imports, sandbox, connections
        await one_cycle_round(engine, 2, llm_delay)
    for cycles in counts:
        done: dict[str, list[CycleRound]] = {e.name: [] for e in all_engines}
        for i in range(rounds):
            order = all_engines if i % 2 == 0 else list(reversed(all_engines))
            for engine in order:
                done[engine.name].append(await one_cycle_round(engine, cycles, llm_delay))
                print(f"  {cycles} cycles, round {i + 1}, {engine.name}: done", flush=True)
        _cycles_table(cycles, rounds, done)


def _cycles_table(cycles: int, rounds: int, done: dict[str, list[CycleRound]]) -> None:
    def med(name: str, pick: Callable[[CycleRound], float]) -> float:
        return statistics.median(pick(r) for r in done[name])

    base_overhead = med("bare", lambda r: r.overhead_ms)
    base_cpu = med("bare", lambda r: r.cpu_ms)
    print(f"\n{cycles} cycles per agent, median of {rounds} rounds")
    print(
        f"{'engine':<9} {'overhead ms/cycle':>17} {'ratio':>6} {'worker CPU ms/cycle':>19} "
        f"{'ratio':>6} {'events/cycle':>12} {'history B/cycle':>15} {'runs':>5}"
    )
    for name in done:
        overhead, cpu = med(name, lambda r: r.overhead_ms), med(name, lambda r: r.cpu_ms)
        print(
            f"{name:<9} {overhead:>17.1f} {overhead / base_overhead:>6.2f} {cpu:>19.1f} "
            f"{cpu / base_cpu:>6.2f} {med(name, lambda r: r.events):>12.1f} "
            f"{med(name, lambda r: r.bytes):>15.0f} {done[name][-1].runs:>5}"
        )
    print(flush=True)


# --------------------------------------------------------------------------- throughput


@dataclass
class Throughput:
    """N agents at once on one fresh worker."""

    agents_per_s: float
    p50_s: float
    p95_s: float
    max_s: float
    """The slowest agent: one straggler is what lowers agents/s."""
    slowest: str
    """Its id, to read its history."""
    peak_rss_mib: float
    cpu_ms_per_agent: float
    server_cpu_ms_per_agent: float


async def throughput_of(engine: Engine, agents: int, server: int) -> Throughput:
    """Start ``agents`` agents at once on a fresh worker; wait for all."""
    await engine.stop_worker()
    await engine.start_worker()
    await one_cycle_round(engine, 2, 0.0)  # warm
    peaks: list[float] = []

    async def one() -> tuple[float, str]:
        started = time.perf_counter()
        handle = await engine.start(engine, f"{CYCLE_MARKER} append lines", THROUGHPUT_CYCLES)
        await handle.result()
        return time.perf_counter() - started, handle.id

    async with peak_rss(engine.pid, peaks):
        started, cpu, served = time.perf_counter(), cpu_seconds(engine.pid), cpu_seconds(server)
        timed = sorted(await asyncio.gather(*(one() for _ in range(agents))))
        latencies = [seconds for seconds, _ in timed]
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(engine.pid) - cpu
        served = cpu_seconds(server) - served
    return Throughput(
        agents_per_s=agents / elapsed,
        p50_s=latencies[len(latencies) // 2],
        p95_s=latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        max_s=latencies[-1],
        slowest=timed[-1][1],
        peak_rss_mib=peaks[0],
        cpu_ms_per_agent=cpu * 1000 / agents,
        server_cpu_ms_per_agent=served * 1000 / agents,
    )


async def throughput_mode(all_engines: Sequence[Engine], agents: int, server: int) -> None:
    """One throughput run per engine; a table with ratios to bare (``server``: its pid)."""
    results = {e.name: await throughput_of(e, agents, server) for e in all_engines}
    base = results["bare"]
    print(f"\nthroughput: {agents} agents x {THROUGHPUT_CYCLES} cycles at once, one worker")
    print(
        f"{'engine':<9} {'agents/s':>9} {'ratio':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7} "
        f"{'peak RSS MiB':>12} {'ratio':>6} {'CPU ms/agent':>12} {'ratio':>6} "
        f"{'server CPU ms/agent':>19} {'ratio':>6}"
    )
    for name, r in results.items():
        print(
            f"{name:<9} {r.agents_per_s:>9.2f} {r.agents_per_s / base.agents_per_s:>6.2f} "
            f"{r.p50_s:>7.2f} {r.p95_s:>7.2f} {r.max_s:>7.2f} {r.peak_rss_mib:>12.0f} "
            f"{r.peak_rss_mib / base.peak_rss_mib:>6.2f} {r.cpu_ms_per_agent:>12.0f} "
            f"{r.cpu_ms_per_agent / base.cpu_ms_per_agent:>6.2f} "
            f"{r.server_cpu_ms_per_agent:>19.0f} "
            f"{r.server_cpu_ms_per_agent / base.server_cpu_ms_per_agent:>6.2f}"
        )
    for name, r in results.items():
        print(f"slowest {name} agent: {r.slowest} ({r.max_s:.1f} s)")
    print(flush=True)


# --------------------------------------------------------------------------- recovery


async def _llm_in_flight(engine: Engine, handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the agent's LLM activity runs on a worker now, after one finished cycle."""
    described = await handle.describe()
    pending = described.raw_description.pending_activities
    started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    running = any(
        a.activity_type.name == engine.llm_activity and a.state == started for a in pending
    )
    return running and await _tools_done(engine, handle, after=0.0) >= 1


async def _tools_done(engine: Engine, handle: WorkflowHandle[Any, Any], *, after: float) -> int:
    """Tool activities completed (at a server time later than ``after``)."""
    scheduled: dict[int, str] = {}
    done = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = (
                event.activity_task_scheduled_event_attributes.activity_type.name
            )
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            origin = event.activity_task_completed_event_attributes.scheduled_event_id
            at = event.event_time.ToDatetime().timestamp()
            if scheduled.get(origin) == engine.tool_activity and at > after:
                done += 1
    return done


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not seen within {within:.0f} s")
        await asyncio.sleep(0.1)  # polling interval of a deadline wait


async def _timeline(handle: WorkflowHandle[Any, Any], *, after: float) -> str:
    """The history events from ``after`` on, as seconds since then: where time went."""
    steps: list[str] = []
    async for event in handle.fetch_history_events():
        at = event.event_time.ToDatetime().timestamp() - after
        if at >= 0:
            name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
            steps.append(f"{at:.1f} {name}")
    return ", ".join(steps[:12])


async def recovery_of(engine: Engine) -> float:
    """Seconds from a SIGKILL mid-LLM-call to the next completed cycle."""
    handle = await engine.start(engine, f"{RECOVERY_MARKER} append lines", 10)
    await _until(lambda: _llm_in_flight(engine, handle), "an LLM call in flight", 60)
    engine.kill_worker()
    killed_at = time.time()
    assert engine.proc is not None
    await engine.proc.wait()
    await engine.start_worker()

    async def next_cycle() -> bool:
        return await _tools_done(engine, handle, after=killed_at) >= 1

    await _until(next_cycle, f"{engine.name}: a cycle after the kill", 300)
    seconds = time.time() - killed_at
    print(f"  {engine.name}, s after the kill: {await _timeline(handle, after=killed_at)}")
    await handle.terminate("benchmark done")
    return seconds


async def recovery_mode(all_engines: Sequence[Engine]) -> None:
    """One kill per engine; a table with ratios to bare."""
    results = {e.name: await recovery_of(e) for e in all_engines}
    print(f"\nrecovery: SIGKILL mid-LLM-call (the model takes {RECOVERY_LLM_SECONDS:.0f} s)")
    print(f"{'engine':<9} {'s to next cycle':>15} {'ratio':>6}")
    for name, seconds in results.items():
        print(f"{name:<9} {seconds:>15.1f} {seconds / results['bare']:>6.2f}")
    print(
        "  (bare: its LLM activity has no heartbeat; the retry waits out its "
        f"{bare_loop._LLM_TIMEOUT.seconds} s start-to-close timeout)",
        flush=True,
    )


# --------------------------------------------------------------------------- main


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cycle_cost", description=__doc__)
    parser.add_argument("--cycles", default="50,200", help="cycles per agent, comma-separated")
    parser.add_argument("--agents", type=int, default=200, help="agents in throughput mode")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per count")
    parser.add_argument(
        "--mode", default=None, help="all, cycles, throughput or recovery (comma-separated)"
    )
    parser.add_argument("--line", type=int, default=1000, help="characters appended per cycle")
    parser.add_argument("--llm-delay", type=float, default=0.0, help="model latency, seconds")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="folder for py-spy profiles of each worker (run with `uv run --with py-spy`)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="10 cycles, 20 agents, 1 round, no recovery"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.cycles, args.agents, args.rounds = "10", 20, 1
    modes = {
        m.strip() for m in (args.mode or ("cycles,throughput" if args.quick else "all")).split(",")
    }
    if "all" in modes:
        modes = {"cycles", "throughput", "recovery"}
    unknown = modes - {"cycles", "throughput", "recovery"}
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    args.modes = modes
    args.counts = [int(c) for c in args.cycles.split(",") if c.strip()]
    return args


async def main(argv: Sequence[str] | None = None) -> None:
    """Run the chosen modes and print their tables."""
    args = _parse_args(argv)
    throttle = ", ".join(f"{k}={v}" for k, v in DEV_DYNAMIC_CONFIG.items())
    print(f"dev server: {throttle}; cores: {os.cpu_count()}; line: {args.line} chars", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="cycle-cost-") as tmp,
        ScriptedLLMServer(scripts=scripts("x" * args.line + "\n", args.llm_delay)) as llm,
    ):
        async with DevServer(ui=False, search_attributes=search.DEV_SERVER) as server:
            all_engines = await engines(server, llm, Path(tmp))
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                for engine in all_engines:
                    engine.profile = args.profile
            try:
                for engine in all_engines:
                    await engine.start_worker()
                if "cycles" in args.modes:
                    await cycles_mode(all_engines, args.counts, args.rounds, args.llm_delay)
                if "throughput" in args.modes:
                    assert server.pid is not None
                    await throughput_mode(all_engines, args.agents, server.pid)
                if "recovery" in args.modes:
                    await recovery_mode(all_engines)
            finally:
                for engine in all_engines:
                    await engine.stop_worker()


if __name__ == "__main__":
    asyncio.run(main())
