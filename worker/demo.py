"""``duragent demo``: one agent run on the embedded defaults, start to finish.

Temporal: the server at ``TEMPORAL_ADDRESS`` when set, otherwise a local dev server
(persisted in ``.duragent/temporal.db``, so ``duragent server`` shows the run again
later). LLM: ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` when set, otherwise the scripted
OpenAI-compatible server with the demo script. The worker runs in this process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from activities.models import Message
from worker.client import connect, start_agent
from worker.devserver import DevServer
from worker.main import agent_worker
from worker.scripted_llm import ScriptedLLMServer
from worker.settings import LLMSettings, Settings
from workflows import search_attributes as search
from workflows.agent import AgentWorkflow
from workflows.models import AgentInput, AgentResult, TranscriptQuery

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
    async with _temporal(env) as (temporal_env, ui_url), _llm(settings) as llm:
        settings = dataclasses.replace(settings, llm=llm, task_queue=DEMO_TASK_QUEUE)
        client = await connect(temporal_env)
        async with agent_worker(client, settings):
            handle = await start_agent(
                client, AgentInput(task=DEMO_TASK, model=settings.model), task_queue=DEMO_TASK_QUEUE
            )
            print(f"agent {handle.id} started; task: {DEMO_TASK}", flush=True)
            result = await handle.result()
            page = await handle.query(AgentWorkflow.transcript, TranscriptQuery(limit=500))
        _report(handle.id, result, page.messages, settings, ui_url)
    return 0 if result.answer else 1


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
    for f in result.files:
        print(f"file:    {(settings.workspace / f).resolve()}")
    if ui_url:
        print(
            f"history: {ui_url}/namespaces/default/workflows/{agent_id} "
            "(the server stops with the demo; `duragent server` serves this history again)"
        )
    else:
        print(f"history: `temporal workflow show --workflow-id {agent_id}`")
