"""The ``duragent`` command line.

Every mistake a user can make (no server, unknown id, a bad flag value) ends in one
line on stderr and a non-zero exit, never a traceback. Exit codes: 0 success, 1 the
agent did not complete (failed, max cycles, cancelled, still running), 2 a usage or
environment error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from worker.client import (
    TemporalUnavailable,
    agent_handle,
    connect,
    is_not_found,
    start_agent,
)
from worker.settings import Settings, SettingsError
from workflows.agent import AgentWorkflow
from workflows.models import AgentInput, AgentResult, AgentStatus, ReplyInput

EXIT_OK, EXIT_NOT_COMPLETED, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"duragent: error: {message} (see `{self.prog} --help`)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="duragent", description="Durable LLM agents on Temporal.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("worker", help="run a worker (until SIGTERM/SIGINT)")

    run = sub.add_parser("run", help="start an agent; prints its id")
    run.add_argument("task", help="what the agent should do")
    run.add_argument("--id", dest="agent_id", help="agent id (default: generated)")
    run.add_argument("--model", help="model name (default: DURAGENT_MODEL)")
    run.add_argument("--max-cycles", type=_positive, default=50, help="LLM calls at most")
    run.add_argument("--system-prompt", help="agent definition (default: built in)")
    run.add_argument("--tools", help="comma-separated tool names to offer (default: all)")
    run.add_argument("--wait", action="store_true", help="wait and print the result")

    result = sub.add_parser("result", help="print an agent's result")
    result.add_argument("agent_id")
    result.add_argument("--wait", action="store_true", help="wait until the agent ends")
    result.add_argument("--json", action="store_true", help="print the result as JSON")

    status = sub.add_parser("status", help="print an agent's current status")
    status.add_argument("agent_id")

    reply = sub.add_parser("reply", help="answer an agent's pending question")
    reply.add_argument("agent_id")
    reply.add_argument("answer")
    reply.add_argument("--question-id", help="the question answered (rejects stale replies)")

    server = sub.add_parser("server", help="run a local Temporal dev server")
    server.add_argument("--port", type=_positive, default=7233)
    server.add_argument("--ui-port", type=_positive, default=8233)
    server.add_argument("--db-file", default=".duragent/temporal.db")

    sub.add_parser("demo", help="run the demo agent on an embedded server")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``duragent`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The SDK logs each failed activity attempt at WARNING with a traceback; the CLI
    # reports outcomes itself.
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        if args.command == "server":
            from worker.devserver import main as server_main

            port, ui_port = str(args.port), str(args.ui_port)
            return server_main(["--port", port, "--ui-port", ui_port, "--db-file", args.db_file])
        if args.command == "demo":
            from worker.demo import run_demo

            return asyncio.run(run_demo(dict(os.environ)))
        settings = Settings.from_env(os.environ)
        return asyncio.run(_dispatch(args, settings))
    except (UserError, SettingsError, TemporalUnavailable) as err:
        print(f"duragent: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    commands: dict[str, Callable[[Client, argparse.Namespace, Settings], Awaitable[int]]] = {
        "worker": _worker,
        "run": _run,
        "result": _result,
        "status": _status,
        "reply": _reply,
    }
    client = await connect(os.environ)
    try:
        return await commands[args.command](client, args, settings)
    except RPCError as err:
        if is_not_found(err):
            raise UserError(f"no agent with id {args.agent_id!r}") from err
        raise UserError(f"Temporal refused the request: {err.message}") from err


async def _worker(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    from worker.main import run_worker

    if not settings.llm.configured:
        raise UserError(
            "no LLM configured: set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL "
            "(any OpenAI-compatible server, e.g. vLLM, Ollama, LiteLLM)"
        )
    await run_worker(client, settings)
    return EXIT_OK


async def _run(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    tools = [t.strip() for t in args.tools.split(",") if t.strip()] if args.tools else None
    input = AgentInput(
        task=args.task,
        model=args.model or settings.model,
        system_prompt=args.system_prompt,
        tools=tools,
        max_cycles=args.max_cycles,
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
    return await _print_result(client, handle.id, as_json=False)


async def _result(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    handle = agent_handle(client, args.agent_id)
    # Describe, not query: a closed run's result is in history and needs no worker.
    description = await handle.describe()
    if not args.wait and description.status is WorkflowExecutionStatus.RUNNING:
        view = await handle.query(AgentWorkflow.status)
        print(f"agent {args.agent_id} is {view.status.value}; use --wait to wait for its end")
        return EXIT_NOT_COMPLETED
    return await _print_result(client, args.agent_id, as_json=args.json)


async def _print_result(client: Client, agent_id: str, *, as_json: bool) -> int:
    try:
        result = await agent_handle(client, agent_id).result()
    except WorkflowFailureError as err:
        print(f"status: failed\nerror: {err.cause}")
        return EXIT_NOT_COMPLETED
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        print(render_result(result))
    return EXIT_OK if result.status is AgentStatus.COMPLETED else EXIT_NOT_COMPLETED


def render_result(result: AgentResult) -> str:
    """A finished run as a few readable lines."""
    lines = [
        f"status: {result.status.value}",
        f"cycles: {result.cycles}  tokens: {result.usage.input_tokens} in / "
        f"{result.usage.output_tokens} out",
    ]
    if result.files:
        lines.append("files: " + ", ".join(result.files))
    if result.answer is not None:
        lines.append(f"answer: {result.answer}")
    if result.error is not None:
        lines.append(f"error: {result.error}")
    return "\n".join(lines)


async def _status(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    view = await agent_handle(client, args.agent_id).query(AgentWorkflow.status)
    print(json.dumps(view.model_dump(mode="json"), indent=2))
    return EXIT_OK


async def _reply(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    handle = agent_handle(client, args.agent_id)
    try:
        question_id = await handle.execute_update(
            AgentWorkflow.reply, ReplyInput(answer=args.answer, question_id=args.question_id)
        )
    except WorkflowUpdateFailedError as err:
        raise UserError(f"reply rejected: {err.cause}") from err
    print(f"reply accepted for question {question_id}")
    return EXIT_OK


def entry_point() -> NoReturn:
    """The console script: run :func:`main`, then leave without interpreter teardown.

    The Temporal SDK's Rust threads can touch the GIL while CPython finalizes and abort
    the process (temporalio/sdk-python issue 300), turning a clean exit into a crash with
    a non-zero status. Everything worth keeping is flushed first; then ``os._exit``.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    entry_point()
