"""The read commands of ``duragent``: what an operator sees of agents.

``status``, ``pending``, ``transcript``, ``usage``, ``todos``, ``result``, ``ls``,
``watch`` and ``trace`` only read: queries (answered by a worker), describe and
visibility calls (answered by Temporal alone). Each prints text for a person, or JSON
with ``--json``. A query that no worker answers says which task queue lacks one.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.exceptions import CancelledError, TerminatedError, TimeoutError
from temporalio.service import RPCError, RPCStatusCode

from duragent.activities.tools import TodoStatus
from duragent.worker import render
from duragent.worker.cli_args import EXIT_NOT_COMPLETED, EXIT_OK
from duragent.worker.client import (
    CLOSED_STATUS,
    agent_handle,
    is_not_found,
    shown_status,
    workflow_pollers,
)
from duragent.worker.pending_tree import PendingTree, item_lines, tree_lines, walk
from duragent.worker.settings import Settings
from duragent.worker.telemetry import (
    Telemetry,
    TelemetrySettings,
    history_trace,
    render_tree,
    trace_id_of,
    where_lines,
)
from duragent.workflows import search_attributes as search
from duragent.workflows.agent import WORKFLOW_NAME, AgentWorkflow
from duragent.workflows.models import (
    AgentResult,
    AgentStatus,
    AgentView,
    PendingView,
    TranscriptQuery,
)

WATCH_INTERVAL = 0.5  # seconds between polls of `watch`: queries are cheap, this is a person
QUERY_TIMEOUT = timedelta(seconds=30)
"""How long a query may wait for a worker before the CLI looks for one. Longer than a
worker's sticky schedule-to-start timeout (3 s for duragent workers, 10 s for the SDK's
default): after a worker died, Temporal first
offers the query to its sticky queue, then to a live worker of the task queue."""
NO_WORKER_NOTICE = 5.0
"""Seconds ``run --wait`` and ``result --wait`` wait before saying no worker polls."""
EXECUTION_FILTER = {
    "terminated": "ExecutionStatus = 'Terminated'",
    "timed_out": "ExecutionStatus = 'TimedOut'",
    "cancelled": f"({search.STATUS.name} = 'cancelled' OR ExecutionStatus = 'Canceled')",
    "failed": f"({search.STATUS.name} = 'failed' OR ExecutionStatus = 'Failed')",
}
"""``ls --status`` values a run closed by Temporal can have without recording them."""

Handle = WorkflowHandle[AgentWorkflow, AgentResult]
T = TypeVar("T")


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


class NoWorker(UserError):
    """No worker polls the agent's task queue, so nothing answers its queries."""


# --- asking an agent -------------------------------------------------------------------


async def answered(client: Client, handle: Handle, query: Awaitable[T]) -> T:
    """Await ``query`` (a query on ``handle``); say so when no worker can answer it.

    Raises:
        NoWorker: The query failed and no worker polls the agent's task queue.
        UserError: The agent could not answer (its workflow code failed the query).
    """
    try:
        return await query
    except WorkflowQueryFailedError as err:
        raise UserError(f"agent {handle.id!r} could not answer: {err.message}") from err
    except RPCError as err:
        if is_not_found(err):
            raise
        queue = (await handle.describe()).task_queue
        # The server itself says so when its pollers left ("no poller seen for task
        # queue recently"); else a timed-out query with no poller listed means the same.
        server_says = err.status is RPCStatusCode.FAILED_PRECONDITION and "poller" in err.message
        if server_says or not await workflow_pollers(client, queue):
            raise NoWorker(_no_worker(queue, handle.id)) from err
        if err.status in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
            raise UserError(
                f"agent {handle.id!r} did not answer within {QUERY_TIMEOUT.seconds} s "
                f"(workers poll task queue {queue!r}; are they overloaded?)"
            ) from err
        raise


def _no_worker(queue: str, agent_id: str) -> str:
    return (
        f"no worker is polling task queue {queue!r}, so agent {agent_id!r} cannot answer; "
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


def recorded_status(description: WorkflowExecutionDescription) -> str:
    """The agent's status as Temporal's description shows it."""
    return shown_status(description.status, description.typed_search_attributes.get(search.STATUS))


def print_json(value: Any) -> None:
    """Print a pydantic model, or plain data, as indented JSON."""
    if hasattr(value, "model_dump_json"):
        print(value.model_dump_json(indent=2))
    else:
        print(json.dumps(value, indent=2, default=str))


# --- results ---------------------------------------------------------------------------


async def print_result(
    client: Client, handle: Handle, *, as_json: bool, task_queue: str | None = None
) -> int:
    """Wait for the run's end and print it; the exit code says whether it completed.

    With ``task_queue``, say once on stderr when no worker polls it after a few seconds.
    """
    waiting = asyncio.ensure_future(handle.result())
    if task_queue is not None:
        await note_missing_worker(client, waiting, task_queue=task_queue)
    try:
        outcome = await waiting
    except WorkflowFailureError as err:
        status = _closed_by(err)
        if as_json:
            print_json({"status": status, "error": str(err.cause)})
        else:
            print(f"status: {status}\nerror: {err.cause}")
        return EXIT_NOT_COMPLETED
    print(outcome.model_dump_json(indent=2) if as_json else render.result_lines(outcome))
    return EXIT_OK if outcome.status is AgentStatus.COMPLETED else EXIT_NOT_COMPLETED


async def note_missing_worker(
    client: Client,
    waiting: asyncio.Future[Any],
    *,
    task_queue: str | None = None,
    handle: Handle | None = None,
) -> None:
    """When ``waiting`` is not done after a few seconds, say on stderr if no worker polls.

    The queue is ``task_queue``, or the one ``handle``'s agent runs on. Only says;
    the caller keeps waiting.
    """
    done, _ = await asyncio.wait({waiting}, timeout=NO_WORKER_NOTICE)
    if done:
        return
    try:
        if task_queue is None:
            assert handle is not None
            task_queue = (await handle.describe()).task_queue
        polled = await workflow_pollers(client, task_queue)
    except RPCError:
        return
    if not polled:
        print(
            f"duragent: no worker is polling task queue {task_queue!r} yet; still waiting "
            f"(start one with `DURAGENT_TASK_QUEUE={task_queue} duragent worker`)",
            file=sys.stderr,
            flush=True,
        )


def _closed_by(err: WorkflowFailureError) -> str:
    cause = err.cause
    if isinstance(cause, CancelledError):
        return "cancelled"
    if isinstance(cause, TerminatedError):
        return CLOSED_STATUS[WorkflowExecutionStatus.TERMINATED]
    if isinstance(cause, TimeoutError):
        return CLOSED_STATUS[WorkflowExecutionStatus.TIMED_OUT]
    return "failed"


async def result(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print a finished agent's result (or its status while it runs)."""
    handle = agent_handle(client, args.agent_id)
    # Describe, not query: a closed run's result is in history and needs no worker.
    description = await handle.describe()
    if description.status is WorkflowExecutionStatus.RUNNING and not args.wait:
        view = await status_view(client, handle)
        if args.json:
            print_json({"status": view.status.value, "running": True})
        else:
            print(f"agent {args.agent_id} is {view.status.value}; use --wait to wait for its end")
        return EXIT_NOT_COMPLETED
    queue = (
        description.task_queue if description.status is WorkflowExecutionStatus.RUNNING else None
    )
    return await print_result(client, handle, as_json=args.json, task_queue=queue)


# --- queries ---------------------------------------------------------------------------


async def status(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print the ``status`` query; a run closed by Temporal shows how it was closed."""
    handle = agent_handle(client, args.agent_id)
    description = await handle.describe()
    closed = description.status is not WorkflowExecutionStatus.RUNNING
    try:
        if closed and not await workflow_pollers(client, description.task_queue):
            # No need to wait for the query's timeout: nothing can answer it.
            raise NoWorker(_no_worker(description.task_queue, handle.id))
        view = await status_view(client, handle)
    except UserError as err:
        if not closed:
            raise
        # A closed run needs a worker to answer queries; Temporal still knows how it ended.
        print_closed("agent", args.agent_id, description, str(err), as_json=args.json)
        return EXIT_OK
    shown = shown_status(description.status, view.status.value)
    if args.json:
        data = view.model_dump(mode="json")
        data["status"] = shown
        data["execution_status"] = description.status.name.lower() if description.status else None
        print_json(data)
    else:
        print(render.status_lines(args.agent_id, view, status=shown))
    return EXIT_OK


def print_closed(
    kind: str,
    run_id: str,
    description: WorkflowExecutionDescription,
    why: str,
    *,
    as_json: bool,
    hint: str = "",
) -> None:
    """A closed run whose state no worker answered for: what history records of it.

    Args:
        kind: ``agent`` or ``graph``, the first line's label.
        run_id: The agent's or graph's id.
        description: The run as Temporal describes it.
        why: Why the query had no answer.
        as_json: Print JSON instead of lines.
        hint: A command that reads more, appended to ``why``.
    """
    shown = recorded_status(description)
    closed_at = (
        description.close_time.isoformat(timespec="seconds") if description.close_time else None
    )
    if as_json:
        print_json({"status": shown, "closed": closed_at, "details": why})
        return
    print(f"{kind + ':':<9}{run_id}\nstatus:  {shown}")
    if closed_at:
        print(f"closed:  {closed_at}")
    print(f"({why}{hint})")


async def pending(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print what the agent and its sub-agents wait on, with the commands that act."""
    handle = agent_handle(client, args.agent_id)
    how = await ended(handle)
    if how is not None:
        tree = PendingTree(agent_id=handle.id, agents=[handle.id], ended=how)
    else:
        tree = await pending_tree(client, handle)
    if args.json:
        print_json(tree)
    else:
        print(tree_lines(tree))
    return EXIT_OK


async def transcript(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print a page of the transcript."""
    handle = agent_handle(client, args.agent_id)
    page = await answered(
        client,
        handle,
        handle.query(
            AgentWorkflow.transcript,
            TranscriptQuery(offset=args.offset, limit=args.limit),
            rpc_timeout=QUERY_TIMEOUT,
        ),
    )
    if args.json:
        print_json(page)
        return EXIT_OK
    for i, message in enumerate(page.messages, start=page.offset):
        print("\n".join(render.message_lines(i, message)))
    print(f"({page.offset}-{page.offset + len(page.messages)} of {page.total} messages)")
    return EXIT_OK


async def usage(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print the ``usage`` query: tokens in total and per model, cycles, calls."""
    handle = agent_handle(client, args.agent_id)
    view = await answered(
        client, handle, handle.query(AgentWorkflow.usage, rpc_timeout=QUERY_TIMEOUT)
    )
    if args.json:
        print_json(view)
        return EXIT_OK
    total = view.total
    print(f"tokens:  {total.input_tokens} in / {total.output_tokens} out")
    for model, used in sorted(view.by_model.items()):
        print(f"  {model}: {used.input_tokens} in / {used.output_tokens} out")
    print(f"cycles:  {view.cycles}  llm calls: {view.llm_calls}  tool calls: {view.tool_calls}")
    print(f"runs:    {view.runs}  compactions: {view.compactions}")
    print(f"context: {view.context_tokens} tokens (estimated next prompt)")
    return EXIT_OK


async def todos(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print the agent's todo list as it last wrote it."""
    handle = agent_handle(client, args.agent_id)
    items = await answered(
        client, handle, handle.query(AgentWorkflow.todos, rpc_timeout=QUERY_TIMEOUT)
    )
    if args.json:
        print_json([item.model_dump(mode="json") for item in items])
        return EXIT_OK
    marks = {TodoStatus.PENDING: "[ ]", TodoStatus.IN_PROGRESS: "[~]", TodoStatus.COMPLETED: "[x]"}
    for item in items:
        print(f"{marks.get(item.status, '[?]')} {item.content}  ({item.id})")
    if not items:
        print("no todos")
    return EXIT_OK


# --- listing ---------------------------------------------------------------------------


def ls_query(status: str | None, owner: str | None) -> str:
    """The visibility query of ``ls``: one row per agent (its latest run).

    A continued-as-new run is not listed (its successor is); a status an agent records
    while it runs (``running``, ``waiting_*``) only matches open runs, because a run that
    Temporal closed (terminated, timed out) keeps the last one it recorded.
    """
    query = f"WorkflowType = '{WORKFLOW_NAME}' AND ExecutionStatus != 'ContinuedAsNew'"
    if status in EXECUTION_FILTER:
        query += f" AND {EXECUTION_FILTER[status]}"
    elif status is not None:
        query += f" AND {search.STATUS.name} = '{status}'"
        if not AgentStatus(status).is_final:
            query += " AND ExecutionStatus = 'Running'"
    if owner:
        query += f" AND {search.OWNER.name} = '{_quoted(owner)}'"
    return query


async def ls(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """List agents from Temporal visibility (no agent is queried)."""
    rows = []
    async for wf in client.list_workflows(ls_query(args.status, args.owner), limit=args.limit):
        rows.append(listed_row(wf, model=wf.typed_search_attributes.get(search.MODEL) or ""))
    if args.json:
        print_json(rows)
        return EXIT_OK
    print(f"{'AGENT':<36} {'STATUS':<17} {'MODEL':<20} STARTED")
    for row in rows:
        print(f"{row['id']:<36} {row['status']:<17} {row['model']:<20} {row['started']}")
    return EXIT_OK


def listed_row(wf: WorkflowExecution, **extra: Any) -> dict[str, Any]:
    """One run of an ``ls`` listing: id, status, owner, times, run and queue, and ``extra``."""
    attrs = wf.typed_search_attributes
    return {
        "id": wf.id,
        "status": shown_status(wf.status, attrs.get(search.STATUS)),
        **extra,
        "owner": attrs.get(search.OWNER),
        "started": wf.start_time.isoformat(timespec="seconds"),
        "closed": wf.close_time.isoformat(timespec="seconds") if wf.close_time else None,
        "run_id": wf.run_id,
        "task_queue": wf.task_queue,
    }


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


# --- following -------------------------------------------------------------------------


async def watch(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Follow a run live until it ends: messages, tool calls, waiting states.

    While the agent waits for a person, the exact command that answers is printed.
    """
    handle = agent_handle(client, args.agent_id)
    await _print_where(client, args.agent_id)
    state = _Watched()
    while (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
        try:
            await _watch_step(client, handle, state)
        except NoWorker as err:
            state.say_once(f"({err}; waiting)")
        except (RPCError, UserError) as err:
            print(f"(cannot query the agent: {err}; retrying)", flush=True)
        await asyncio.sleep(WATCH_INTERVAL)
    try:
        await _watch_step(client, handle, state)  # the last messages, if a worker answers
    except (RPCError, UserError):
        pass
    return await print_result(client, handle, as_json=False)


@dataclasses.dataclass
class _Watched:
    seen: int = 0
    last: str = ""
    hinted: set[str] = dataclasses.field(default_factory=set)

    def say_once(self, line: str) -> None:
        if line != self.last:
            print(line, flush=True)
            self.last = line


async def _watch_step(client: Client, handle: Handle, state: _Watched) -> None:
    page = await answered(
        client,
        handle,
        handle.query(
            AgentWorkflow.transcript,
            TranscriptQuery(offset=state.seen, limit=500),
            rpc_timeout=QUERY_TIMEOUT,
        ),
    )
    for i, message in enumerate(page.messages, start=state.seen):
        for line in render.message_lines(i, message):
            print(line, flush=True)
    state.seen += len(page.messages)
    view = await status_view(client, handle)
    state.say_once(
        f"[cycle {view.cycle}] {view.status.value}"
        + (f": {view.waiting_for}" if view.waiting_for else "")
    )
    if view.status in (AgentStatus.WAITING_USER, AgentStatus.WAITING_APPROVAL) or (
        view.pending_approvals
    ):
        await _print_hints(client, handle, state)


async def _print_hints(client: Client, handle: Handle, state: _Watched) -> None:
    tree = await pending_tree(client, handle)
    for item in tree.items:
        key = f"{item.send_to}\x00{item.id}"
        if key not in state.hinted:
            state.hinted.add(key)
            for line in item_lines(item, root=handle.id):
                print(line, flush=True)


async def trace(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print an agent's run as a tree, read from its history (no collector needed)."""
    tree = await history_trace(client, args.agent_id)
    telemetry = Telemetry.of(client)
    trace_id = await trace_id_of(client, args.agent_id)
    link = telemetry.settings.tracing.link(trace_id) if telemetry and trace_id else None
    if args.json:
        print_json({"trace_id": trace_id, "link": link, "tree": dataclasses.asdict(tree)})
        return EXIT_OK
    print(render_tree(tree))
    # The root line names the trace id; the viewer's link when there is one.
    if link:
        print(f"trace: {link}")
    return EXIT_OK


async def _print_where(client: Client, agent_id: str) -> None:
    telemetry = Telemetry.of(client)
    settings = telemetry.settings if telemetry else TelemetrySettings()
    trace_id = await trace_id_of(client, agent_id)
    for line in where_lines(settings, agent_id, trace_id):
        print(line, flush=True)
