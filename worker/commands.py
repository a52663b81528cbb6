"""What each ``duragent`` subcommand does, once connected to Temporal.

Each command takes the client, the parsed arguments and the settings, prints what a
person needs, and returns the exit code. Mistakes become :class:`UserError`, which the
entry point prints as one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from worker import render
from worker.client import agent_handle, ensure_search_attributes, start_agent
from worker.settings import Settings
from worker.telemetry import (
    Telemetry,
    TelemetrySettings,
    history_trace,
    render_tree,
    trace_id_of,
    where_lines,
)
from workflows import search_attributes as search
from workflows.agent import WORKFLOW_NAME, AgentWorkflow
from workflows.models import (
    AgentInput,
    AgentResult,
    AgentStatus,
    ApprovalAction,
    ApprovalDecision,
    ReplyInput,
    SteerInput,
    TranscriptQuery,
)

EXIT_OK, EXIT_NOT_COMPLETED, EXIT_USAGE = 0, 1, 2
WATCH_INTERVAL = 0.5  # seconds between polls of `watch`: queries are cheap, this is a person

Handle = WorkflowHandle[AgentWorkflow, AgentResult]
Command = Callable[[Client, argparse.Namespace, Settings], Awaitable[int]]


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


async def worker(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Run a worker until SIGTERM/SIGINT."""
    from worker.main import run_worker

    if not settings.llm.configured:
        raise UserError(
            "no LLM configured: set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL "
            "(any OpenAI-compatible server, e.g. vLLM, Ollama, LiteLLM)"
        )
    await ensure_search_attributes(client)
    await run_worker(client, settings)
    return EXIT_OK


async def run(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Start an agent, print its id, and with ``--wait`` its result."""
    tools = [t.strip() for t in args.tools.split(",") if t.strip()] if args.tools else None
    input = AgentInput(
        task=args.task,
        model=args.model or settings.model,
        system_prompt=args.system_prompt,
        tools=tools,
        max_cycles=args.max_cycles,
        owner=args.owner or settings.owner,
    )
    try:
        handle = await start_agent(
            client, input, task_queue=settings.task_queue, agent_id=args.agent_id
        )
    except WorkflowAlreadyStartedError as err:
        raise UserError(
            f"agent {args.agent_id!r} already ran; see `duragent result {args.agent_id}`"
        ) from err
    print(handle.id, flush=True)
    if not args.wait:
        return EXIT_OK
    return await print_result(agent_handle(client, handle.id), as_json=False)


async def result(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print a finished agent's result (or its status while it runs)."""
    handle = agent_handle(client, args.agent_id)
    # Describe, not query: a closed run's result is in history and needs no worker.
    description = await handle.describe()
    if not args.wait and description.status is WorkflowExecutionStatus.RUNNING:
        view = await handle.query(AgentWorkflow.status)
        print(f"agent {args.agent_id} is {view.status.value}; use --wait to wait for its end")
        return EXIT_NOT_COMPLETED
    return await print_result(handle, as_json=args.json)


async def print_result(handle: Handle, *, as_json: bool) -> int:
    """Wait for the run's end and print it; the exit code says whether it completed."""
    try:
        outcome = await handle.result()
    except WorkflowFailureError as err:
        status = "cancelled" if _is_cancel(err) else "failed"
        print(f"status: {status}\nerror: {err.cause}")
        return EXIT_NOT_COMPLETED
    print(outcome.model_dump_json(indent=2) if as_json else render.result_lines(outcome))
    return EXIT_OK if outcome.status is AgentStatus.COMPLETED else EXIT_NOT_COMPLETED


async def status(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print the ``status`` query."""
    view = await agent_handle(client, args.agent_id).query(AgentWorkflow.status)
    if args.json:
        print(view.model_dump_json(indent=2))
    else:
        print(render.status_lines(args.agent_id, view))
    return EXIT_OK


async def pending(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print the pending question and approvals, with their ids."""
    view = await agent_handle(client, args.agent_id).query(AgentWorkflow.pending)
    print(view.model_dump_json(indent=2) if args.json else render.pending_lines(view))
    return EXIT_OK


async def transcript(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print a page of the transcript."""
    page = await agent_handle(client, args.agent_id).query(
        AgentWorkflow.transcript, TranscriptQuery(offset=args.offset, limit=args.limit)
    )
    if args.json:
        print(page.model_dump_json(indent=2))
        return EXIT_OK
    for i, message in enumerate(page.messages, start=page.offset):
        print("\n".join(render.message_lines(i, message)))
    print(f"({page.offset}-{page.offset + len(page.messages)} of {page.total} messages)")
    return EXIT_OK


async def reply(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Answer the pending question (update: the answer is checked before it is accepted)."""
    answer: str | list[str] = args.answer[0] if len(args.answer) == 1 else args.answer
    question_id = await _update(
        agent_handle(client, args.agent_id),
        AgentWorkflow.reply,
        ReplyInput(answer=answer, question_id=args.question_id),
        "reply rejected",
    )
    print(f"reply accepted for question {question_id}")
    return EXIT_OK


async def decide(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Approve, reject or edit a pending tool call."""
    action = ApprovalAction(args.command)
    arguments = getattr(args, "arguments", None)
    if arguments is not None:
        _check_json_object(arguments)
    decision = ApprovalDecision(
        call_id=args.call_id,
        action=action,
        message=getattr(args, "message", None),
        arguments=arguments,
        fingerprint=getattr(args, "fingerprint", None),
    )
    handle = agent_handle(client, args.agent_id)
    call_id = await _update(handle, AgentWorkflow.decide, decision, f"{args.command} rejected")
    print(f"{action.value} recorded for call {call_id}")
    return EXIT_OK


async def say(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Send a message the agent reads before its next LLM call."""
    handle = agent_handle(client, args.agent_id)
    await handle.signal(AgentWorkflow.say, SteerInput(message=args.message))
    print("message queued; the agent reads it before its next LLM call")
    return EXIT_OK


async def cancel(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Request cancellation; with ``--wait``, wait until the run has stopped."""
    handle = agent_handle(client, args.agent_id)
    if (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING:
        raise UserError(f"agent {args.agent_id!r} has already ended")
    await handle.cancel(reason=args.reason or "cancelled from the CLI")
    print(f"cancellation requested for {args.agent_id}")
    if args.wait:
        await print_result(handle, as_json=False)
    return EXIT_OK


async def ls(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """List agents from Temporal visibility (no agent is queried)."""
    query = f"WorkflowType = '{WORKFLOW_NAME}'"
    if args.status:
        query += f" AND {search.STATUS.name} = '{args.status}'"
    if args.owner:
        query += f" AND {search.OWNER.name} = '{_quoted(args.owner)}'"
    print(f"{'AGENT':<36} {'STATUS':<17} {'MODEL':<20} STARTED")
    async for wf in client.list_workflows(query, limit=args.limit):
        attrs = wf.typed_search_attributes
        state = attrs.get(search.STATUS) or (wf.status.name.lower() if wf.status else "?")
        model = attrs.get(search.MODEL) or ""
        started = wf.start_time.isoformat(timespec="seconds")
        print(f"{wf.id:<36} {state:<17} {model:<20} {started}")
    return EXIT_OK


async def watch(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Follow a run live until it ends: messages, tool calls, waiting states."""
    handle = agent_handle(client, args.agent_id)
    await _print_where(client, args.agent_id)
    seen, last = 0, ""
    while (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
        try:
            seen, last = await _watch_step(handle, seen, last)
        except RPCError as err:
            print(f"(cannot query the agent: {err.message}; retrying)", flush=True)
        await asyncio.sleep(WATCH_INTERVAL)
    try:
        await _watch_step(handle, seen, last)  # the last messages, if a worker still answers
    except RPCError:
        pass
    return await print_result(handle, as_json=False)


async def trace(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print an agent's run as a tree, read from its history (no collector needed)."""
    tree = await history_trace(client, args.agent_id)
    print(render_tree(tree))
    # The root line names the trace id; the viewer's link when there is one.
    telemetry = Telemetry.of(client)
    trace_id = await trace_id_of(client, args.agent_id)
    link = telemetry.settings.tracing.link(trace_id) if telemetry and trace_id else None
    if link:
        print(f"trace: {link}")
    return EXIT_OK


async def _print_where(client: Client, agent_id: str) -> None:
    telemetry = Telemetry.of(client)
    settings = telemetry.settings if telemetry else TelemetrySettings()
    trace_id = await trace_id_of(client, agent_id)
    for line in where_lines(settings, agent_id, trace_id):
        print(line, flush=True)


async def _watch_step(handle: Handle, seen: int, last: str) -> tuple[int, str]:
    page = await handle.query(AgentWorkflow.transcript, TranscriptQuery(offset=seen, limit=500))
    for i, message in enumerate(page.messages, start=seen):
        for line in render.message_lines(i, message):
            print(line, flush=True)
    view = await handle.query(AgentWorkflow.status)
    line = f"[cycle {view.cycle}] {view.status.value}" + (
        f": {view.waiting_for}" if view.waiting_for else ""
    )
    if line != last:
        print(line, flush=True)
    return seen + len(page.messages), line


async def _update(handle: Handle, update: Any, arg: Any, rejected: str) -> str:
    try:
        outcome: str = await handle.execute_update(update, arg)
    except WorkflowUpdateFailedError as err:
        raise UserError(f"{rejected}: {err.cause}") from err
    return outcome


def _check_json_object(text: str) -> None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"arguments are not valid JSON: {err.msg} at position {err.pos}") from err
    if not isinstance(value, dict):
        raise UserError("arguments must be a JSON object")


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _is_cancel(err: WorkflowFailureError) -> bool:
    from temporalio.exceptions import CancelledError

    return isinstance(err.cause, CancelledError)


COMMANDS: dict[str, Command] = {
    "worker": worker,
    "run": run,
    "result": result,
    "status": status,
    "pending": pending,
    "transcript": transcript,
    "reply": reply,
    "approve": decide,
    "reject": decide,
    "edit": decide,
    "say": say,
    "cancel": cancel,
    "ls": ls,
    "watch": watch,
    "trace": trace,
}
