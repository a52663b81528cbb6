"""Sub-tasks handed to named sub-agents, as child workflows, from workflow code.

``_create_sub_task`` starts one child agent and returns its answer; ``_batch_sub_tasks``
starts one per task and returns a report of them all. At most
``max_concurrent_sub_tasks`` children run at once. Each child gets its share of what is
left of the parent's budgets as it starts (see :mod:`workflows.budgets`), works in the
parent's workspace, and its usage counts in the parent's when it ends. A sub-agent's
questions come back to the parent (see :mod:`workflows.questions`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import TypedSearchAttributes
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from duragent.activities.errors import ToolError
    from duragent.activities.models import TokenUsage, ToolCall, ToolResult, ToolStatus
    from duragent.activities.tools.control import (
        CREATE_SUB_TASK,
        BatchSubTasksArgs,
        CreateSubTaskArgs,
    )
    from duragent.activities.tools.registry import error_result, parse_arguments
    from duragent.workflows import budgets, policy
    from duragent.workflows import search_attributes as search
    from duragent.workflows.models import AgentInput, AgentResult, AgentStatus, SubTaskReport

if TYPE_CHECKING:
    # Typing only: the events module stays in the sandbox (it registers handlers).
    from duragent.workflows.events import AgentEvents

ChildRun = Callable[[Any, AgentInput], Awaitable[AgentResult]]
"""The child workflow's run method (``AgentWorkflow.run``), handed in by the workflow."""


class SubAgents:
    """Starts the agent's sub-tasks and follows them until they end.

    Args:
        input: The agent's input: its sub-agents, and what children inherit from it.
        budget: The agent's budget, shared out among the children.
        events: The run's event stream.
        child: The workflow to start for each sub-task.
        searchable: Whether children start with the search attributes.
        usage: The agent's usage now (children started later get less of what is left).
        add_usage: Counts a finished child's usage, by model, in the agent's.
        doing: Says what the agent is doing now.
    """

    def __init__(
        self,
        input: AgentInput,
        budget: budgets.Budget,
        events: AgentEvents,
        *,
        child: ChildRun,
        searchable: bool,
        usage: Callable[[], TokenUsage],
        add_usage: Callable[[str, TokenUsage], None],
        doing: Callable[[str], None],
    ) -> None:
        self._input = input
        self._budget = budget
        self._events = events
        self._child = child
        self._searchable = searchable
        self._usage = usage
        self._add_usage = add_usage
        self._doing = doing
        self._slots = asyncio.Semaphore(input.max_concurrent_sub_tasks)
        self._open = 0
        """Sub-tasks not finished yet, started or waiting for a slot."""
        self._running: set[str] = set()
        """Sub-agents running now (their workflow ids)."""

    @property
    def running(self) -> list[str]:
        """The workflow ids of the sub-agents running now, sorted."""
        return sorted(self._running)

    async def run(
        self, calls: list[ToolCall], *, cycle: int, workspace: str | None
    ) -> dict[str, ToolResult]:
        """Run a turn's sub-task calls, concurrently; their results by call id."""
        outcomes = await asyncio.gather(
            *(self._events.tool(c, cycle, self._call(c, workspace)) for c in calls)
        )
        return {r.call_id: r for r in outcomes}

    async def _call(self, call: ToolCall, workspace: str | None) -> ToolResult:
        try:
            agent, tasks, needs = self._parse(call)
        except ToolError as err:
            return error_result(call, err)
        self._doing(f"{len(tasks)} sub-task(s) with {agent}")
        self._open += len(tasks)
        reports = await asyncio.gather(
            *(
                self._sub_task(call, i, agent, task, needs, workspace)
                for i, task in enumerate(tasks)
            )
        )
        failed = sum(1 for r in reports if r.status is not AgentStatus.COMPLETED)
        content = (
            reports[0].answer_or_error()
            if call.name == CREATE_SUB_TASK
            else policy.batch_report(reports)
        )
        status = ToolStatus.ERROR if call.name == CREATE_SUB_TASK and failed else ToolStatus.SUCCESS
        return ToolResult(
            call_id=call.id,
            name=call.name,
            status=status,
            content=content,
            error_code="sub_task_failed" if status is ToolStatus.ERROR else None,
        )

    def _parse(self, call: ToolCall) -> tuple[str, list[str], str | None]:
        """The sub-agent, the tasks and the output requirements a call names.

        Raises:
            ToolError: The arguments do not parse, or name no known sub-agent.
        """
        if call.name == CREATE_SUB_TASK:
            one = parse_arguments(call.name, CreateSubTaskArgs, call.arguments)
            agent, tasks, needs = one.agent, [one.task], one.output_requirements
        else:
            many = parse_arguments(call.name, BatchSubTasksArgs, call.arguments)
            agent, tasks, needs = many.agent, many.tasks, many.output_requirements
        if agent not in self._input.sub_agents:
            known = ", ".join(self._input.sub_agents) or "none"
            raise ToolError(
                f"no sub-agent named {agent!r}; available: {known}", code="unknown_agent"
            )
        return agent, tasks, needs

    async def _sub_task(
        self,
        call: ToolCall,
        index: int,
        agent: str,
        task: str,
        needs: str | None,
        workspace: str | None,
    ) -> SubTaskReport:
        parent_id = workflow.info().workflow_id
        child_id = f"{parent_id}-{call.id}-{index}"
        async with self._slots:
            # The share is taken once a slot is free: children that ended meanwhile
            # have counted their usage, so the share is of what is really left.
            share = budgets.child_share(self._budget, self._usage(), self._open, workflow.now())
            if share is None:
                self._open -= 1
                reason = budgets.spent(self._budget, self._usage(), workflow.now())
                return SubTaskReport(
                    task=task, status=AgentStatus.BUDGET_EXCEEDED, error=f"not started: {reason}"
                )
            input = policy.sub_task_input(
                self._input, parent_id, agent, task, needs, share, workspace=workspace
            )
            self._running.add(child_id)
            try:
                result = await workflow.execute_child_workflow(
                    self._child,
                    input,
                    id=child_id,
                    static_summary=f"{agent}: {task[:150]}",
                    search_attributes=self._search_attributes(input),
                )
            except ChildWorkflowError as err:
                return SubTaskReport(
                    task=task, status=AgentStatus.FAILED, error=str(err.cause or err)
                )
            finally:
                self._running.discard(child_id)
                self._open -= 1
        self._add_usage(input.model, result.usage)
        return SubTaskReport(
            task=task, status=result.status, answer=result.answer, error=result.error
        )

    def _search_attributes(self, input: AgentInput) -> TypedSearchAttributes | None:
        # Only runs started with the attributes set them on children: see the workflow.
        return search.at_start(input.model, input.owner) if self._searchable else None
