"""Recorded histories of what the library added: a definition's run and a catalog lookup.

``uv run python -m tests.replay_library`` runs both on an embedded server and writes
``tests/histories/agent-v7.json`` (a run started from an ``Agent`` definition whose
typed output its pydantic type refuses once: the ``definition-output-check`` patch)
and ``tests/histories/catalog-v1.json`` (one ``duragent.catalog`` lookup).
``tests/test_replay.py`` replays them with every other recorded history.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from pydantic import BaseModel, field_validator

from duragent.worker.agents import Agent
from duragent.worker.embedded import embedded
from duragent.worker.library import start
from duragent.worker.main import agent_workers
from duragent.workflows.catalog import CatalogRequest, CatalogWorkflow
from tests.replay import HISTORIES


class Verdict(BaseModel):
    """A typed output with a check its JSON Schema cannot express."""

    word: str

    @field_validator("word")
    @classmethod
    def _lower(cls, word: str) -> str:
        if word != word.lower():
            raise ValueError("lower case only")
        return word


REFEREE = Agent(name="referee", model="scripted", output_type=Verdict, max_cycles=4)
STEPS = [
    {"tool_calls": [{"name": "_task_finish", "arguments": {"message": "m", "output": {}}}]},
    {
        "tool_calls": [
            {"name": "_task_finish", "arguments": {"message": "m", "output": {"word": "LOUD"}}}
        ]
    },
    {
        "tool_calls": [
            {"name": "_task_finish", "arguments": {"message": "m", "output": {"word": "quiet"}}}
        ]
    },
]


async def record(agent_name: str = "agent-v7", catalog_name: str = "catalog-v1") -> list[Path]:
    """Run both scenarios and save their histories."""
    scripts = [{"name": "referee", "match": "[referee]", "steps": STEPS}]
    with tempfile.TemporaryDirectory() as tmp:
        async with embedded(Path(tmp), scripts=scripts, task_queue="record") as env:
            async with agent_workers(env.client, env.settings, agents=[REFEREE]):
                handle = await start(
                    env.client, REFEREE, "[referee] judge", id=agent_name, task_queue="record"
                )
                assert await handle == Verdict(word="quiet")
                listed = await env.client.execute_workflow(
                    CatalogWorkflow.run, CatalogRequest(), id=catalog_name, task_queue="record"
                )
                assert [a.name for a in listed.agents] == ["referee"]
                agent = await handle.workflow.fetch_history()
                catalog = await env.client.get_workflow_handle(catalog_name).fetch_history()
    paths = []
    for name, history in ((agent_name, agent), (catalog_name, catalog)):
        path = HISTORIES / f"{name}.json"
        path.write_text(history.to_json(), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in asyncio.run(record()):
        print(written)
