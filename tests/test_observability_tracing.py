"""One trace per agent, exported over real OTLP/gRPC, across cycles and a worker restart."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from duragent.worker.client import connect, start_agent
from duragent.worker.devserver import DevServer
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.worker.telemetry import (
    Telemetry,
    TelemetrySettings,
    TracesExporter,
    TracingSettings,
    history_trace,
    render_tree,
)
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import ActivityPolicy, AgentInput, AgentStatus, ReplyInput
from tests.conftest import Harness, eventually
from tests.observability_support import (
    OTLPReceiver,
    ReceivedSpan,
    isolated_global_tracer_provider,
    long_run_input,
    long_run_script,
)
from tests.test_agent import call, finish
from tests.test_long_runs import TOOLS
from tests.test_sub_agents import HELPER, child_script

# Status codes of the OTLP protobuf (opentelemetry.proto.trace.v1.Status.StatusCode).
STATUS_ERROR = 2
SPAN_KIND_CLIENT = 3


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver, isolated_global_tracer_provider():
        yield receiver


@asynccontextmanager
async def traced_harness(
    temporal: DevServer,
    llm: ScriptedLLMServer,
    receiver: OTLPReceiver,
    workspace: Path,
    *,
    capture_content: bool = False,
) -> AsyncIterator[Harness]:
    """A harness whose client (and so its workers) export spans to ``receiver``.

    The provider is built by the function the entry points use, with the endpoint given
    explicitly; leaving the block flushes every span to the receiver.
    """
    settings = TelemetrySettings(
        tracing=TracingSettings(
            exporter=TracesExporter.OTLP,
            endpoint=receiver.endpoint,
            insecure=True,
            service_name="duragent-test",
            capture_content=capture_content,
        )
    )
    with Telemetry(settings, llm_base_url=llm.base_url) as telemetry:
        client = await connect({"TEMPORAL_ADDRESS": temporal.address}, telemetry=telemetry)
        yield Harness(client=client, llm=llm, workspace=workspace)


async def waiting_for_reply(handle: WorkflowHandle[Any, Any]) -> bool:
    view = await handle.query(AgentWorkflow.status)
    return bool(view.status is AgentStatus.WAITING_USER)


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return sorted((s for s in spans if s.parent_id == parent.span_id), key=lambda s: s.start_ns)


def only(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r}: {[s.name for s in spans]}"
    return found[0]


async def test_one_trace_across_cycles_and_a_worker_restart(
    temporal: DevServer, llm: ScriptedLLMServer, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    async with traced_harness(temporal, llm, receiver, tmp_path / "workspace") as h:
        task = h.script(
            [
                {"tool_calls": [call("_write_file", path="a.txt", content="A")]},
                {"tool_calls": [call("_ask_user", question="Go on?")]},
                {"tool_calls": [call("_read_file", path="a.txt")]},
                finish(),
            ]
        )
        input = AgentInput(task=task, model="scripted")
        async with h.worker():  # worker A runs cycles 1 and 2, then the agent waits
            handle = await start_agent(h.client, input, task_queue=h.task_queue)
            await eventually(lambda: waiting_for_reply(handle))
        # Worker A is gone with its cache: worker B replays cycles 1 and 2 from history,
        # then runs cycles 3 and 4.
        async with h.worker():
            _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="yes"))
            result = await handle.result()
    assert result.status is AgentStatus.COMPLETED

    spans = receiver.snapshot()
    assert {s.trace_id for s in spans} == {spans[0].trace_id}, "one trace for the whole agent"
    duplicates = [k for k, n in Counter(s.key() for s in spans).items() if n > 1]
    assert not duplicates, f"spans exported twice after the replay: {duplicates}"

    root = only(spans, f"agent {handle.id}")
    assert root.parent_id == ""
    assert root.kind == SPAN_KIND_CLIENT
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.service == "duragent-test"

    cycles = children(spans, root)
    assert [c.name for c in cycles] == ["cycle 1", "cycle 2", "cycle 3", "cycle 4"]
    assert [c.attributes["duragent.cycle"] for c in cycles] == [1, 2, 3, 4]
    # The cycle open across the restart spans both workers' time, as one span.
    assert cycles[1].start_ns < cycles[2].start_ns and cycles[1].end_ns <= cycles[2].start_ns
    steps = [[s.name for s in children(spans, c)] for c in cycles]
    assert steps == [
        ["chat scripted", "execute_tool _write_file"],
        ["chat scripted"],  # _ask_user is the workflow's own business, not an activity
        ["chat scripted", "execute_tool _read_file"],
        ["chat scripted"],
    ]
    assert len(spans) == 1 + 4 + 6, [s.name for s in spans]


async def test_continue_as_new_and_compaction_stay_in_the_trace(
    temporal: DevServer, llm: ScriptedLLMServer, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    async with traced_harness(temporal, llm, receiver, tmp_path / "workspace") as h:
        task = long_run_script(h)
        async with h.worker(tools=TOOLS):
            handle = await start_agent(h.client, long_run_input(task), task_queue=h.task_queue)
            result = await handle.result()
    assert result.runs >= 2, "the agent continued as new"
    assert result.compactions == 1

    spans = receiver.snapshot()
    assert {s.trace_id for s in spans} == {spans[0].trace_id}
    assert not [k for k, n in Counter(s.key() for s in spans).items() if n > 1]
    root = only(spans, f"agent {handle.id}")
    cycles = children(spans, root)
    # Every run's cycles hang under the agent's root, numbered across the runs.
    assert [c.name for c in cycles] == [f"cycle {n}" for n in range(1, result.cycles + 1)]
    compaction = only(spans, "compaction")
    assert compaction.parent_id == cycles[3].span_id, "the model asked for it in cycle 4"
    assert compaction.attributes["duragent.compaction.forced"] is True
    summary = children(spans, compaction)
    assert [s.name for s in summary] == ["chat scripted"]
    assert summary[0].attributes["duragent.llm.purpose"] == "compaction"


async def test_a_sub_agent_is_a_branch_of_its_parents_trace(
    temporal: DevServer, llm: ScriptedLLMServer, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    async with traced_harness(temporal, llm, receiver, tmp_path / "workspace") as h:
        child = child_script(h, "child", [{"tool_calls": [call("_list_files")]}, finish("hi")])
        task = h.script(
            [
                {"tool_calls": [call("_create_sub_task", agent="helper", task=f"go {child}")]},
                finish(),
            ]
        )
        async with h.worker():
            input = AgentInput(task=task, model="scripted", sub_agents=HELPER)
            handle = await start_agent(h.client, input, task_queue=h.task_queue)
            await handle.result()

    spans = receiver.snapshot()
    assert {s.trace_id for s in spans} == {spans[0].trace_id}
    root = only(spans, f"agent {handle.id}")
    first_cycle = children(spans, root)[0]
    [sub_agent] = [s for s in children(spans, first_cycle) if s.name.startswith("agent ")]
    assert sub_agent.attributes["duragent.parent.id"] == handle.id
    assert [c.name for c in children(spans, sub_agent)] == ["cycle 1", "cycle 2"]
    steps = [s.name for c in children(spans, sub_agent) for s in children(spans, c)]
    assert steps == ["chat child-model", "execute_tool _list_files", "chat child-model"]
    # Without a collector, the history tree shows the same branch.
    child_id = sub_agent.attributes["duragent.agent.id"]
    tree = render_tree(await history_trace(h.client, handle.id)).splitlines()
    [line] = [t for t in tree if t.strip().startswith(f"agent {child_id}")]
    assert line.startswith("    ") and f"sub-agent completed: duragent trace {child_id}" in line


async def test_llm_spans_follow_the_genai_conventions(
    temporal: DevServer, llm: ScriptedLLMServer, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    async with traced_harness(temporal, llm, receiver, tmp_path / "workspace") as h:
        task = h.script(
            [
                {
                    "faults": [{"status": 500}],
                    "tool_calls": [call("_list_files")],
                    "usage": {"prompt_tokens": 120, "completion_tokens": 7},
                },
                finish(),
            ]
        )
        policy = ActivityPolicy(initial_interval_seconds=0.1)
        async with h.worker():
            input = AgentInput(task=task, model="scripted", llm_policy=policy)
            handle = await start_agent(h.client, input, task_queue=h.task_queue)
            await handle.result()
    spans = receiver.snapshot()
    chats = sorted((s for s in spans if s.name == "chat scripted"), key=lambda s: s.start_ns)
    failed, retried, last = chats
    assert failed.status_code == STATUS_ERROR
    assert failed.attributes["error.type"] == "LLMServerError"
    assert "exception" in failed.events
    assert failed.parent_id == retried.parent_id, "both attempts belong to cycle 1"
    assert retried.kind == SPAN_KIND_CLIENT
    assert {
        k: retried.attributes[k]
        for k in (
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.response.model",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            "gen_ai.response.finish_reasons",
            "gen_ai.conversation.id",
            "server.address",
            "duragent.activity.attempt",
        )
    } == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "scripted",
        "gen_ai.response.model": "scripted",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.response.finish_reasons": ["tool_calls"],
        "gen_ai.conversation.id": handle.id,
        "server.address": "127.0.0.1",
        "duragent.activity.attempt": 2,
    }
    assert last.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    tool = only(spans, "execute_tool _list_files")
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "_list_files"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_0_0"
    assert tool.attributes["duragent.tool.status"] == "success"
    # Contents are off by default: prompts, completions and tool I/O stay out of traces.
    content_keys = {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.call.result"}
    assert not any(content_keys & s.attributes.keys() for s in spans)


async def test_contents_are_recorded_when_switched_on(
    temporal: DevServer, llm: ScriptedLLMServer, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    async with traced_harness(
        temporal, llm, receiver, tmp_path / "workspace", capture_content=True
    ) as h:
        task = h.script([{"tool_calls": [call("_read_file", path="nope.txt")]}, finish()])
        async with h.worker():
            input = AgentInput(task=task, model="scripted")
            await (await start_agent(h.client, input, task_queue=h.task_queue)).result()
    spans = receiver.snapshot()
    chat = min((s for s in spans if s.name == "chat scripted"), key=lambda s: s.start_ns)
    prompt = json.loads(chat.attributes["gen_ai.input.messages"])
    assert prompt[0] == {"role": "user", "parts": [{"type": "text", "content": task}]}
    answer = json.loads(chat.attributes["gen_ai.output.messages"])
    assert answer[0]["parts"][0]["name"] == "_read_file"
    tool = only(spans, "execute_tool _read_file")
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"path": "nope.txt"}
    assert tool.status_code == STATUS_ERROR, "a tool error is an error in the trace"
    assert tool.attributes["error.type"] == "not_found"
    assert "nope.txt" in tool.attributes["gen_ai.tool.call.result"]


async def test_an_untraced_starter_still_gets_one_trace(
    temporal: DevServer,
    llm: ScriptedLLMServer,
    receiver: OTLPReceiver,
    client: Client,
    tmp_path: Path,
) -> None:
    """An agent started by a client that does not trace still gets one trace.

    Like one started with the ``temporal`` CLI: the workflow opens the root span itself.
    """
    async with traced_harness(temporal, llm, receiver, tmp_path / "workspace") as h:
        task = h.script([{"tool_calls": [call("_list_files")]}, finish()])
        async with h.worker():
            input = AgentInput(task=task, model="scripted")
            handle = await start_agent(client, input, task_queue=h.task_queue)
            await handle.result()
    spans = receiver.snapshot()
    root = only(spans, f"agent {handle.id}")
    assert root.parent_id == ""
    assert {s.trace_id for s in spans} == {root.trace_id}
    assert [c.name for c in children(spans, root)] == ["cycle 1", "cycle 2"]
