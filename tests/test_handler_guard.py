"""Malformed signal and update input from any Temporal client (issue 9, item 9).

The agent is reached with the raw client, by handler name, as ``temporal workflow
signal|update`` does: wrong argument counts, wrong types, payloads that do not decode.
Signals are dropped (the guard's drops counted in ``status``; the SDK drops undecodable
ones itself, with a log), updates are rejected before history, and the agent goes on:
no workflow task fails.
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue

from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentResult, AgentStatus, TranscriptQuery
from tests.conftest import Harness, eventually
from tests.test_agent import finish, start, tool_messages
from tests.test_operating import ask
from tests.workflow_checks import (
    accepted_updates,
    assert_no_failed_workflow_task,
    dropped,
    reply,
    waiting_user,
)

NOT_JSON = RawValue(Payload(metadata={"encoding": b"json/plain"}, data=b"{not json"))
NO_ARGS: list[Any] = []


async def waiting_agent(harness: Harness) -> WorkflowHandle[Any, Any]:
    """A started agent waiting in ``_ask_user``, as an untyped handle (the raw client)."""
    task = harness.script([ask(), finish("answered")])
    typed = await start(harness, task)
    await eventually(lambda: waiting_user(typed))
    return harness.client.get_workflow_handle(typed.id, result_type=AgentResult)


async def test_malformed_say_and_reply_signals_are_dropped(harness: Harness) -> None:
    async with harness.worker():
        handle = await waiting_agent(harness)
        await handle.signal("say")  # no argument: the guard drops it
        await handle.signal("say", args=["a", "b"])  # two: the guard drops it
        await handle.signal("say", "just a string")  # does not decode: the SDK drops it
        await handle.signal("reply_signal", {"answer": 5})  # does not decode either
        # Signals are handled in order: once this third guard drop is counted, the
        # undecodable ones before it were handled too.
        await handle.signal("reply_signal", args=[{"answer": "x"}, "extra"])
        view = await eventually(lambda: dropped(handle, 3))
        assert view.status is AgentStatus.WAITING_USER
        await reply(handle, "valid")
        result = await handle.result()
        page = await handle.query(AgentWorkflow.transcript, TranscriptQuery())

    assert view.dropped_inputs == 3
    assert view.last_dropped == "reply_signal: expected 1 argument(s), got 2"
    assert result.status is AgentStatus.COMPLETED and result.answer == "answered"
    assert not any(m.content in ("just a string", "a") for m in page.messages)
    assert tool_messages(harness.requests()[-1].body) == ["valid"]
    await assert_no_failed_workflow_task(handle)


async def test_malformed_updates_are_rejected_before_history(harness: Harness) -> None:
    async with harness.worker():
        handle = await waiting_agent(harness)
        with pytest.raises(WorkflowUpdateFailedError) as two:
            await handle.execute_update("reply", args=[{"answer": "a"}, {"answer": "b"}])
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("reply", {"answer": 5})
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("reply", "blue")
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("decide", {})
        assert await accepted_updates(handle) == 0
        await reply(handle, "valid")
        result = await handle.result()

    assert "invalid reply input: expected 1 argument(s), got 2" in str(two.value.cause)
    assert result.status is AgentStatus.COMPLETED
    assert await accepted_updates(handle) == 1
    await assert_no_failed_workflow_task(handle)


# Malformed payloads for every signal and update of AgentWorkflow: wrong counts, wrong
# JSON types, missing and mistyped fields, values a model refuses, bytes that are not JSON.
COMMON: list[list[Any]] = [NO_ARGS, ["x", "y"], [None], ["text"], [5], [[1, 2]], [NOT_JSON]]
SIGNALS: dict[str, list[list[Any]]] = {
    "say": [*COMMON, [{}], [{"message": ""}], [{"message": 5}], [{"msg": "hi"}]],
    "reply_signal": [
        *COMMON,
        [{}],
        [{"answer": 5}],
        [{"answer": ""}],
        [{"answer": []}],
        [{"answer": "x", "question_id": "not-the-pending-one"}],
        [{"answer": "x"}, {"answer": "y"}],
    ],
    "sub_agent_question": [
        *COMMON,
        [{}],
        [{"agent_id": 5, "question": None}],
        [{"agent_id": "a", "question": {"id": 1}}],
        [{"agent_id": "a", "question": "what?"}],
    ],
}
UPDATES: dict[str, list[list[Any]]] = {
    "reply": [
        *COMMON,
        [{}],
        [{"answer": 5}],
        [{"answer": "   "}],
        [{"answer": ["a", "b"]}],  # two answers to a single-choice question
        [{"answer": "x", "question_id": "not-the-pending-one"}],
        [{"answer": "x"}, "extra"],
    ],
    "decide": [
        *COMMON,
        [{}],
        [{"call_id": "c"}],
        [{"call_id": "c", "action": "explode"}],
        [{"call_id": 5, "action": "approve"}],
        [{"call_id": "no-such-call", "action": "approve"}],
        [{"call_id": "c", "action": "edit", "arguments": "{}"}],
    ],
    "retry": [*COMMON, [{"reason": 5}], [{"reason": "r" * 2_000}], [{}]],
}


async def test_fuzz_every_handler_of_a_waiting_agent(harness: Harness) -> None:
    rejected: list[str] = []
    async with harness.worker():
        handle = await waiting_agent(harness)
        for name, cases in SIGNALS.items():
            for args in cases:
                await handle.signal(name, args=args)
        for name, cases in UPDATES.items():
            for args in cases:
                with pytest.raises(WorkflowUpdateFailedError):
                    await handle.execute_update(name, args=args)
                rejected.append(name)
        view = await handle.query(AgentWorkflow.status)
        assert view.status is AgentStatus.WAITING_USER, view
        assert view.pending_question is not None
        assert await accepted_updates(handle) == 0
        question_id = await reply(handle, "valid", view.pending_question.id)
        result = await handle.result()

    assert question_id == view.pending_question.id
    assert len(rejected) == sum(len(c) for c in UPDATES.values())
    assert result.status is AgentStatus.COMPLETED and result.answer == "answered"
    assert tool_messages(harness.requests()[-1].body) == ["valid"]
    # Every signal was handled (the updates after them saw the state they left): the
    # guard's and the handlers' own drops are counted; undecodable ones the SDK logs.
    assert view.dropped_inputs > 0
    await assert_no_failed_workflow_task(handle)
