"""The agent loop on a real Temporal dev server with the scripted LLM over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError

from duragent.worker.client import start_agent
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    ActivityPolicy,
    AgentInput,
    AgentResult,
    AgentStatus,
    ReplyInput,
)
from tests.conftest import Harness, eventually

LLM = "duragent.llm_chat"


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def finish(message: str = "done", **extra: Any) -> dict[str, Any]:
    return {"tool_calls": [call("_task_finish", message=message, **extra)]}


async def start(h: Harness, task: str, **overrides: Any) -> WorkflowHandle[Any, AgentResult]:
    input = AgentInput(task=task, model="scripted", **overrides)
    return await start_agent(h.client, input, task_queue=h.task_queue)


async def llm_attempts(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    """(scheduled event, started event, started attributes) of each LLM activity."""
    scheduled: dict[int, Any] = {}
    started = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == LLM:
                scheduled[event.event_id] = event
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            if attrs.scheduled_event_id in scheduled:
                started.append((scheduled[attrs.scheduled_event_id], event, attrs))
    return started


def tool_messages(request_body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request_body["messages"] if m["role"] == "tool"]


async def test_tools_over_several_cycles_then_finish(harness: Harness) -> None:
    task = harness.script(
        [
            {"tool_calls": [call("_write_file", path="out/hello.txt", content="hello, durable")]},
            {"tool_calls": [call("_read_file", path="out/hello.txt"), call("_list_files")]},
            finish("wrote out/hello.txt", files=["out/hello.txt"]),
        ]
    )
    async with harness.worker():
        handle = await start(harness, task)
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    assert result.answer == "wrote out/hello.txt"
    assert result.files == ["out/hello.txt"]
    assert result.cycles == 3
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert (harness.folder(handle.id) / "out/hello.txt").read_text() == "hello, durable"
    # The model saw the tool results of the second cycle, in call order.
    last = harness.requests()[-1].body
    assert tool_messages(last)[1:] == ["hello, durable", "out/"]


async def test_malformed_and_invalid_arguments_go_back_to_the_model(harness: Harness) -> None:
    task = harness.script(
        [
            {"tool_calls": [{"name": "_write_file", "arguments": '{"path": "x.txt", '}]},
            {"tool_calls": [call("_write_file", path="x.txt")]},
            {"tool_calls": [call("_no_such_tool")]},
            finish(),
        ]
    )
    async with harness.worker():
        handle = await start(harness, task)
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    seen = tool_messages(harness.requests()[-1].body)
    assert seen[0].startswith(
        "ERROR (invalid_arguments): arguments for _write_file are not valid JSON"
    )
    assert (
        seen[1]
        == "ERROR (invalid_arguments): invalid arguments for _write_file: content: Field required"
    )
    assert seen[2].startswith("ERROR (unknown_tool): unknown tool '_no_such_tool'")
    assert not (harness.folder(handle.id) / "x.txt").exists()


async def test_no_tool_call_adds_a_continue_hint(harness: Harness) -> None:
    task = harness.script([{"content": "I think I am done."}, finish("really done")])
    async with harness.worker():
        result = await (await start(harness, task)).result()

    assert result.answer == "really done"
    messages = harness.requests()[-1].body["messages"]
    assert messages[-1]["role"] == "user"
    assert "did not call any tool" in messages[-1]["content"]


async def test_max_cycles_ends_the_run(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [call("_list_files")]}])  # repeats forever
    async with harness.worker():
        result = await (await start(harness, task, max_cycles=3)).result()

    assert result.status is AgentStatus.MAX_CYCLES
    assert result.cycles == 3
    assert len(harness.requests()) == 3


async def test_llm_500_is_retried_and_shows_in_history(harness: Harness) -> None:
    task = harness.script([{**finish(), "faults": [{"status": 500}]}])
    policy = ActivityPolicy(initial_interval_seconds=0.1)
    async with harness.worker():
        handle = await start(harness, task, llm_policy=policy)
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    [(_, _, started)] = await llm_attempts(handle)
    assert started.attempt == 2
    assert "LLM server error (500)" in started.last_failure.message


async def test_llm_429_retry_after_is_honoured(harness: Harness) -> None:
    task = harness.script([{**finish(), "faults": [{"status": 429, "retry_after": 2}]}])
    # Backoff alone would retry after 0.1 s: only Retry-After explains a longer pause.
    policy = ActivityPolicy(initial_interval_seconds=0.1, maximum_interval_seconds=0.1)
    async with harness.worker():
        handle = await start(harness, task, llm_policy=policy)
        assert (await handle.result()).status is AgentStatus.COMPLETED

    first, second = harness.requests()
    assert (first.status, second.status) == (429, 200)
    [(scheduled, begun, started)] = await llm_attempts(handle)
    assert started.attempt == 2
    assert "rate limited (429)" in started.last_failure.message
    gap = begun.event_time.ToDatetime() - scheduled.event_time.ToDatetime()
    assert gap.total_seconds() >= 1.9, f"retried after {gap}, Retry-After said 2s"


async def test_llm_401_fails_fast_with_a_clear_error(harness: Harness) -> None:
    from duragent.worker.scripted_llm import ScriptedLLMServer
    from duragent.worker.settings import LLMSettings

    task = harness.script([finish()])
    with ScriptedLLMServer(api_key="the-right-key") as guarded:
        guarded.add_script({"name": "any", "match": "*", "steps": [finish()]})
        async with harness.worker(LLMSettings(base_url=guarded.base_url, api_key="wrong")):
            handle = await start(harness, task)
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
            view = await handle.query(AgentWorkflow.status)  # queries need a worker

    message = str(failure.value.cause)
    assert "LLM authentication failed (401)" in message
    assert "OPENAI_API_KEY" in message
    [(_, _, started)] = await llm_attempts(handle)
    assert started.attempt == 1  # non-retryable: no second attempt
    assert view.status is AgentStatus.FAILED


async def test_ask_user_waits_for_a_reply_then_completes(harness: Harness) -> None:
    task = harness.script(
        [
            {"tool_calls": [call("_ask_user", question="Which colour?", options=["red", "blue"])]},
            finish("blue it is"),
        ]
    )
    async with harness.worker():
        handle = await start(harness, task)
        # Before the question exists, a reply is rejected by the validator.
        early = ReplyInput(answer="too early")
        await rejected(handle, early, "no question is pending")
        view = await eventually(lambda: _waiting(handle))
        assert view.pending_question.question == "Which colour?"
        await rejected(handle, ReplyInput(answer="red", question_id="old"), "stale reply")
        question_id = await handle.execute_update(
            AgentWorkflow.reply,
            ReplyInput(answer="blue", question_id=view.pending_question.id),
        )
        result = await handle.result()

    assert question_id == view.pending_question.id
    assert result.status is AgentStatus.COMPLETED
    assert tool_messages(harness.requests()[-1].body) == ["blue"]
    # Rejected replies never reached history: only the accepted one is there.
    accepted = [
        e
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert len(accepted) == 1


async def rejected(
    handle: WorkflowHandle[AgentWorkflow, AgentResult], reply: ReplyInput, why: str
) -> None:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        _ = await handle.execute_update(AgentWorkflow.reply, reply)
    assert why in str(err.value.cause)


async def _waiting(handle: WorkflowHandle[Any, Any]) -> Any:
    view = await handle.query(AgentWorkflow.status)
    return view if view.status is AgentStatus.WAITING_USER else None
