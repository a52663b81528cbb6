"""Shared fixtures: one real Temporal dev server and one scripted LLM server per session.

Each test gets its own task queue and workspace, and registers its own LLM script
under a unique marker, so tests never see each other's agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from duragent.activities.objectstore import ObjectStoreConfig
from duragent.activities.tools import Tool
from duragent.worker.client import connect
from duragent.worker.devserver import DevServer
from duragent.worker.main import agent_worker
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.worker.settings import LLMSettings, Settings
from duragent.workflows import search_attributes as search
from duragent.workflows.policy import own_workspace
from tests.objectstore import ObjectStoreServer, WeedUnavailable, ensure_weed, find_weed

LOOPBACK = {"localhost", "127.0.0.1", "::1", None, ""}


@pytest.fixture(scope="session", autouse=True)
def no_real_llm_provider() -> Iterator[None]:
    """Fail any test that tries to resolve a non-loopback host (a real LLM provider).

    Name resolution is the first step of any request to OpenAI or another hosted
    provider, so refusing it turns an accidental real call into a loud failure.
    """
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in LOOPBACK and not str(name).startswith("127."):
            raise AssertionError(f"test tried to reach {name!r}: only loopback is allowed")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = guarded
    yield
    socket.getaddrinfo = real


@pytest.fixture(scope="session", autouse=True)
def no_metrics_endpoint() -> Iterator[None]:
    """Worker processes that tests spawn serve no ``/metrics``.

    They would all want the default port 9464, and the second would refuse to start.
    The observability tests start their own endpoints, on free ports.
    """
    previous = os.environ.get("DURAGENT_METRICS_PORT")
    os.environ["DURAGENT_METRICS_PORT"] = "0"
    yield
    if previous is None:
        os.environ.pop("DURAGENT_METRICS_PORT", None)
    else:
        os.environ["DURAGENT_METRICS_PORT"] = previous


@pytest.fixture(scope="session")
async def temporal() -> AsyncIterator[DevServer]:
    """The session's real Temporal dev server."""
    async with DevServer(ui=False, search_attributes=search.DEV_SERVER) as server:
        yield server


@pytest.fixture(scope="session")
async def client(temporal: DevServer) -> Client:
    """A client with the duragent plugin, as the CLI builds it."""
    return await connect({"TEMPORAL_ADDRESS": temporal.address})


@pytest.fixture(scope="session")
def llm() -> Iterator[ScriptedLLMServer]:
    """The session's scripted OpenAI-compatible server."""
    with ScriptedLLMServer() as server:
        yield server


@dataclass
class Harness:
    """What a workflow test needs: its own queue, workspace, script marker and worker."""

    client: Client
    llm: ScriptedLLMServer
    workspace: Path
    task_queue: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:10]}")
    marker: str = field(default_factory=lambda: f"[run {uuid.uuid4().hex[:10]}]")

    def settings(self, llm: LLMSettings | None = None) -> Settings:
        """Worker settings aimed at the scripted LLM and this test's workspace."""
        return Settings(
            task_queue=self.task_queue,
            workspace=self.workspace,
            model="scripted",
            llm=llm or LLMSettings(base_url=self.llm.base_url, api_key="test-key"),
            store_dir=self.workspace.parent / "store",
        )

    def script(self, steps: list[dict[str, Any]], **extra: Any) -> str:
        """Register a script for this test; returns a task text that selects it."""
        self.llm.add_script({"name": self.marker, "match": self.marker, "steps": steps, **extra})
        return f"{self.marker} do the task"

    def worker(
        self, llm: LLMSettings | None = None, *, tools: Sequence[Tool[Any]] | None = None
    ) -> AbstractAsyncContextManager[Worker]:
        """``async with h.worker():`` runs a fresh worker on this test's task queue."""
        return agent_worker(self.client, self.settings(llm), tools=tools)

    def folder(self, agent_id: str) -> Path:
        """The workspace folder of an agent that names none (its own, by its id)."""
        return self.workspace / own_workspace(agent_id)

    def requests(self) -> list[Any]:
        """Requests the scripted LLM answered for this test's script."""
        return [r for r in self.llm.requests if r.script == self.marker]


@pytest.fixture
def harness(client: Client, llm: ScriptedLLMServer, tmp_path: Path) -> Harness:
    """A per-test harness on the shared servers."""
    return Harness(client=client, llm=llm, workspace=tmp_path / "workspace")


async def eventually(
    check: Callable[[], Any],
    what: str = "condition",
    *,
    within: float = 20.0,
    interval: float = 0.05,
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy, or fail."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not met within {within}s")
        await asyncio.sleep(interval)  # polling interval of a deadline wait (ok)


# ---- S3-compatible object store (SeaweedFS, see tests/objectstore.py)

_NO_WEED = pytest.StashKey[str]()  # why there is no object store server, when there is none


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``object_store`` mark (``-m "not object_store"`` deselects them)."""
    config.addinivalue_line(
        "markers", "object_store: needs the S3-compatible server (for a fixture's param)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Build SeaweedFS before the first test when a selected test needs the object store.

    The build takes minutes, once per machine (``scripts/bootstrap.sh test`` does it
    first); inside a test it would run into the per-test timeout. A test needs it when
    it uses the ``object_store`` fixture or carries the ``object_store`` mark (a param
    whose fixture asks for it at run time).
    """
    if find_weed() is not None:
        return
    if not any(
        "object_store" in getattr(item, "fixturenames", ())
        or item.get_closest_marker("object_store")
        for item in items
    ):
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    # Uncaptured, so the build's progress lines reach the terminal.
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        try:
            ensure_weed()
        except WeedUnavailable as err:
            config.stash[_NO_WEED] = str(err)


@pytest.fixture(scope="session")
def object_store(pytestconfig: pytest.Config) -> Iterator[ObjectStoreServer]:
    """The session's real S3-compatible server; its tests skip, saying why, without one."""
    binary = find_weed()
    if binary is None:
        pytest.skip(pytestconfig.stash.get(_NO_WEED, "SeaweedFS is not built"))
    with ObjectStoreServer(binary) as server:
        yield server


@pytest.fixture
def s3_bucket(object_store: ObjectStoreServer) -> ObjectStoreConfig:
    """A fresh bucket of its own for the test, as a worker's connection to it."""
    return object_store.config(object_store.create_bucket())
