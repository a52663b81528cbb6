"""Live events on the real dev server: order, offsets, continue-as-new, a killed worker.

Every test reads the stream the way ``watch`` and ``serve`` do, through
:func:`duragent.worker.events.subscribe`, while the run goes on.
"""

from __future__ import annotations

import asyncio
import base64
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.workflow_streams import PollInput, PublishEntry, PublishInput

from duragent.activities.events import EVENT_ADAPTER, EVENT_TYPES, TOPIC, TokenEvent
from duragent.worker.events import subscribe
from duragent.worker.telemetry import history_trace, render_tree
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.events import POLL, PUBLISH_SIGNAL
from duragent.workflows.models import (
    AgentResult,
    AgentStatus,
    ApprovalAction,
    ApprovalDecision,
    ApprovalPolicy,
    HistoryPolicy,
    LLMPolicy,
    MemoryPolicy,
    ReplyInput,
    SubAgentSpec,
)
from tests.conftest import Harness, eventually
from tests.processes import spawn_worker, stop_process, worker_env
from tests.replay import replay
from tests.test_agent import call, finish, start
from tests.test_graph import decide, loop_graph, start_graph
from tests.test_long_runs import summary_script

Event = dict[str, JsonValue]
SPOKEN = "Writing the file now, then I will ask you one thing."
COLOURS = ["blue", "green"]


async def follow(handle: WorkflowHandle[Any, Any], **answers: Any) -> list[Event]:
    """Every event of a run until ``finished``, answering its question and approvals."""
    events: list[Event] = []
    async for event in subscribe(handle._client, handle.id):
        events.append(event)
        if event.get("state") != "pending":
            continue
        if event["type"] == "question":
            _ = await handle.execute_update(
                AgentWorkflow.reply, ReplyInput(answer=answers["reply"])
            )
        elif event["type"] == "approval":
            call_id = str(event["call_id"])
            decision = ApprovalDecision(call_id=call_id, action=ApprovalAction.APPROVE)
            _ = await handle.execute_update(AgentWorkflow.decide, decision)
    return events


def types(events: list[Event]) -> list[str]:
    """The event types in order, a run of tokens shown once."""
    out: list[str] = []
    for e in events:
        if not (e["type"] == "token" and out and out[-1] == "token"):
            out.append(str(e["type"]))
    return out


def timeless(events: list[Event]) -> list[Event]:
    """Events without their ``at``: a replayed run may stamp an event a task later."""
    return [{k: v for k, v in e.items() if k != "at"} for e in events]


def streamed_text(events: list[Event], cycle: int) -> str:
    """A cycle's text as a client shows it: the batches of the newest attempt only."""
    tokens = [e for e in events if e["type"] == "token" and e["cycle"] == cycle]
    newest = max((int(str(t["attempt"])) for t in tokens), default=0)
    return "".join(str(t["text"]) for t in tokens if t["attempt"] == newest)


async def test_a_runs_events_come_in_order_with_offsets_and_ids(harness: Harness) -> None:
    task = harness.script(
        [
            {"content": SPOKEN, "tool_calls": [call("_list_files")]},
            {
                "tool_calls": [
                    call("_ask_user", question="Blue or green?", options=["blue", "green"])
                ]
            },
            {"tool_calls": [call("_write_file", path="a.txt", content="A")]},
            finish("all done"),
        ]
    )
    approval = ApprovalPolicy(tools={"_write_file": "always"})
    async with harness.worker():
        handle = await start(harness, task, approval=approval)
        events = await asyncio.wait_for(follow(handle, reply="blue"), 60)
        result = await handle.result()
    replayed = await replay(await handle.fetch_history())  # token signals and all
    assert replayed.replay_failure is None, replayed.replay_failure
    tree = render_tree(await history_trace(harness.client, handle.id))
    assert "streamed text" in tree and "token batch" in tree  # one line a cycle
    assert PUBLISH_SIGNAL not in tree

    assert result.status is AgentStatus.COMPLETED
    assert [e["offset"] for e in events] == list(range(len(events)))
    assert all(e["agent_id"] == handle.id and e["type"] in EVENT_TYPES for e in events)
    for e in events:  # every event reads back as its typed model
        assert EVENT_ADAPTER.validate_python(e).type == e["type"]
    assert types(events) == [
        "status", "message",  # running; the task
        "token", "message", "tool_started", "tool_finished", "message",  # cycle 1
        "message", "status", "question", "question", "status", "message",  # cycle 2: asked
        "message", "status", "approval", "approval", "status",  # cycle 3: approval
        "tool_started", "tool_finished", "message",
        "message", "message", "status", "finished",  # cycle 4: finish
    ]  # fmt: skip
    assert streamed_text(events, 1) == SPOKEN
    question = next(e for e in events if e["type"] == "question")
    assert question["options"] == ["blue", "green"] and question["state"] == "pending"
    answered = [e for e in events if e["type"] == "question"][1]
    assert answered["state"] == "resolved" and answered["answer"] == "blue"
    decided = [e for e in events if e["type"] == "approval"][1]
    assert decided["decision"] == "approve" and decided["tool"] == "_write_file"
    finished = [e for e in events if e["type"] == "tool_finished"]
    assert [(e["name"], e["status"]) for e in finished] == [
        ("_list_files", "success"),
        ("_write_file", "success"),
    ]
    assert events[-1] == {**events[-1], "status": "completed", "result": "all done"}
    messages = [e["index"] for e in events if e["type"] == "message"]
    assert messages == list(range(result.transcript_length))


async def test_a_subscriber_resumes_from_an_offset(harness: Harness) -> None:
    task = harness.script([{"content": SPOKEN, "tool_calls": [call("_list_files")]}, finish()])
    async with harness.worker():
        handle = await start(harness, task)
        everything = [e async for e in subscribe(harness.client, handle.id)]
        await handle.result()
        middle = len(everything) // 2
        resumed = [e async for e in subscribe(harness.client, handle.id, from_offset=middle)]
        now = [e async for e in subscribe(harness.client, handle.id, follow=False)]
        past = [e async for e in subscribe(harness.client, handle.id, from_offset=10_000)]

    assert everything[-1]["type"] == "finished"
    assert timeless(resumed) == timeless(everything[middle:])
    assert timeless(now) == timeless(everything)
    assert past == []


async def test_the_stream_goes_on_across_continue_as_new(harness: Harness) -> None:
    steps = [{"content": f"step {i}", "tool_calls": [call("_list_files")]} for i in range(8)]
    task = harness.script([*steps, finish("long done")])
    async with harness.worker():
        handle = await start(harness, task, history=HistoryPolicy(max_events=100))
        events = await asyncio.wait_for(follow(handle), 60)
        result = await handle.result()
        after = [e async for e in subscribe(harness.client, handle.id, follow=False)]

    assert result.runs >= 2, "the run must continue as new"
    assert [e["offset"] for e in events] == list(range(len(events)))
    assert Counter(e["type"] for e in events)["continued_as_new"] == result.runs - 1
    assert events[-1]["type"] == "finished" and events[-1]["result"] == "long done"
    assert [streamed_text(events, c) for c in range(1, 9)] == [f"step {i}" for i in range(8)]
    # The last run keeps the newest events (the carry is bounded), with the same offsets.
    assert timeless(after) == timeless(events[int(str(after[0]["offset"])) :])


async def test_a_worker_killed_mid_llm_call_streams_the_retry_not_a_duplicate(
    harness: Harness, tmp_path: Path
) -> None:
    text = "".join(f"<{i:02d} durable tokens>" for i in range(20))  # 20 chunks of 16 chars
    slow = {"content": text, "chunk_seconds": 0.15, "tool_calls": [call("_list_files")]}
    task = harness.script([slow, finish("survived")])
    env = worker_env(harness)
    # A short heartbeat timeout: the killed attempt is retried in about a second.
    policy = LLMPolicy(heartbeat_seconds=1.0, initial_interval_seconds=0.1)
    first = await spawn_worker(env, tmp_path / "worker-1.log")
    second = None
    try:
        handle = await start(harness, task, llm_policy=policy)
        events: list[Event] = []
        async for event in subscribe(harness.client, handle.id):
            events.append(event)
            if event["type"] == "token" and first.returncode is None:
                first.send_signal(signal.SIGKILL)  # mid-stream: text of attempt 1 is out
                await first.wait()
                second = await spawn_worker(env, tmp_path / "worker-2.log")
        result: AgentResult = await handle.result()
    finally:
        await stop_process(first)
        if second is not None:
            await stop_process(second)

    assert result.status is AgentStatus.COMPLETED and result.answer == "survived"
    tokens = [e for e in events if e["type"] == "token" and e["cycle"] == 1]
    attempts = [int(str(t["attempt"])) for t in tokens]
    assert attempts[0] == 1 and attempts[-1] == 2 and attempts == sorted(attempts)
    first_text = "".join(str(t["text"]) for t in tokens if t["attempt"] == 1)
    assert text.startswith(first_text) and first_text != text  # cut off by the kill
    assert streamed_text(events, 1) == text  # the retry's text replaces it, whole
    assert len({t["call"] for t in tokens}) == 1  # one LLM call, two attempts
    done = Counter(e["call_id"] for e in events if e["type"] == "tool_finished")
    assert done == {"call_0_0": 1}
    assert [e["offset"] for e in events] == list(range(len(events)))


async def test_malformed_stream_input_is_dropped_or_rejected_never_fails_the_run(
    harness: Harness,
) -> None:
    task = harness.script([{"tool_calls": [call("_ask_user", question="Ready?")]}, finish()])
    fake_finish = base64.b64encode(b"not a payload").decode()
    forged = TokenEvent(agent_id="someone-else", cycle=99, text="forged")
    async with harness.worker():
        handle = await start(harness, task)
        await eventually(lambda: _status_is(handle, AgentStatus.WAITING_USER), within=30)
        for args in (
            [],
            ["not a batch"],
            [PublishInput(items=[PublishEntry(topic=TOPIC, data=fake_finish)])],
            [PublishInput(items=[PublishEntry(topic="other", data="")])],
            [PublishInput(items=[PublishEntry(topic=TOPIC, data=_encoded(harness, forged))])],
        ):
            await handle.signal(PUBLISH_SIGNAL, args=args)
        for poll in ([], [{"from_offset": -1}], [PollInput(topics=["x" * 500])]):
            with pytest.raises(WorkflowUpdateFailedError) as rejected:
                await handle.execute_update(POLL, args=poll)
            assert "invalid stream poll" in str(rejected.value.cause)
        await eventually(lambda: _dropped(handle, 4), "four dropped publishes", within=30)
        _ = await handle.execute_update(AgentWorkflow.reply, ReplyInput(answer="yes"))
        result = await handle.result()
        events = [e async for e in subscribe(harness.client, handle.id)]

    assert result.status is AgentStatus.COMPLETED
    assert not [e for e in events if e["type"] == "token"]  # the forged batch is not there
    assert [e["type"] for e in events].count("finished") == 1


async def test_a_graphs_events_name_its_nodes_gate_and_children(harness: Harness) -> None:
    task = harness.script([finish("a draft")])
    spec = loop_graph(task.removesuffix(" do the task"))
    async with harness.worker():
        handle = await start_graph(harness, spec, {"topic": "streams"})
        events: list[Event] = []
        async for event in subscribe(harness.client, handle.id):
            events.append(event)
            if event["type"] == "question" and event["state"] == "pending":
                await decide(handle, str(event["id"]), {"decision": "approve"})
        result = await handle.result()
        child = next(_strings(e["children"]) for e in events if e.get("children"))
        # The child agent has its own stream, with its own id.
        child_events = [e async for e in subscribe(harness.client, child[0], follow=False)]

    assert all(e["graph_id"] == handle.id and e.get("agent_id") is None for e in events)
    nodes = [(e["node"], e["status"]) for e in events if e["type"] == "node"]
    assert nodes == [
        ("write", "running"),
        ("write", "running"),  # its child agent started
        ("write", "done"),
        ("review", "running"),
        ("review", "waiting"),
        ("review", "done"),
    ]
    assert child == [f"{handle.id}/write@1"]
    gate = next(e for e in events if e["type"] == "question")
    assert (gate["kind"], gate["id"], gate["question"]) == ("gate", "review@1", _PROMPT)
    assert gate["answer_schema"] == spec.nodes["review"].gate.answer  # type: ignore[union-attr]
    assert events[-1]["type"] == "finished" and events[-1]["result"] == result.output
    assert child_events[-1]["type"] == "finished" and child_events[-1]["agent_id"] == child[0]


async def test_a_sub_agents_question_and_a_compaction_are_events_of_the_parent(
    harness: Harness,
) -> None:
    summary_script(harness)
    child = f"{harness.marker}-child"
    harness.llm.add_script(
        {
            "name": child,
            "match": child,
            "steps": [{"tool_calls": [call("_ask_user", question="Which colour?")]}, finish("red")],
        }
    )
    steps = [
        {"tool_calls": [call("_create_sub_task", agent="helper", task=f"pick {child}")]},
        *[{"tool_calls": [call("_list_files")]} for _ in range(3)],
        {"tool_calls": [call("_compress_memory", reason="tidy up")]},
    ]
    # After compaction the step count restarts: the tool's answer ends the run instead.
    task = harness.script(steps, rules=[{"when_last": "^memory compressed", "step": finish()}])
    helper = {"helper": SubAgentSpec(description="picks")}
    memory = MemoryPolicy(keep_recent_turns=1)
    async with harness.worker():
        handle = await start(harness, task, sub_agents=helper, memory=memory)
        events: list[Event] = []
        async for event in subscribe(harness.client, handle.id):
            events.append(event)
            if event["type"] == "question" and event["state"] == "pending":
                reply = ReplyInput(answer="red", question_id=str(event["id"]))
                _ = await handle.execute_update(AgentWorkflow.reply, reply)
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED and result.compactions == 1
    asked, answered = [e for e in events if e["type"] == "question"]
    child_id = f"{handle.id}-call_0_0-0"
    assert asked["asked_by"] == child_id and asked["id"] == f"{child_id}:call_0_0"
    assert (answered["state"], answered["id"]) == ("resolved", asked["id"])
    started = [e["name"] for e in events if e["type"] == "tool_started"]
    assert started[0] == "_create_sub_task"
    [compaction] = [e for e in events if e["type"] == "compaction"]
    assert compaction["replaced"] > 0 and compaction["transcript_length"] > 0  # type: ignore[operator]
    # The messages after it are numbered in the compacted transcript.
    after = [e["index"] for e in events[events.index(compaction) :] if e["type"] == "message"]
    assert after[0] == compaction["transcript_length"]


_PROMPT = "Approve the draft of streams?"


async def _status_is(handle: WorkflowHandle[Any, Any], status: AgentStatus) -> bool:
    return bool((await handle.query(AgentWorkflow.status)).status is status)


async def _dropped(handle: WorkflowHandle[Any, Any], count: int) -> bool:
    return bool((await handle.query(AgentWorkflow.status)).dropped_inputs == count)


def _strings(value: JsonValue) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _encoded(h: Harness, event: TokenEvent) -> str:
    payload = h.client.data_converter.payload_converter.to_payloads([event])[0]
    return base64.b64encode(payload.SerializeToString()).decode()


def test_every_event_type_has_a_model() -> None:
    for name in EVENT_TYPES:
        assert EVENT_ADAPTER.validate_python({"type": name}).type == name
    with pytest.raises(ValueError):
        EVENT_ADAPTER.validate_python({"type": "nope"})
