"""The ``duragent`` command line: the parser and the entry point.

Every mistake a user can make (no server, unknown id, a bad flag value, a rejected
reply) ends in one line on stderr and a non-zero exit, never a traceback. Exit codes:
0 success, 1 the agent did not complete (failed, max cycles, cancelled, still running),
2 a usage or environment error. The commands themselves are in :mod:`worker.commands`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from temporalio.client import Client
from temporalio.service import RPCError

from worker.client import TemporalUnavailable, connect, is_not_found
from worker.commands import COMMANDS, EXIT_USAGE, UserError
from worker.settings import Settings, SettingsError
from worker.telemetry import Telemetry, TelemetrySettings, TelemetrySettingsError
from workflows import search_attributes as search
from workflows.models import AgentStatus


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"duragent: error: {message} (see `{self.prog} --help`)\n")


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive, _not_negative = _at_least(1), _at_least(0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="duragent", description="Durable LLM agents on Temporal.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("worker", help="run a worker (until SIGTERM/SIGINT)")
    _add_run(sub)
    _add_inspection(sub)
    _add_human_in_the_loop(sub)
    _add_local(sub)
    return parser


def _add_run(sub: argparse._SubParsersAction[_Parser]) -> None:
    run = sub.add_parser("run", help="start an agent; prints its id")
    run.add_argument("task", help="what the agent should do")
    run.add_argument("--id", dest="agent_id", help="agent id (default: generated)")
    run.add_argument("--model", help="model name (default: DURAGENT_MODEL)")
    run.add_argument("--max-cycles", type=_positive, default=50, help="LLM calls at most")
    run.add_argument("--system-prompt", help="agent definition (default: built in)")
    run.add_argument("--tools", help="comma-separated tool names to offer (default: all)")
    run.add_argument("--owner", help="who the agent is for (default: DURAGENT_OWNER or USER)")
    run.add_argument("--wait", action="store_true", help="wait and print the result")


def _add_inspection(sub: argparse._SubParsersAction[_Parser]) -> None:
    for name, text in (
        ("result", "print an agent's result"),
        ("status", "print an agent's status"),
        ("pending", "print the pending question and approvals"),
        ("transcript", "print a page of an agent's transcript"),
        ("watch", "follow an agent live until it ends"),
        ("trace", "print an agent's run as a tree: cycles, LLM and tool calls"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("agent_id")
        if name in ("result", "status", "pending", "transcript"):
            cmd.add_argument("--json", action="store_true", help="print JSON")
    result = sub.choices["result"]
    result.add_argument("--wait", action="store_true", help="wait until the agent ends")
    transcript = sub.choices["transcript"]
    transcript.add_argument("--offset", type=_not_negative, default=0)
    transcript.add_argument("--limit", type=_positive, default=50)
    ls = sub.add_parser("ls", help="list agents from Temporal visibility")
    ls.add_argument("--status", choices=[s.value for s in AgentStatus])
    ls.add_argument("--owner")
    ls.add_argument("--limit", type=_positive, default=50)


def _add_human_in_the_loop(sub: argparse._SubParsersAction[_Parser]) -> None:
    reply = sub.add_parser("reply", help="answer an agent's pending question")
    reply.add_argument("agent_id")
    reply.add_argument("answer", nargs="+", help="the answer (several for a multiple choice)")
    reply.add_argument("--question-id", help="the question answered (rejects stale replies)")
    for name, text in (
        ("approve", "approve a pending tool call"),
        ("reject", "reject a pending tool call"),
        ("edit", "run a pending tool call with new arguments"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("agent_id")
        cmd.add_argument("call_id", help="the tool call id (see `duragent pending`)")
        if name == "edit":
            cmd.add_argument("arguments", help="new arguments as a JSON object")
        if name == "reject":
            cmd.add_argument("--message", help="what the model is told")
        cmd.add_argument("--fingerprint", help="refuse if the arguments changed")
    say = sub.add_parser("say", help="send the agent a message for its next cycle")
    say.add_argument("agent_id")
    say.add_argument("message")
    cancel = sub.add_parser("cancel", help="cancel an agent")
    cancel.add_argument("agent_id")
    cancel.add_argument("--reason", help="kept with the run and shown by `status`")
    cancel.add_argument("--wait", action="store_true", help="wait until it has stopped")


def _add_local(sub: argparse._SubParsersAction[_Parser]) -> None:
    server = sub.add_parser("server", help="run a local Temporal dev server")
    server.add_argument("--port", type=_positive, default=7233)
    server.add_argument("--ui-port", type=_positive, default=8233)
    server.add_argument("--db-file", default=".duragent/temporal.db")
    sub.add_parser("demo", help="run the demo agent on an embedded server")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``duragent`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The SDK logs each failed activity attempt at WARNING with a traceback, and the HTTP
    # client each request; the CLI reports outcomes itself.
    for noisy in ("temporalio", "httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        if args.command in ("server", "demo"):
            return _local(args)
        settings = Settings.from_env(os.environ)
        telemetry = TelemetrySettings.from_env(os.environ)
        return asyncio.run(_dispatch(args, settings, telemetry))
    except (UserError, SettingsError, TelemetrySettingsError, TemporalUnavailable) as err:
        print(f"duragent: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _local(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from worker.demo import run_demo

        return asyncio.run(run_demo(dict(os.environ)))
    from worker.devserver import main as server_main

    flags = ["--port", str(args.port), "--ui-port", str(args.ui_port), "--db-file", args.db_file]
    for name, kind in search.DEV_SERVER.items():
        flags += ["--search-attribute", f"{name}={kind}"]
    return server_main(flags)


async def _dispatch(
    args: argparse.Namespace, settings: Settings, telemetry_settings: TelemetrySettings
) -> int:
    # Only a worker serves metrics; every command traces, so `run` starts the trace.
    telemetry = Telemetry(
        telemetry_settings, metrics=args.command == "worker", llm_base_url=settings.llm.base_url
    )
    try:
        client: Client = await connect(os.environ, telemetry=telemetry)
        return await COMMANDS[args.command](client, args, settings)
    except RPCError as err:
        if is_not_found(err) and hasattr(args, "agent_id"):
            raise UserError(f"no agent with id {args.agent_id!r}") from err
        raise UserError(f"Temporal refused the request: {err.message}") from err
    finally:
        # The last spans leave before the process does (the entry point skips atexit).
        await asyncio.to_thread(telemetry.shutdown)


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
