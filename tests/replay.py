"""Recorded histories: what running agents replay after a code change.

``uv run python -m tests.replay record`` runs the reference scenario on an embedded
server and writes ``tests/histories/<name>.json``. Record a new file (keep the old ones)
when a change is deliberately versioned with ``workflow.patched()``; the replay test
replays every committed file, so a change that would break running agents fails CI.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer, WorkflowReplayResult

from tests.conftest import eventually
from worker.client import connect, start_agent
from worker.devserver import DevServer
from worker.main import agent_worker
from worker.plugin import DuragentPlugin
from worker.scripted_llm import ScriptedLLMServer
from worker.settings import LLMSettings, Settings
from workflows.agent import AgentWorkflow
from workflows.models import AgentInput, AgentStatus, ReplyInput

HISTORIES = Path(__file__).with_name("histories")

# Tools over several cycles, a malformed call, an unknown tool, a nudge, a question
# answered by update, then finish: every branch of the cycle once.
REFERENCE_STEPS: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "_write_file", "arguments": {"path": "a.txt", "content": "A"}}]},
    {"tool_calls": [{"name": "_read_file", "arguments": '{"path": '}, {"name": "_nope"}]},
    {"content": "thinking out loud"},
    {"tool_calls": [{"name": "_ask_user", "arguments": {"question": "Go on?"}}]},
    {"tool_calls": [{"name": "_task_finish", "arguments": {"message": "done"}}]},
]


async def replay(history: WorkflowHistory) -> WorkflowReplayResult:
    """Replay one history with the same plugin the worker uses."""
    replayer = Replayer(workflows=[], plugins=[DuragentPlugin()])
    return await replayer.replay_workflow(history, raise_on_replay_failure=False)


async def record_reference(name: str) -> Path:
    """Run the reference scenario and save its history."""
    with tempfile.TemporaryDirectory() as tmp, ScriptedLLMServer() as llm:
        llm.add_script({"name": "ref", "match": "[reference]", "steps": REFERENCE_STEPS})
        async with DevServer(ui=False) as server:
            client = await connect({"TEMPORAL_ADDRESS": server.address})
            settings = Settings(
                task_queue="record",
                workspace=Path(tmp),
                llm=LLMSettings(base_url=llm.base_url, api_key="k"),
            )
            async with agent_worker(client, settings):
                input = AgentInput(task="[reference] write, read, ask, finish", model="scripted")
                handle = await start_agent(client, input, task_queue="record", agent_id=name)
                await eventually(lambda: _waiting(handle))
                _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="yes"))
                await handle.result()
            history = await handle.fetch_history()
    path = HISTORIES / f"{name}.json"
    path.write_text(history.to_json(), encoding="utf-8")
    return path


async def _waiting(handle: WorkflowHandle[AgentWorkflow, Any]) -> bool:
    view = await handle.query(AgentWorkflow.status)
    return view.status is AgentStatus.WAITING_USER


if __name__ == "__main__":
    if sys.argv[1:2] != ["record"] or len(sys.argv) != 3:
        sys.exit("usage: python -m tests.replay record NAME")
    print(asyncio.run(record_reference(sys.argv[2])))
