"""Checks on a run's history and state that several workflow tests share."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentInput, AgentStatus, AgentView, ReplyInput


async def event_types(handle: WorkflowHandle[Any, Any]) -> list[int]:
    """The type of every event of the run's history, in order."""
    return [e.event_type async for e in handle.fetch_history_events()]


async def assert_no_failed_workflow_task(handle: WorkflowHandle[Any, Any]) -> None:
    """Fail when any workflow task of the run failed (bad input must never cause one)."""
    failed = [
        e
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    causes = [e.workflow_task_failed_event_attributes.failure.message for e in failed]
    assert not failed, f"{len(failed)} workflow task(s) failed: {causes}"


async def accepted_updates(handle: WorkflowHandle[Any, Any]) -> int:
    """Updates that reached history (a validator's rejection never does)."""
    types = await event_types(handle)
    return types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)


async def status_once(
    handle: WorkflowHandle[Any, Any], predicate: Any, what: str = "status"
) -> AgentView | None:
    """The ``status`` view when ``predicate(view)`` holds, else ``None`` (for ``eventually``)."""
    view: AgentView = await handle.query(AgentWorkflow.status)
    return view if predicate(view) else None


async def waiting_user(handle: WorkflowHandle[Any, Any]) -> AgentView | None:
    """The ``status`` view once the agent waits for a reply."""
    return await status_once(handle, lambda v: v.status is AgentStatus.WAITING_USER)


async def dropped(handle: WorkflowHandle[Any, Any], count: int) -> AgentView | None:
    """The ``status`` view once ``count`` signals have been dropped."""
    return await status_once(handle, lambda v: v.dropped_inputs >= count)


async def reply(
    handle: WorkflowHandle[Any, Any], answer: str, question_id: str | None = None
) -> str:
    """Answer the pending question with the ``reply`` update; returns the question id."""
    update: Any = AgentWorkflow.reply  # the SDK's stubs type async updates as coroutines
    answered: str = await handle.execute_update(
        update, ReplyInput(answer=answer, question_id=question_id)
    )
    return answered


async def started_input(client: Client, workflow_id: str) -> AgentInput:
    """The input a workflow (e.g. a child agent) was started with, read from its history."""
    handle = client.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events():
        attrs = event.workflow_execution_started_event_attributes
        [decoded] = await client.data_converter.decode(attrs.input.payloads, [AgentInput])
        assert isinstance(decoded, AgentInput)
        return decoded
    raise AssertionError(f"{workflow_id} has no history")
