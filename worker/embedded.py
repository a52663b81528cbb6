"""Everything a run needs on one machine, for benchmarks and recorded histories.

A dev server, the scripted LLM and worker settings pointing at both, under one folder:
``async with embedded(root, scripts=[...]) as env:`` then ``agent_worker(env.client,
env.settings)``. The demo has its own variant that reuses a server and a real LLM when
the environment names them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from duragent.worker.client import connect
from duragent.worker.devserver import DevServer
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.worker.settings import LLMSettings, Settings
from duragent.workflows import search_attributes as search


@dataclass(frozen=True)
class Embedded:
    """A running embedded environment."""

    client: Client
    llm: ScriptedLLMServer
    settings: Settings
    """Worker settings: the scripted LLM, a workspace and a store under the root."""


@asynccontextmanager
async def embedded(
    root: Path, *, scripts: Sequence[Mapping[str, Any]] = (), task_queue: str = "embedded"
) -> AsyncIterator[Embedded]:
    """Start a dev server and the scripted LLM; stop both on exit."""
    with ScriptedLLMServer(scripts=scripts) as llm:
        async with DevServer(ui=False, search_attributes=search.DEV_SERVER) as server:
            client = await connect({"TEMPORAL_ADDRESS": server.address})
            settings = Settings(
                task_queue=task_queue,
                workspace=root / "workspace",
                llm=LLMSettings(base_url=llm.base_url, api_key="scripted"),
                store_dir=root / "store",
            )
            yield Embedded(client, llm, settings)
