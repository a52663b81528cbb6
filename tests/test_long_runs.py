"""Long runs on a real server: continue-as-new, compaction, history that grows linearly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from duragent.activities.memory import SUMMARY_SYSTEM
from duragent.activities.models import Role
from duragent.activities.tools import ToolContext, default_tools, tool
from duragent.workflows import policy
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    AgentStatus,
    HistoryPolicy,
    MemoryPolicy,
    ReplyInput,
    SteerInput,
    TranscriptQuery,
)
from tests.conftest import Harness, eventually
from tests.test_agent import call, finish, start

LLM = "duragent.llm_chat"


class TickArgs(BaseModel):
    pad: int = 0


@tool(name="_tick")
async def tick(args: TickArgs, ctx: ToolContext) -> str:
    """Count one more cycle; optionally pad the result to make it large."""
    path = "ticks.txt"
    n = int(await ctx.workspace.read_text(path)) + 1 if await ctx.workspace.exists(path) else 1
    await ctx.workspace.write_text(path, str(n))
    return f"tick {n}" + ("\n" + "x" * args.pad if args.pad else "")


TOOLS = [*default_tools(), tick]


def tick_step(pad: int = 0) -> dict[str, Any]:
    return {"tool_calls": [call("_tick", pad=pad)]}


async def test_continues_as_new_twice_and_keeps_answering(harness: Harness) -> None:
    task = harness.script(
        [tick_step()],
        rules=[
            {
                "when_last": r"^tick 100$",
                "step": {"tool_calls": [call("_ask_user", question="Go on?")]},
            },
            {"when_last": r"^tick 200$", "step": finish("ticked 200 times")},
        ],
    )
    history = HistoryPolicy(max_events=700)  # about 70 cycles a run
    async with harness.worker(tools=TOOLS):
        handle = await start(harness, task, max_cycles=300, history=history)
        await eventually(lambda: _waiting(handle), within=120)
        usage = await handle.query(AgentWorkflow.usage)
        page = await handle.query(AgentWorkflow.transcript, TranscriptQuery(offset=0, limit=1))
        _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="go on"))
        result = await handle.result()

    assert usage.runs >= 2, "the question was asked after a continue-as-new"
    assert page.messages[0].content == task  # the task survives the boundary
    assert result.status is AgentStatus.COMPLETED and result.answer == "ticked 200 times"
    assert result.runs >= 3, f"continued as new {result.runs - 1} times"
    assert result.cycles == 202  # 200 ticks, the question, the finish: totals over all runs
    assert (harness.folder(handle.id) / "ticks.txt").read_text() == "200"  # no tick repeated
    first = harness.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
    assert (await first.describe()).status is WorkflowExecutionStatus.CONTINUED_AS_NEW


async def _waiting(handle: WorkflowHandle[Any, Any]) -> bool:
    view = await handle.query(AgentWorkflow.status)
    return view.status is AgentStatus.WAITING_USER


def summary_script(harness: Harness) -> None:
    # Registered first: the summary request also carries the agent's task marker.
    harness.llm.add_script(
        {
            "name": f"summary {harness.marker}",
            "match": SUMMARY_SYSTEM[:60],
            "steps": [{"content": "## Decisions\n- keep ticking\n## Next steps\n- tick"}],
        }
    )


async def test_compaction_stubs_results_then_summarises(harness: Harness) -> None:
    summary_script(harness)
    task = harness.script(
        [tick_step(pad=1_500)], rules=[{"when_last": r"^tick 12\b", "step": finish()}]
    )
    memory = MemoryPolicy(
        context_window_tokens=3_000,
        compact_at=0.8,
        offer_tool_at=0.5,
        keep_recent_turns=2,
        large_result_chars=1_000,
    )
    async with harness.worker(tools=TOOLS):
        handle = await start(harness, task, memory=memory, max_cycles=30)
        await eventually(lambda: _cycle_at_least(handle, 2))
        await handle.signal(AgentWorkflow.say, SteerInput(message="remember: blue"))
        result = await handle.result()
        page = await handle.query(AgentWorkflow.transcript, TranscriptQuery(limit=500))

    assert result.status is AgentStatus.COMPLETED and result.compactions >= 1
    messages = page.messages
    users = [m.content for m in messages if m.role is Role.USER]
    assert users[0] == task  # the first message stays
    assert "remember: blue" in users  # the user's own words, verbatim
    assert any((u or "").startswith(policy.SUMMARY_HEADER) for u in users)
    assert any("keep ticking" in (u or "") for u in users)
    # The summary's input named the stored transcript instead of carrying the messages.
    summarize = [
        json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data)
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "duragent.summarize"
    ]
    assert summarize and all(s["transcript_ref"] and not s["messages"] for s in summarize)
    # Requests that offered _compress_memory came only once the context was near full.
    offered = [
        "_compress_memory" in {t["function"]["name"] for t in r.body.get("tools", [])}
        for r in harness.requests()
    ]
    assert not offered[0] and any(offered)


async def test_a_stubbed_result_reads_back_from_its_artifact(harness: Harness) -> None:
    summary_script(harness)
    task = harness.script(
        [tick_step(pad=1_500)], rules=[{"when_last": r"^tick 8\b", "step": finish()}]
    )
    memory = MemoryPolicy(
        context_window_tokens=100_000, keep_recent_turns=1, large_result_chars=1_000
    )
    async with harness.worker(tools=TOOLS):
        handle = await start(harness, task, memory=memory)
        await eventually(lambda: _cycle_at_least(handle, 3))
        await asyncio.wait_for(handle.signal(AgentWorkflow.say, SteerInput(message="hi")), 10)
        await handle.result()
        page = await handle.query(AgentWorkflow.transcript, TranscriptQuery(limit=500))

    with_artifacts = [m for m in page.messages if m.artifact]
    assert len(with_artifacts) == 8
    full = (harness.folder(handle.id) / with_artifacts[0].artifact).read_text()  # type: ignore[operator]
    assert full == "tick 1\n" + "x" * 1_500
    # The model saw the whole result while it was recent: the stub never reached it.
    first_tool = next(m for m in harness.requests()[1].body["messages"] if m["role"] == "tool")
    assert first_tool["content"] == full


async def _cycle_at_least(handle: WorkflowHandle[Any, Any], n: int) -> bool:
    return (await handle.query(AgentWorkflow.status)).cycle >= n


async def test_context_length_error_leads_to_compaction(harness: Harness) -> None:
    summary_script(harness)
    steps = [
        tick_step(),
        tick_step(),
        tick_step(),
        {**finish("fit"), "faults": [{"context_length_exceeded": True}]},
    ]
    task = harness.script(steps)
    async with harness.worker(tools=TOOLS):
        handle = await start(harness, task, memory=MemoryPolicy(keep_recent_turns=1))
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED and result.answer == "fit"
    assert result.compactions == 1
    scheduled = await activity_types(handle)
    assert "duragent.summarize" in scheduled


async def activity_types(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def bytes_per_cycle(handle: WorkflowHandle[Any, Any]) -> list[int]:
    """History bytes of each cycle: from one LLM activity to the next."""
    cycles: list[int] = []
    async for event in handle.fetch_history_events():
        starts_cycle = (
            event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and event.activity_task_scheduled_event_attributes.activity_type.name == LLM
        )
        if starts_cycle:
            cycles.append(0)
        if cycles:
            cycles[-1] += event.ByteSize()
    return cycles


async def test_history_grows_linearly_unlike_the_naive_design(harness: Harness) -> None:
    n = 200
    task = harness.script([tick_step(pad=100)])
    history = HistoryPolicy(max_events=50_000)
    naive = HistoryPolicy(max_events=50_000, ship_full_transcript=True)
    async with harness.worker(tools=TOOLS):
        ours = await start(harness, task, max_cycles=n, history=history)
        theirs = await start(harness, task, max_cycles=n, history=naive)
        await asyncio.gather(ours.result(), theirs.result())

    def growth(per_cycle: list[int]) -> float:
        assert len(per_cycle) >= 100, f"only {len(per_cycle)} cycles in the first run"
        first, last = per_cycle[:50], per_cycle[-50:]
        return (sum(last) / len(last)) / (sum(first) / len(first))

    # Within each agent's first run: the naive one may have continued as new already
    # (Temporal suggests it once history passes a few MB), which is the point.
    first = harness.client.get_workflow_handle
    ours_growth = growth(await bytes_per_cycle(first(ours.id, run_id=ours.result_run_id)))
    theirs_first = first(theirs.id, run_id=theirs.result_run_id)
    theirs_growth = growth(await bytes_per_cycle(theirs_first))
    assert ours_growth < 1.5, f"history per cycle grew {ours_growth:.2f}x"
    assert theirs_growth > 3 * ours_growth, (ours_growth, theirs_growth)


async def test_a_long_transcript_is_compacted_before_it_is_carried(harness: Harness) -> None:
    summary_script(harness)
    task = harness.script(
        [{"content": "y" * 2_000, **tick_step()}],
        rules=[{"when_last": r"^tick 14$", "step": finish()}],
    )
    history = HistoryPolicy(max_events=100, max_carry_chars=10_000)
    async with harness.worker(tools=TOOLS):
        handle = await start(harness, task, history=history)
        result = await handle.result()

    assert result.runs >= 2 and result.compactions >= 1
    first = harness.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
    ran = await activity_types(first)
    assert ran[-1] == "duragent.summarize", "the first run compacted just before it ended"
