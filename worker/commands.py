"""What each ``duragent`` subcommand does, once connected to Temporal.

Each command takes the client, the parsed arguments and the settings, prints what a
person needs, and returns the exit code. Mistakes become :class:`UserError`, which the
entry point prints as one line. The commands that only read are in
:mod:`worker.inspection`; the ones here start, answer, steer and stop agents.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client, WorkflowHandle

from duragent.worker.agent_ops import (
    Ended,
    UserError,
    cancel_agent,
    send_decision,
    send_reply,
    send_update,
    start,
    steer,
)
from duragent.worker.agents import CONTROL_TOOLS
from duragent.worker.agents_cli import agents, definition_input
from duragent.worker.cli_args import EXIT_NOT_COMPLETED, EXIT_OK, EXIT_USAGE, unknown_tools
from duragent.worker.client import agent_handle, ensure_search_attributes
from duragent.worker.inspection import (
    ls,
    note_missing_worker,
    pending,
    print_result,
    result,
    status,
    todos,
    trace,
    transcript,
    usage,
)
from duragent.worker.settings import Settings
from duragent.worker.watch import watch
from duragent.workflows.models import (
    AgentInput,
    ApprovalAction,
    ApprovalDecision,
    RetryInput,
)

Command = Callable[[Client, argparse.Namespace, Settings], Awaitable[int]]
RETRY_UPDATE = "retry"
"""The update that makes an agent waiting on its provider try its LLM call again."""


async def worker(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Run a worker until SIGTERM/SIGINT."""
    from duragent.worker.main import run_worker

    if not settings.llm_configured:
        raise UserError(
            "no LLM configured: set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL "
            "(any OpenAI-compatible server, e.g. vLLM, Ollama, LiteLLM)"
        )
    await ensure_search_attributes(client)
    await run_worker(client, settings)
    return EXIT_OK


async def run(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Start an agent, print its id, and with ``--wait`` its result."""
    for name in unknown_tools(args.tools):
        print(
            f"duragent: note: {name!r} is no built-in tool; the agent fails at its start "
            "unless its worker registers a tool of that name",
            file=sys.stderr,
        )
    # The control tools come with any list: without _task_finish a run cannot end.
    tools = None if args.tools is None else list(dict.fromkeys([*CONTROL_TOOLS, *args.tools]))
    given = {
        "system_prompt": args.system_prompt,
        "tools": tools,
        "max_cycles": args.max_cycles,
        "owner": args.owner or settings.owner,
        "workspace": args.workspace,
    }
    if args.agent is not None:
        input = await definition_input(
            client, settings, args.agent, args.task, model=args.model, **given
        )
    else:
        given = {k: v for k, v in given.items() if v is not None}
        input = AgentInput(task=args.task, model=args.model or settings.model, **given)
    handle = await start(client, input, task_queue=settings.task_queue, agent_id=args.agent_id)
    print(handle.id, flush=True)
    if not args.wait:
        return EXIT_OK
    return await print_result(
        client, agent_handle(client, handle.id), as_json=args.json, task_queue=settings.task_queue
    )


async def reply(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Answer a pending question (update: the answer is checked before it is accepted)."""
    answer: str | list[str] = args.answer[0] if len(args.answer) == 1 else args.answer
    accepted = await send_reply(
        client, args.agent_id, answer, args.question_id, slow=_notice_missing_worker
    )
    print(f"reply accepted for question {accepted}")
    return EXIT_OK


async def decide(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Approve, reject or edit a pending tool call."""
    decision = ApprovalDecision(
        call_id=args.call_id,
        action=ApprovalAction(args.command),
        message=getattr(args, "message", None),
        arguments=getattr(args, "arguments", None),
        fingerprint=getattr(args, "fingerprint", None),
    )
    call_id = await send_decision(client, args.agent_id, decision, slow=_notice_missing_worker)
    print(f"{decision.action.value} recorded for call {call_id}")
    return EXIT_OK


async def retry(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Tell an agent whose provider retries ran out to try its LLM call again."""
    handle = agent_handle(client, args.agent_id)
    retry = RetryInput(reason=args.reason)
    await send_update(client, handle, RETRY_UPDATE, retry, slow=_notice_missing_worker)
    print(f"retry requested for {args.agent_id}; `duragent watch {args.agent_id}` follows it")
    return EXIT_OK


async def say(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Send a message the agent reads before its next LLM call."""
    await steer(client, args.agent_id, args.message)
    print("message queued; the agent reads it before its next LLM call")
    return EXIT_OK


async def cancel(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Request cancellation; with ``--wait``, wait until the run has stopped."""
    handle = await cancel_agent(client, args.agent_id, args.reason or "cancelled from the CLI")
    print(f"cancellation requested for {args.agent_id}")
    if args.wait:
        await print_result(client, handle, as_json=False)
    return EXIT_OK


async def _notice_missing_worker(
    client: Client, waiting: asyncio.Future[Any], handle: WorkflowHandle[Any, Any]
) -> None:
    # An update waits for a worker to run its validator: say so when none polls.
    await note_missing_worker(client, waiting, handle=handle)


COMMANDS: dict[str, Command] = {
    "worker": worker,
    "run": run,
    "agents": agents,
    "result": result,
    "status": status,
    "pending": pending,
    "transcript": transcript,
    "usage": usage,
    "todos": todos,
    "reply": reply,
    "approve": decide,
    "reject": decide,
    "edit": decide,
    "retry": retry,
    "say": say,
    "cancel": cancel,
    "ls": ls,
    "watch": watch,
    "trace": trace,
}

__all__ = ["COMMANDS", "EXIT_NOT_COMPLETED", "EXIT_OK", "EXIT_USAGE", "Ended", "UserError"]
