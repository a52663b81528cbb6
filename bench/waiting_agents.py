"""How many agents waiting on a reply one worker holds, and its memory while they wait.

Starts a dev server, the scripted LLM and one `duragent worker` process; starts N
agents that each ask a question; when all wait, prints the worker's RSS; then answers
them all and prints how long it took until every one completed.

    uv run python -m bench.waiting_agents [N] [MAX_CACHED_WORKFLOWS]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from duragent.worker.client import connect, start_agent
from duragent.worker.devserver import DevServer
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.workflows import search_attributes as search
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentInput, AgentStatus, ReplyInput

SCRIPT = {
    "name": "bench",
    "match": "[bench]",
    "steps": [
        {"tool_calls": [{"name": "_ask_user", "arguments": {"question": "Proceed?"}}]},
        {"tool_calls": [{"name": "_task_finish", "arguments": {"message": "ok"}}]},
    ],
}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main(n: int, cache: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, ScriptedLLMServer(scripts=[SCRIPT]) as llm:
        async with DevServer(ui=False, search_attributes=search.DEV_SERVER) as server:
            env = {
                **os.environ,
                "TEMPORAL_ADDRESS": server.address,
                "OPENAI_BASE_URL": llm.base_url,
                "OPENAI_API_KEY": "bench",
                "DURAGENT_TASK_QUEUE": "bench",
                "DURAGENT_WORKSPACE": tmp,
                "DURAGENT_MAX_CACHED_WORKFLOWS": str(cache),
            }
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "duragent.worker.cli",
                "worker",
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                await measure(await connect(env), worker.pid, n)
            finally:
                worker.terminate()
                await worker.wait()


async def measure(client: object, pid: int, n: int) -> None:
    from temporalio.client import Client

    assert isinstance(client, Client)
    warm_up = AgentInput(task="[bench] ask", model="scripted")
    first = await start_agent(client, warm_up, task_queue="bench")
    while (await first.query(AgentWorkflow.status)).status is not AgentStatus.WAITING_USER:
        await asyncio.sleep(0.2)
    _ = await first.execute_update(AgentWorkflow.reply, ReplyInput(answer="yes"))
    await first.result()
    print(f"worker RSS after one agent ran: {rss_mib(pid):.0f} MiB")
    started = time.monotonic()
    handles = await asyncio.gather(
        *(
            start_agent(
                client, AgentInput(task="[bench] ask", model="scripted"), task_queue="bench"
            )
            for _ in range(n)
        )
    )
    # Visibility, not queries: asking 500 agents at once would only measure the queries.
    waiting = f"{search.STATUS.name} = 'waiting_user' AND TaskQueue = 'bench'"
    while (await client.count_workflows(waiting)).count < n:
        await asyncio.sleep(0.5)
    print(
        f"{n} agents waiting_user after {time.monotonic() - started:.1f} s; "
        f"worker RSS {rss_mib(pid):.0f} MiB"
    )
    started = time.monotonic()
    await asyncio.gather(
        *(h.execute_update(AgentWorkflow.reply, ReplyInput(answer="yes")) for h in handles)
    )
    results = await asyncio.gather(*(h.result() for h in handles))
    done = sum(r.status is AgentStatus.COMPLETED for r in results)
    print(
        f"{done}/{n} completed {time.monotonic() - started:.1f} s after the replies; "
        f"worker RSS {rss_mib(pid):.0f} MiB"
    )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    cache = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    print(f"N={count} agents, worker max_cached_workflows={cache}")
    asyncio.run(main(count, cache))
