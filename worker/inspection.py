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
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.service import RPCError

from duragent.activities.tools import TodoStatus
from duragent.worker import render
from duragent.worker.agent_ops import (
    QUERY_TIMEOUT,
    Handle,
    NoWorker,
    agent_pending,
    agent_state,
    answered,
    closed_by,
    closed_json,
    pending_tree,
    status_view,
    transcript_page,
)
from duragent.worker.agent_ops import UserError as UserError  # the CLI modules import it here
from duragent.worker.cli_args import EXIT_NOT_COMPLETED, EXIT_OK
from duragent.worker.client import (
    agent_handle,
    workflow_pollers,
)
from duragent.worker.listing import list_agents
from duragent.worker.pending_tree import item_lines, tree_lines
from duragent.worker.settings import Settings
from duragent.worker.telemetry import (
    Telemetry,
    TelemetrySettings,
    history_trace,
    render_tree,
    trace_id_of,
    where_lines,
)
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    AgentStatus,
    TranscriptQuery,
)

WATCH_INTERVAL = 0.5  # seconds between polls of `watch`: queries are cheap, this is a person
NO_WORKER_NOTICE = 5.0
"""Seconds ``run --wait`` and ``result --wait`` wait before saying no worker polls."""
T = TypeVar("T")


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
        status = closed_by(err)
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
    state = await agent_state(client, args.agent_id)
    if state.view is None:
        print_closed("agent", args.agent_id, state.description, state.why or "", as_json=args.json)
    elif args.json:
        print_json(state.json())
    else:
        print(render.status_lines(args.agent_id, state.view, status=state.shown))
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
    closed = closed_json(description, why)
    if as_json:
        print_json(closed)
        return
    print(f"{kind + ':':<9}{run_id}\nstatus:  {closed['status']}")
    if closed["closed"]:
        print(f"closed:  {closed['closed']}")
    print(f"({why}{hint})")


async def pending(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print what the agent and its sub-agents wait on, with the commands that act."""
    tree = await agent_pending(client, args.agent_id)
    if args.json:
        print_json(tree)
    else:
        print(tree_lines(tree))
    return EXIT_OK


async def transcript(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print a page of the transcript."""
    page = await transcript_page(client, args.agent_id, args.offset, args.limit)
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


async def ls(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """List agents from Temporal visibility (no agent is queried)."""
    rows = await list_agents(client, args.status, args.owner, args.limit)
    if args.json:
        print_json(rows)
        return EXIT_OK
    print(f"{'AGENT':<36} {'STATUS':<17} {'MODEL':<20} STARTED")
    for row in rows:
        print(f"{row['id']:<36} {row['status']:<17} {row['model']:<20} {row['started']}")
    return EXIT_OK


# --- following -------------------------------------------------------------------------


async def watch(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Follow a run live until it ends: messages, tool calls, waiting states.

    While the agent waits for a person, the exact command that answers is printed.
    """
    handle = agent_handle(client, args.agent_id)
    await print_where(client, args.agent_id)
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


async def print_where(client: Client, agent_id: str) -> None:
    """Where else an agent's run can be followed: its trace, its tree, the metrics."""
    telemetry = Telemetry.of(client)
    settings = telemetry.settings if telemetry else TelemetrySettings()
    trace_id = await trace_id_of(client, agent_id)
    for line in where_lines(settings, agent_id, trace_id):
        print(line, flush=True)
