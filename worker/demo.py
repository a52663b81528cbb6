"""``duragent demo``: one agent run on the embedded defaults, start to finish.

Temporal: the server at ``TEMPORAL_ADDRESS`` when set, otherwise a local dev server
(persisted in ``.duragent/temporal.db``, so ``duragent server`` shows the run again
later). LLM: ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` when set, otherwise the scripted
OpenAI-compatible server with the demo script. The worker runs in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from temporalio.client import Client

from duragent.activities.models import Message
from duragent.worker.client import connect, start_agent
from duragent.worker.devserver import DevServer
from duragent.worker.main import agent_worker
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.worker.settings import LLMSettings, Settings
from duragent.worker.telemetry import (
    MetricsUnavailable,
    Telemetry,
    TelemetrySettings,
    TraceNode,
    history_trace,
    render_tree,
    trace_id_of,
    where_lines,
)
from duragent.workflows import search_attributes as search
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentInput, AgentResult, TranscriptQuery

DEMO_TASK = (
    "Write a three-step plan for learning Temporal to notes/temporal-plan.md in the "
    "workspace, read it back to check it, then finish with a one-line summary."
)
DEMO_SCRIPT = Path(__file__).with_name("demo_script.json")
DEMO_TASK_QUEUE = "duragent-demo"
DEMO_DB = Path(".duragent/temporal.db")


async def run_demo(env: Mapping[str, str]) -> int:
    """Run the demo agent and print what it did; returns the process exit code."""
    settings = Settings.from_env(env)
    observability = _local_metrics(TelemetrySettings.from_env(env), env)
    async with _temporal(env) as (temporal_env, ui_url), _llm(settings) as llm:
        settings = dataclasses.replace(settings, llm=llm, task_queue=DEMO_TASK_QUEUE)
        telemetry = Telemetry(observability, metrics=True, llm_base_url=llm.base_url)
        try:
            client = await connect(temporal_env, telemetry=telemetry)
            agent_id, result, transcript, tree = await _run_agent(client, telemetry, settings)
        finally:
            await asyncio.to_thread(telemetry.shutdown)  # the demo's spans leave before it ends
        _report(agent_id, result, transcript, settings, ui_url)
        print(f"\nthe run as a tree (`duragent trace {agent_id}` prints it again):")
        print(render_tree(tree))
    return 0 if result.answer else 1


async def _run_agent(
    client: Client, telemetry: Telemetry, settings: Settings
) -> tuple[str, AgentResult, list[Message], TraceNode]:
    async with _metrics(telemetry, client) as metrics_url, agent_worker(client, settings):
        handle = await start_agent(
            client, AgentInput(task=DEMO_TASK, model=settings.model), task_queue=DEMO_TASK_QUEUE
        )
        print(f"agent {handle.id} started; task: {DEMO_TASK}", flush=True)
        trace_id = await trace_id_of(client, handle.id)
        for line in where_lines(telemetry.settings, handle.id, trace_id, metrics_url=metrics_url):
            print(line, flush=True)
        result = await handle.result()
        page = await handle.query(AgentWorkflow.transcript, TranscriptQuery(limit=500))
    return handle.id, result, page.messages, await history_trace(client, handle.id)


def _local_metrics(settings: TelemetrySettings, env: Mapping[str, str]) -> TelemetrySettings:
    # A worker in a container listens on every interface; the demo on a laptop need not.
    if env.get("DURAGENT_METRICS_HOST"):
        return settings
    return dataclasses.replace(
        settings, metrics=dataclasses.replace(settings.metrics, host="127.0.0.1")
    )


@contextlib.asynccontextmanager
async def _metrics(telemetry: Telemetry, client: Client) -> AsyncIterator[str | None]:
    """Serve the worker's metrics during the demo; a busy port only turns them off."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            server = await stack.enter_async_context(telemetry.serve(client, DEMO_TASK_QUEUE))
        except MetricsUnavailable as err:
            print(f"metrics: off for this demo ({err})", flush=True)
            server = None
        host = telemetry.settings.metrics.host
        yield f"http://{host}:{server.port}/metrics (while the demo runs)" if server else None


@contextlib.asynccontextmanager
async def _temporal(env: Mapping[str, str]) -> AsyncIterator[tuple[dict[str, str], str | None]]:
    if env.get("TEMPORAL_ADDRESS"):
        yield dict(env), None
        return
    DEMO_DB.parent.mkdir(parents=True, exist_ok=True)
    print("starting a local Temporal dev server ...", flush=True)
    async with DevServer(db_file=DEMO_DB, search_attributes=search.DEV_SERVER) as server:
        print(f"Temporal at {server.address}, UI at {server.ui_url}", flush=True)
        yield {**env, "TEMPORAL_ADDRESS": server.address}, server.ui_url


@contextlib.asynccontextmanager
async def _llm(settings: Settings) -> AsyncIterator[LLMSettings]:
    if settings.llm.configured:
        print(f"LLM: {settings.llm.base_url or 'OpenAI'}, model {settings.model}", flush=True)
        yield settings.llm
        return
    script = json.loads(DEMO_SCRIPT.read_text(encoding="utf-8"))
    with ScriptedLLMServer(scripts=[script]) as server:
        print(
            f"LLM: scripted OpenAI-compatible server at {server.base_url} "
            "(set OPENAI_API_KEY to use a real model)",
            flush=True,
        )
        yield LLMSettings(base_url=server.base_url)


def _report(
    agent_id: str,
    result: AgentResult,
    transcript: list[Message],
    settings: Settings,
    ui_url: str | None,
) -> None:
    print()
    for message in transcript:
        for call in message.tool_calls:
            print(f"  tool call  {call.name}({call.arguments[:80]})")
    print()
    print(
        f"status:  {result.status.value} after {result.cycles} cycles "
        f"({result.usage.input_tokens} tokens in, {result.usage.output_tokens} out)"
    )
    print(f"answer:  {result.answer}")
    # Files are named relative to the agent's own folder of the workspace.
    folder = settings.workspace / (result.workspace or ".")
    for f in result.files:
        print(f"file:    {(folder / f).resolve()}")
    if ui_url:
        print(
            f"history: {ui_url}/namespaces/default/workflows/{agent_id} "
            "(the server stops with the demo; `duragent server` serves this history again)"
        )
    else:
        print(f"history: `temporal workflow show --workflow-id {agent_id}`")
