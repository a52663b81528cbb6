"""Scaling out: worker processes that share one object store for files and transcripts.

Two ``duragent worker`` processes poll one task queue, each with its own local folders
(as on two machines), and both keep agents' files (``DURAGENT_WORKSPACE=s3://…``) and
transcripts (``DURAGENT_STORE=s3://…``) in one real S3-compatible server. Activities go
to whichever worker polls first, so one agent's cycles hop between the two: a file
written on one worker is read, edited and searched on the other, and an LLM call
continues a transcript that the other worker stored. None of that may look like a
missing file or a missing transcript.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.converter import DataConverter

from duragent.activities.errors import LLMErrorType
from duragent.activities.models import LLMRequest, Message, Role, ToolRequest
from duragent.activities.objectstore import ObjectStoreConfig
from duragent.activities.tools.objectstore_workspace import S3Workspace
from duragent.worker.client import start_agent
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentInput, AgentResult, AgentStatus, TranscriptQuery
from duragent.workflows.policy import own_workspace
from tests.conftest import Harness, eventually
from tests.objectstore import ObjectStoreServer
from tests.processes import (
    log_tail,
    polling_pids,
    spawn_worker,
    stop_process,
    worker_env,
    worker_pid,
)

AGENTS = 20
WORKERS = 2
LLM = "duragent.llm_chat"
TOOL = "duragent.run_tool"
FILE_TOOLS = ["_write_file", "_read_file", "_file_str_replace", "_workspace_grep", "_read_file"]
CYCLES = len(FILE_TOOLS) + 1  # then _task_finish
# Twenty agents of six cycles on two workers take about 15 s on a loaded 2-core
# machine; the deadline leaves room without letting a stuck run hold the suite.
RUN_WITHIN = 120.0
# Two Python processes importing the engine at once on two busy cores.
POLLING_WITHIN = 60.0


def note(i: int) -> str:
    """Agent ``i``'s file as it first writes it."""
    return f"# Agent {i}\nstatus: draft-{i}\nowner: agent {i}\n"


def edited(i: int) -> str:
    """Agent ``i``'s file after its edit."""
    return note(i).replace(f"draft-{i}", f"final-{i}")


def script(marker: str, i: int) -> dict[str, Any]:
    """Agent ``i``: write, read, edit, search and read again one file, then finish."""
    path = f"notes/agent-{i}.md"
    arguments: list[dict[str, Any]] = [
        {"path": path, "content": note(i)},
        {"path": path},
        {"path": path, "old": f"draft-{i}", "new": f"final-{i}"},
        {"pattern": f"final-{i}\\b"},
        {"path": path},
    ]
    steps = [
        {"tool_calls": [{"name": name, "arguments": args}]}
        for name, args in zip(FILE_TOOLS, arguments, strict=True)
    ]
    steps.append({"tool_calls": [{"name": "_task_finish", "arguments": {"message": f"done {i}"}}]})
    return {"name": marker, "match": marker, "steps": steps}


@dataclass
class AgentHistory:
    """What one agent's history says about where and how its activities ran."""

    llm_workers: list[int] = field(default_factory=list)
    """The worker process of each LLM call, in order."""
    tool_workers: list[tuple[str, int]] = field(default_factory=list)
    """Each tool call's tool and worker process, in order."""
    llm_inputs: list[LLMRequest] = field(default_factory=list)
    failure_types: list[str] = field(default_factory=list)
    """Error types of the activities that failed (after their retries)."""

    @property
    def workers(self) -> set[int]:
        """Every worker process that ran one of its activities."""
        return {*self.llm_workers, *(pid for _, pid in self.tool_workers)}

    @property
    def transcript_hand_overs(self) -> int:
        """LLM calls that continued a transcript the other worker had stored."""
        return _changes(self.llm_workers)

    @property
    def file_hand_overs(self) -> int:
        """File tool calls on another worker than the call before them, on the same file."""
        return _changes([pid for _, pid in self.tool_workers])


def _changes(workers: list[int]) -> int:
    return sum(a != b for a, b in itertools.pairwise(workers))


async def history_of(handle: WorkflowHandle[Any, Any], converter: DataConverter) -> AgentHistory:
    """Read an agent's history: activities in the order they were scheduled."""
    found = AgentHistory()
    scheduled: dict[int, tuple[str, Any]] = {}
    ran: list[tuple[int, str, Any, int]] = []
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = e.activity_task_scheduled_event_attributes
            name = attributes.activity_type.name
            kind = {LLM: LLMRequest, TOOL: ToolRequest}.get(name)
            if kind is not None:
                (request,) = converter.payload_converter.from_payloads(
                    list(attributes.input.payloads), [kind]
                )
                scheduled[e.event_id] = (name, request)
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = e.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled:
                name, request = scheduled[started.scheduled_event_id]
                pid = worker_pid(started.identity)
                assert pid is not None, f"not a worker's default identity: {started.identity}"
                ran.append((started.scheduled_event_id, name, request, pid))
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            failure = e.activity_task_failed_event_attributes.failure
            found.failure_types.append(failure.application_failure_info.type or failure.message)
    for _, name, request, pid in sorted(ran, key=lambda r: r[0]):
        if name == LLM:
            found.llm_workers.append(pid)
            found.llm_inputs.append(request)
        else:
            found.tool_workers.append((request.call.name, pid))
    return found


async def transcript_of(handle: WorkflowHandle[AgentWorkflow, AgentResult]) -> list[Message]:
    page = await handle.query(AgentWorkflow.transcript, TranscriptQuery(limit=500))
    assert page.total == len(page.messages)
    return page.messages


def file_tool_results(transcript: list[Message]) -> list[str]:
    """What the file tools answered, in order."""
    return [m.content or "" for m in transcript if m.role is Role.TOOL and m.name in FILE_TOOLS]


def scale_out_env(
    harness: Harness, object_store: ObjectStoreServer, bucket: str, home: Path
) -> dict[str, str]:
    """One worker's environment: the shared object store, local folders of its own."""
    return {
        **worker_env(harness),
        **object_store.worker_env(bucket, workspace="agents", store="transcripts"),
        # What a worker keeps locally lives under its own "home": nothing shared by
        # accident through a folder both processes happen to see.
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "DURAGENT_CACHE_DIR": str(home / ".cache" / "duragent"),
        "DURAGENT_STORE_DIR": str(home / "store"),
        # Two workers on one machine: no /metrics port to fight over.
        "DURAGENT_METRICS_PORT": "0",
    }


async def test_twenty_agents_on_two_workers_share_files_and_transcripts(
    harness: Harness,
    object_store: ObjectStoreServer,
    s3_bucket: ObjectStoreConfig,
    tmp_path: Path,
) -> None:
    homes = [tmp_path / f"worker-{n}" for n in range(WORKERS)]
    logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
    markers = [f"{harness.marker}[agent {i:02}]" for i in range(AGENTS)]
    for i, marker in enumerate(markers):
        harness.llm.add_script(script(marker, i))
    workers: list[asyncio.subprocess.Process] = []

    def logs_say() -> str:
        return "\n".join(log_tail(log) for log in logs)

    try:
        for home, log in zip(homes, logs, strict=True):
            env = scale_out_env(harness, object_store, s3_bucket.bucket, home)
            workers.append(await spawn_worker(env, log))
        pids = {w.pid for w in workers}
        await eventually(
            lambda: _all_poll(harness, pids, workers, logs_say),
            "both workers polling",
            within=POLLING_WITHIN,
            interval=0.2,
        )
        # Both poll before the first agent starts: neither gets the whole load by
        # being up first.
        handles = await asyncio.gather(*(start(harness, marker) for marker in markers))
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), RUN_WITHIN)
        # Queries are answered by a worker replaying the run: before they stop.
        transcripts = [await transcript_of(h) for h in handles]
    finally:
        codes = [await stop_process(w) for w in workers]
    assert codes == [0] * WORKERS, f"workers did not exit cleanly: {codes}\n{logs_say()}"

    histories = [await history_of(h, harness.client.data_converter) for h in handles]
    for i, (handle, result) in enumerate(zip(handles, results, strict=True)):
        agent = f"agent {i} ({handle.id})"
        assert (result.status, result.answer, result.cycles) == (
            AgentStatus.COMPLETED,
            f"done {i}",
            CYCLES,
        ), f"{agent}: {result}"
        assert_files_found(i, transcripts[i], agent)
        assert_by_reference(histories[i], agent)
        # The edit is in the bucket, under the agent's own folder, for any S3 client.
        files = S3Workspace(s3_bucket.child("agents", own_workspace(handle.id)))
        assert await files.read_text(f"notes/agent-{i}.md") == edited(i), agent
        assert_prompts_whole(harness, markers[i], i)

    # Both workers did the work, and agents crossed between them mid-run.
    assert {pid for h in histories for pid in h.workers} == pids
    crossed = [(h.transcript_hand_overs, h.file_hand_overs) for h in histories]
    assert sum(t for t, _ in crossed) > 0 and sum(f for _, f in crossed) > 0, crossed
    # Nothing was kept in either worker's local store.
    assert not any((home / "store").exists() for home in homes)


async def start(harness: Harness, marker: str) -> WorkflowHandle[AgentWorkflow, AgentResult]:
    """Start the agent whose script ``marker`` selects."""
    return await start_agent(
        harness.client,
        AgentInput(task=f"{marker} keep notes", model="scripted"),
        task_queue=harness.task_queue,
    )


def assert_files_found(i: int, transcript: list[Message], agent: str) -> None:
    """Every file tool found agent ``i``'s file, wherever the call before it ran."""
    results = file_tool_results(transcript)
    assert len(results) == len(FILE_TOOLS), f"{agent}: {results}"
    errors = [m for m in results if m.startswith("ERROR")]  # not_found above all
    assert not errors, f"{agent}: tool errors {errors}"
    assert results[1] == note(i).rstrip("\n"), agent
    assert f"notes/agent-{i}.md:2:status: final-{i}" in results[3], f"{agent}: {results[3]!r}"
    assert results[4] == edited(i).rstrip("\n"), agent


def assert_by_reference(history: AgentHistory, agent: str) -> None:
    """The transcript went by reference all along, whichever worker stored it.

    No call failed for want of a stored transcript (the workflow would then have resent
    it whole), and after the first call each input carried the reference and only the
    one new tool result.
    """
    lost = [t for t in history.failure_types if t == LLMErrorType.TRANSCRIPT_NOT_FOUND]
    assert not lost, f"{agent}: {history.failure_types}"
    assert history.failure_types == [], f"{agent}: activities failed {history.failure_types}"
    first, *rest = history.llm_inputs
    assert first.base_ref is None and len(rest) == CYCLES - 1, agent
    sent = [(r.base_ref is not None, len(r.messages)) for r in rest]
    assert sent == [(True, 1)] * len(rest), f"{agent}: an LLM input carried more than was new"
    assert [name for name, _ in history.tool_workers] == FILE_TOOLS, agent


def assert_prompts_whole(harness: Harness, marker: str, i: int) -> None:
    """Each prompt was rebuilt whole from the shared store by the worker that sent it.

    The system prompt, the task, and two messages per cycle before it; the last one
    ends with the edited file as read back.
    """
    requests = [r for r in harness.llm.requests if r.script == marker]
    assert {r.step for r in requests} == set(range(CYCLES)), marker
    assert all(len(r.body["messages"]) == 2 + 2 * (r.step or 0) for r in requests), marker
    last = max(requests, key=lambda r: r.step or 0)
    assert last.body["messages"][-1]["content"] == edited(i).rstrip("\n"), marker


async def _all_poll(
    harness: Harness,
    pids: set[int],
    workers: list[asyncio.subprocess.Process],
    logs_say: Callable[[], str],
) -> bool:
    if any(w.returncode is not None for w in workers):
        codes = [w.returncode for w in workers]
        raise AssertionError(f"a worker exited at start: {codes}\n{logs_say()}")
    return await polling_pids(harness.client, harness.task_queue) >= pids
