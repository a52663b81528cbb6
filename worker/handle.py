"""A typed handle of one agent: await its result, query it, answer it, stop it.

:class:`AgentHandle` wraps Temporal's workflow handle with the agent's own verbs, so an
application needs neither the workflow's query and update names nor its models. The
handle is cheap (an id and a client) and can be rebuilt from an id at any time
(:func:`get_agent`), in another process, days later.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Generic, cast

from pydantic import JsonValue
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from typing_extensions import TypeVar

from duragent.activities.tools.control import TodoItem
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    AgentResult,
    AgentStatus,
    AgentView,
    ApprovalAction,
    ApprovalDecision,
    PendingView,
    ReplyInput,
    SteerInput,
    TranscriptPage,
    TranscriptQuery,
    UsageView,
)

OutputT = TypeVar("OutputT", default=str)


class AgentFailed(Exception):
    """The run ended without completing: failed, cancelled, out of cycles or budget.

    Attributes:
        status: How it ended (``failed``, ``cancelled``, ``max_cycles``, ...).
        result: What it returned, when it returned at all (``None`` when Temporal
            closed it: failed, cancelled, terminated, timed out).
    """

    def __init__(self, agent_id: str, status: str, reason: str, result: AgentResult | None):
        super().__init__(f"agent {agent_id} ended {status}: {reason}")
        self.agent_id = agent_id
        self.status = status
        self.result = result


class AgentHandle(Generic[OutputT]):
    """One agent run (all its continue-as-new runs), by id.

    Args:
        client: A client with duragent's plugin (``duragent.connect``).
        agent_id: The agent's id (its workflow id).
        output: Turns the run's output into the agent's output type; ``None`` makes
            :meth:`result` return the final answer's text.
    """

    def __init__(
        self,
        client: Client,
        agent_id: str,
        *,
        output: Callable[[JsonValue], OutputT] | None = None,
    ) -> None:
        self._client = client
        self._output = output
        self.id = agent_id
        """The agent's id: ``duragent status ID`` and every other command take it."""

    @property
    def workflow(self) -> WorkflowHandle[AgentWorkflow, AgentResult]:
        """Temporal's handle, for what the agent's own verbs do not cover."""
        return self._client.get_workflow_handle_for(AgentWorkflow.run, self.id)

    def __await__(self) -> Generator[Any, None, OutputT]:
        return self.result().__await__()

    async def result(self) -> OutputT:
        """Wait for the run to end; its typed output (or its answer's text).

        Raises:
            AgentFailed: It ended another way than ``completed``.
        """
        outcome = await self.outcome()
        if outcome.status is not AgentStatus.COMPLETED:
            why = outcome.error or (
                f"{outcome.cycles} cycles without finishing "
                f"(its transcript says why: `duragent transcript {self.id}`)"
            )
            raise AgentFailed(self.id, outcome.status.value, why, outcome)
        if self._output is None:
            return cast(OutputT, outcome.answer or "")
        return self._output(outcome.output)

    async def outcome(self) -> AgentResult:
        """Wait for the run to end; everything it returned (status, usage, output...).

        Raises:
            AgentFailed: Temporal closed the run (failed, cancelled, terminated).
        """
        try:
            return await self.workflow.result()
        except WorkflowFailureError as err:
            cause = err.cause
            status = "cancelled" if type(cause).__name__ == "CancelledError" else "failed"
            raise AgentFailed(self.id, status, str(cause), None) from err

    async def status(self) -> AgentView:
        """Status, cycle, usage and what it waits on (a query: also after the end)."""
        return await self.workflow.query(AgentWorkflow.status)

    async def pending(self) -> PendingView:
        """The question and the approvals it waits on."""
        return await self.workflow.query(AgentWorkflow.pending)

    async def transcript(self, *, offset: int = 0, limit: int | None = None) -> TranscriptPage:
        """A page of the conversation."""
        page = (
            TranscriptQuery(offset=offset)
            if limit is None
            else TranscriptQuery(offset=offset, limit=limit)
        )
        return await self.workflow.query(AgentWorkflow.transcript, page)

    async def usage(self) -> UsageView:
        """Tokens and cost so far."""
        return await self.workflow.query(AgentWorkflow.usage)

    async def todos(self) -> list[TodoItem]:
        """The agent's todo list."""
        return await self.workflow.query(AgentWorkflow.todos)

    async def reply(self, answer: str | list[str], *, question_id: str | None = None) -> str:
        """Answer the pending question; returns its id once the agent accepted it.

        Without ``question_id`` the question pending now is answered.

        Raises:
            temporalio.client.WorkflowUpdateFailedError: The agent refused it (nothing
                asked, a stale id, an option it did not offer); the cause says why.
        """
        if question_id is None:
            question = (await self.pending()).question
            question_id = question.id if question is not None else None
        return await self._update(
            AgentWorkflow.reply, ReplyInput(answer=answer, question_id=question_id)
        )

    async def decide(self, decision: ApprovalDecision) -> str:
        """Approve, reject or edit a pending tool call (see the shortcuts below)."""
        return await self._update(AgentWorkflow.decide, decision)

    async def approve(self, call_id: str) -> str:
        """Let a pending tool call run."""
        return await self.decide(ApprovalDecision(call_id=call_id, action=ApprovalAction.APPROVE))

    async def reject(self, call_id: str, message: str | None = None) -> str:
        """Refuse a pending tool call; ``message`` tells the model why."""
        return await self.decide(
            ApprovalDecision(call_id=call_id, action=ApprovalAction.REJECT, message=message)
        )

    async def edit(self, call_id: str, arguments: str) -> str:
        """Run a pending tool call with other JSON arguments (validated first)."""
        return await self.decide(
            ApprovalDecision(call_id=call_id, action=ApprovalAction.EDIT, arguments=arguments)
        )

    async def say(self, message: str) -> None:
        """A message the agent reads before its next LLM call."""
        await self.workflow.signal(AgentWorkflow.say, SteerInput(message=message))

    async def cancel(self, reason: str | None = None) -> None:
        """Ask the run to stop: tools in flight are cancelled, the transcript kept."""
        await self.workflow.cancel(reason=reason or "cancelled")

    async def _update(self, update: Any, argument: Any) -> str:
        # The updates are async methods, which the SDK's typing of execute_update
        # does not match; both answer with the id they acted on.
        answer: Any = await self.workflow.execute_update(update, argument)
        return str(answer)


def get_agent(client: Client, agent_id: str) -> AgentHandle[str]:
    """The handle of an existing agent, by id (its result as text or raw output)."""
    return AgentHandle(client, agent_id)


__all__ = ["AgentFailed", "AgentHandle", "get_agent"]
