"""Fixtures of the ``duragent serve`` tests.

Per module, a task queue with a worker on it and a ``duragent serve`` process for it;
per test, a script marker of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from duragent.worker.scripted_llm import ScriptedLLMServer
from tests.conftest import Harness
from tests.serve.support import Served, serve


@pytest.fixture(scope="module")
async def base(
    client: Client, llm: ScriptedLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Harness]:
    """The module's task queue, with a worker on it for every test."""
    h = Harness(client=client, llm=llm, workspace=tmp_path_factory.mktemp("serve") / "workspace")
    async with h.worker():
        yield h


@pytest.fixture(scope="module")
async def served(base: Harness, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """``duragent serve`` for the module's task queue (token: ``support.TOKEN``)."""
    async with serve(base, tmp_path_factory.mktemp("serve-log") / "serve.log") as server:
        yield server


@pytest.fixture
def h(base: Harness) -> Harness:
    """A script marker of the test's own, on the module's queue and worker."""
    return Harness(base.client, base.llm, base.workspace, task_queue=base.task_queue)
