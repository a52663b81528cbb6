"""What the CLI and the HTTP API do to agents, as data: ask, start, answer, steer, stop.

Both faces call these functions and differ only in how they show the outcome: the CLI
(:mod:`worker.inspection`, :mod:`worker.commands`) prints lines or JSON, ``duragent
serve`` (:mod:`worker.serve`) answers HTTP. Mistakes a user can fix are raised as
:class:`UserError` and its kinds::

    UserError            a mistake the user can fix (one line)
    ├── NoWorker         no worker polls the agent's task queue, so nothing answers
    ├── Ended            the run has ended and takes no more input
    ├── WrongKind        the id names a run of another kind (a graph, not an agent)
    └── Rejected         the workflow's update validator refused the input (its words)

A run that does not exist is Temporal's ``RPCError`` with ``NOT_FOUND``
(:func:`worker.client.is_not_found`); :func:`status_of_id` tells an ended run from
a missing one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    TerminatedError,
    TimeoutError,
    WorkflowAlreadyStartedError,
)
from temporalio.service import RPCError, RPCStatusCode

from duragent.worker.client import (
    CLOSED_STATUS,
    agent_handle,
    is_not_found,
    shown_status,
    start_agent,
    workflow_pollers,
)
from duragent.worker.pending_tree import PendingTree, walk
from duragent.workflows import search_attributes as search
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    AgentInput,
    AgentResult,
    AgentView,
    ApprovalDecision,
    PendingView,
    ReplyInput,
    SteerInput,
    TranscriptPage,
    TranscriptQuery,
)

QUERY_TIMEOUT = timedelta(seconds=30)
"""How long a query may wait for a worker before the caller looks for one. Longer than a
worker's sticky schedule-to-start timeout (3 s for duragent workers, 10 s for the SDK's
default): after a worker died, Temporal first
offers the query to its sticky queue, then to a live worker of the task queue."""
Handle = WorkflowHandle[AgentWorkflow, AgentResult]
T = TypeVar("T")
SlowHook = Callable[[Client, "asyncio.Future[Any]", WorkflowHandle[Any, Any]], Awaitable[None]]
"""Called while an update waits for a worker: the CLI says none polls, the API gives up."""


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


class NoWorker(UserError):
    """No worker polls the agent's task queue, so nothing answers its queries."""


class Ended(UserError):
    """The run has ended (or an id that ran is reused): it takes no more input."""


class WrongKind(UserError):
    """The id names a run of another kind (a graph where an agent was meant, or so)."""


class Rejected(UserError):
    """The workflow's update validator refused the input; ``str()`` is its message.

    Attributes:
        kind: The validator's error type (``InvalidReply``, ``InvalidDecision``,
            ``InvalidArguments``, ``InvalidGateAnswer``…), ``""`` when it gave none.
        why: The validator's own words.
    """

    def __init__(self, prefix: str, why: str, kind: str = "") -> None:
        super().__init__(f"{prefix}: {why}")
        self.why = why
        self.kind = kind


# --- asking an agent -------------------------------------------------------------------


async def answered(
    client: Client, handle: WorkflowHandle[Any, Any], query: Awaitable[T], kind: str = "agent"
) -> T:
    """Await ``query`` (a query on ``handle``); say so when no worker can answer it.

    Args:
        client: The client ``handle`` belongs to.
        handle: The run asked.
        query: The query's call.
        kind: What the run is (``agent``, ``graph``), for the messages.

    Raises:
        NoWorker: The query failed and no worker polls the run's task queue.
        UserError: The run could not answer (its workflow code failed the query).
    """
    try:
        return await query
    except WorkflowQueryFailedError as err:
        raise UserError(f"{kind} {handle.id!r} could not answer: {err.message}") from err
    except RPCError as err:
        if is_not_found(err):
            raise
        queue = (await handle.describe()).task_queue
        # The server itself says so when its pollers left ("no poller seen for task
        # queue recently"); else a timed-out query with no poller listed means the same.
        server_says = err.status is RPCStatusCode.FAILED_PRECONDITION and "poller" in err.message
        if server_says or not await workflow_pollers(client, queue):
            raise NoWorker(no_worker(queue, handle.id, kind)) from err
        if err.status in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
            raise UserError(
                f"{kind} {handle.id!r} did not answer within {QUERY_TIMEOUT.seconds} s "
                f"(workers poll task queue {queue!r}; are they overloaded?)"
            ) from err
        raise


def no_worker(queue: str, run_id: str, kind: str = "agent") -> str:
    """What to say when no worker polls ``queue``, so the ``kind`` ``run_id`` cannot answer."""
    return (
        f"no worker is polling task queue {queue!r}, so {kind} {run_id!r} cannot answer; "
        f"start one with `DURAGENT_TASK_QUEUE={queue} duragent worker`"
    )


async def ended(handle: Handle) -> str | None:
    """How the agent ended (e.g. ``completed``, ``terminated``), or ``None`` while it runs."""
    description = await handle.describe()
    if description.status is WorkflowExecutionStatus.RUNNING:
        return None
    return recorded_status(description)


async def status_view(client: Client, handle: Handle) -> AgentView:
    """The ``status`` query, with the no-worker check."""
    return await answered(
        client, handle, handle.query(AgentWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
    )


async def pending_tree(client: Client, handle: Handle) -> PendingTree:
    """The pending work of the agent and its running sub-agents."""
    root = await answered(
        client, handle, handle.query(AgentWorkflow.pending, rpc_timeout=QUERY_TIMEOUT)
    )

    async def query(child: str) -> PendingView:
        return await agent_handle(client, child).query(
            AgentWorkflow.pending, rpc_timeout=QUERY_TIMEOUT
        )

    return await walk(handle.id, root, query)


async def agent_pending(client: Client, agent_id: str) -> PendingTree:
    """What the agent and its sub-agents wait on; nothing, saying how, once it ended."""
    handle = agent_handle(client, agent_id)
    how = await ended(handle)
    if how is not None:
        return PendingTree(agent_id=handle.id, agents=[handle.id], ended=how)
    return await pending_tree(client, handle)


async def transcript_page(client: Client, agent_id: str, offset: int, limit: int) -> TranscriptPage:
    """A page of the transcript: ``limit`` messages from ``offset``."""
    handle = agent_handle(client, agent_id)
    return await answered(
        client,
        handle,
        handle.query(
            AgentWorkflow.transcript,
            TranscriptQuery(offset=offset, limit=limit),
            rpc_timeout=QUERY_TIMEOUT,
        ),
    )


def recorded_status(description: WorkflowExecutionDescription) -> str:
    """The run's status as Temporal's description shows it (agents and graphs alike)."""
    return shown_status(description.status, description.typed_search_attributes.get(search.STATUS))


async def status_of_id(client: Client, workflow_id: str) -> str | None:
    """The recorded status of the run with this id; ``None`` when there is none."""
    try:
        return recorded_status(await client.get_workflow_handle(workflow_id).describe())
    except RPCError:
        return None


class _HasStatus(Protocol):
    @property
    def status(self) -> Enum: ...


V = TypeVar("V", bound=_HasStatus)


@dataclass
class RunState(Generic[V]):
    """A run as ``status`` shows it: the query's view, or why a closed run has none."""

    run_id: str
    description: WorkflowExecutionDescription
    shown: str
    """The status for people (:func:`worker.client.shown_status`)."""
    view: V | None = None
    why: str | None = None
    """Why a closed run's view is missing (no worker answered)."""

    def json(self) -> dict[str, Any]:
        """``status --json``: the view with the shown and execution statuses."""
        if self.view is None:
            return closed_json(self.description, self.why or "")
        assert isinstance(self.view, BaseModel)
        data = self.view.model_dump(mode="json")
        data["status"] = self.shown
        execution = self.description.status
        data["execution_status"] = execution.name.lower() if execution else None
        return data


def closed_json(description: WorkflowExecutionDescription, why: str) -> dict[str, Any]:
    """A closed run that no worker answered for: what history records of it."""
    closed = description.close_time
    return {
        "status": recorded_status(description),
        "closed": closed.isoformat(timespec="seconds") if closed else None,
        "details": why,
    }


async def run_state(
    client: Client,
    run_id: str,
    description: WorkflowExecutionDescription,
    ask: Callable[[], Awaitable[V]],
    *,
    kind: str,
) -> RunState[V]:
    """The view ``ask`` queries, or for a closed run no worker answers, what Temporal knows.

    Raises:
        UserError: A running ``kind`` (agent, graph) could not answer.
    """
    closed = description.status is not WorkflowExecutionStatus.RUNNING
    try:
        if closed and not await workflow_pollers(client, description.task_queue):
            # No need to wait for the query's timeout: nothing can answer it.
            raise NoWorker(no_worker(description.task_queue, run_id, kind))
        view = await ask()
    except UserError as err:
        if not closed:
            raise
        # A closed run needs a worker to answer queries; Temporal still knows how it ended.
        return RunState(run_id, description, recorded_status(description), why=str(err))
    shown = shown_status(description.status, str(view.status.value))
    return RunState(run_id, description, shown, view)


async def agent_state(client: Client, agent_id: str) -> RunState[AgentView]:
    """The ``status`` query, or for a closed run no worker answers, what Temporal knows.

    Raises:
        RPCError: ``NOT_FOUND`` when no agent has this id.
        UserError: A running agent could not answer (no worker, a failed query).
    """
    handle = agent_handle(client, agent_id)
    description = await handle.describe()
    return await run_state(
        client, agent_id, description, lambda: status_view(client, handle), kind="agent"
    )


def closed_by(err: WorkflowFailureError) -> str:
    """The status of a run whose result raised ``err``: how Temporal closed it."""
    cause = err.cause
    if isinstance(cause, CancelledError):
        return "cancelled"
    if isinstance(cause, TerminatedError):
        return CLOSED_STATUS[WorkflowExecutionStatus.TERMINATED]
    if isinstance(cause, TimeoutError):
        return CLOSED_STATUS[WorkflowExecutionStatus.TIMED_OUT]
    return "failed"


# --- starting, answering, steering, stopping -------------------------------------------


async def start(
    client: Client, input: AgentInput, *, task_queue: str, agent_id: str | None
) -> Handle:
    """Start an agent (the same id again while it runs returns it).

    Raises:
        Ended: An agent with this id already ran to its end; ids are not reused.
    """
    try:
        return await start_agent(client, input, task_queue=task_queue, agent_id=agent_id)
    except WorkflowAlreadyStartedError as err:
        raise Ended(f"agent {agent_id!r} already ran; see `duragent result {agent_id}`") from err


async def send_update(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    update: str,
    arg: Any,
    *,
    slow: SlowHook,
    what: str | None = None,
) -> str:
    """Run an update and return its result as text.

    An update waits for a worker to run its validator: ``slow`` is told while it waits.
    A rejection's message starts ``WHAT rejected:`` (``what`` defaults to ``update``).

    Raises:
        Rejected: The validator (or the handler) refused, in its own words.
    """
    waiting = asyncio.ensure_future(handle.execute_update(update, arg, result_type=str))
    try:
        await slow(client, waiting, handle)
        outcome: Any = await waiting
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        # The validator's own words, without the error type the SDK puts before them.
        prefix = f"{what or update} rejected"
        if isinstance(cause, ApplicationError):
            raise Rejected(prefix, cause.message, cause.type or "") from err
        raise Rejected(prefix, str(cause)) from err
    finally:
        waiting.cancel()  # when `slow` gave up; a no-op once it is done
    return str(outcome)


async def send_reply(
    client: Client,
    agent_id: str,
    answer: str | list[str],
    question_id: str | None,
    *,
    slow: SlowHook,
) -> str:
    """Answer a pending question; returns the question id.

    The question id is always sent, looked up when not given: a reply sent twice (a
    double click) is then rejected as stale instead of answering the next question.

    Raises:
        Ended: The agent has ended.
        UserError: No question id given and not exactly one question pending.
        Rejected: The workflow refused the reply (nothing asked, stale id, bad option).
    """
    handle = agent_handle(client, agent_id)
    question_id = question_id or await only_question(client, handle)
    reply = ReplyInput(answer=answer, question_id=question_id)
    return await send_update(client, handle, "reply", reply, slow=slow)


async def only_question(client: Client, handle: Handle) -> str:
    """The id of the one question pending through this agent.

    Raises:
        Ended: The agent has ended.
        UserError: No question, or several, are pending.
    """
    how = await ended(handle)
    if how is not None:
        raise Ended(f"agent {handle.id!r} has ended ({how}); it asks nothing any more")
    tree = await pending_tree(client, handle)
    # Questions are answered through the agent the user named (sub-agents' questions
    # are routed to it); deeper ones name their own agent in `duragent pending`.
    ours = [q for q in tree.questions if q.send_to == handle.id]
    if len(ours) == 1:
        return ours[0].id
    if not ours:
        raise UserError(f"agent {handle.id!r} has no pending question (see `duragent pending`)")
    ids = ", ".join(q.id for q in ours)
    raise UserError(f"{len(ours)} questions are pending ({ids}); pick one with --question-id")


async def send_decision(
    client: Client, agent_id: str, decision: ApprovalDecision, *, slow: SlowHook
) -> str:
    """Approve, reject or edit a pending tool call; returns the call id.

    Raises:
        Rejected: The workflow refused (no such pending call, fingerprint mismatch,
            edited arguments its tool does not accept).
    """
    handle = agent_handle(client, agent_id)
    what = decision.action.value
    return await send_update(client, handle, "decide", decision, slow=slow, what=what)


async def steer(client: Client, agent_id: str, message: str) -> None:
    """Send a message the agent reads before its next LLM call (a signal)."""
    await agent_handle(client, agent_id).signal(AgentWorkflow.say, SteerInput(message=message))


async def cancel_agent(client: Client, agent_id: str, reason: str) -> Handle:
    """Request cancellation of a running agent.

    Raises:
        Ended: The agent has already ended.
    """
    handle = agent_handle(client, agent_id)
    if (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING:
        raise Ended(f"agent {agent_id!r} has already ended")
    await handle.cancel(reason=reason)
    return handle
