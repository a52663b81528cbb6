"""The ``duragent`` command line: the parser and the entry point.

Every mistake a user can make (no server, unknown id, a bad flag value, a rejected
reply) ends in one line on stderr and a non-zero exit, never a traceback. Exit codes:
0 success, 1 the agent did not complete (failed, max cycles, cancelled, still running),
2 a usage or environment error, 141 the reader of the output went away (``| head``).
The commands themselves are in :mod:`worker.commands` and :mod:`worker.inspection`;
what arguments they accept, in :mod:`worker.cli_args`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, NoReturn

from duragent.worker import cli_args as arg
from duragent.worker.cli_args import EXIT_BROKEN_PIPE, EXIT_USAGE, LS_STATUSES

if TYPE_CHECKING:
    from temporalio.client import Client

    from duragent.worker.settings import Settings
    from duragent.worker.telemetry import TelemetrySettings

EXAMPLES = {
    "worker": "DURAGENT_TASK_QUEUE=duragent duragent worker --load mypkg.tasks,mypkg.tools",
    "run": 'duragent run "Summarise the files in the workspace" --wait\n'
    "  duragent run --task-file task.md --id report-42 --tools _read_file,_write_file\n"
    "  git diff | duragent run - --wait\n"
    '  duragent run --agent forecaster "What is the weather in Lyon?" --wait --json',
    "agents": "duragent agents --json",
    "result": "duragent result agent-3f2a1b --wait --json",
    "status": "duragent status agent-3f2a1b",
    "pending": "duragent pending agent-3f2a1b --json",
    "transcript": "duragent transcript agent-3f2a1b --offset 50 --limit 20",
    "usage": "duragent usage agent-3f2a1b --json",
    "todos": "duragent todos agent-3f2a1b",
    "watch": "duragent watch agent-3f2a1b\n  duragent watch graph-3f2a1b9c0d4e --json --offset 120",
    "trace": "duragent trace agent-3f2a1b",
    "ls": "duragent ls --status waiting_user --owner alice | head",
    "reply": 'duragent reply agent-3f2a1b --question-id call_Q1 "blue"',
    "approve": "duragent approve agent-3f2a1b call_7 --fingerprint 9c1e…",
    "reject": 'duragent reject agent-3f2a1b call_7 --message "not on production"',
    "edit": 'duragent edit agent-3f2a1b call_7 \'{"path": "a.txt", "content": "A"}\'',
    "retry": 'duragent retry agent-3f2a1b --reason "provider is back"',
    "say": 'duragent say agent-3f2a1b "use metric units"',
    "cancel": 'duragent cancel agent-3f2a1b --reason "not needed any more" --wait',
    "server": "duragent server --port 7233 --db-file .duragent/temporal.db",
    "demo": "duragent demo",
    "serve": "duragent serve --port 8080\n"
    "  DURAGENT_API_TOKEN=$(openssl rand -hex 32) duragent serve --host 0.0.0.0",
    "graph": 'duragent graph run examples/graphs/report.yaml --input \'{"topic": "tides"}\'',
    "graph validate": "duragent graph validate examples/graphs/report.yaml\n"
    "  duragent graph validate examples/graphs/headline.yaml --load examples.graphs.tasks",
    "graph show": "duragent graph show examples/graphs/report.yaml > report.mmd\n"
    "  duragent graph show graph-3f2a1b9c0d4e",
    "graph run": "duragent graph run examples/graphs/report.yaml "
    '--input \'{"topic": "tides"}\' --wait',
    "graph status": "duragent graph status graph-3f2a1b9c0d4e --json",
    "graph pending": "duragent graph pending graph-3f2a1b9c0d4e",
    "graph decide": 'duragent graph decide graph-3f2a1b9c0d4e review@1 \'{"decision": "approve"}\'',
    "graph cancel": 'duragent graph cancel graph-3f2a1b9c0d4e --reason "wrong topic"',
    "graph result": "duragent graph result graph-3f2a1b9c0d4e --wait --json",
    "graph ls": "duragent graph ls --status waiting_user",
}
GRAPH_LS_STATUSES = ("running", "waiting_user", "completed", "failed", "cancelled")
"""``workflows.graph_models.GraphStatus``'s values (a test keeps them equal)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"duragent: error: {message} (see `{self.prog} --help`)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in each option's help (when there is one worth showing); examples as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or isinstance(action, argparse._VersionAction):
            return action.help
        return super()._get_help_string(action)


def _version() -> str:
    try:
        return version("duragent")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(
        prog="duragent",
        description="Durable LLM agents on Temporal.",
        epilog="`duragent COMMAND --help` shows a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"duragent {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    worker = _command(sub, "worker", "run a worker (until SIGTERM/SIGINT)")
    worker.add_argument(
        "--load",
        type=arg.module_names,
        metavar="MODULE[,MODULE]",
        help="import these modules at start: their tools and graph tasks join the built-in "
        "ones (default: DURAGENT_LOAD)",
    )
    _add_run(sub)
    _add_inspection(sub)
    _add_human_in_the_loop(sub)
    _add_local(sub)
    _add_serve(sub)
    _add_graph(sub)
    return parser


def _command(
    sub: argparse._SubParsersAction[_Parser], name: str, text: str, *, group: str = ""
) -> _Parser:
    return sub.add_parser(
        name,
        help=text,
        description=text[0].upper() + text[1:] + ".",
        epilog=f"example:\n  {EXAMPLES[f'{group} {name}'.strip()]}",
        formatter_class=_HelpFormatter,
    )


def _add_agent_id(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("agent_id", type=arg.agent_id, help="the agent's id (its workflow id)")


def _add_run(sub: argparse._SubParsersAction[_Parser]) -> None:
    run = _command(sub, "run", "start an agent; prints its id")
    run.add_argument(
        "task", nargs="?", help="what the agent should do; `-` reads it from standard input"
    )
    run.add_argument("--task-file", metavar="PATH", help="read the task from a file (`-`: stdin)")
    run.add_argument("--id", dest="agent_id", type=arg.agent_id, help="agent id (default: new)")
    run.add_argument(
        "--agent",
        type=arg.name("--agent"),
        metavar="NAME",
        help="start a definition the workers registered (`duragent agents`); "
        "the other options override its settings",
    )
    run.add_argument("--model", type=arg.name("--model"), help="model (default: DURAGENT_MODEL)")
    run.add_argument(
        "--max-cycles", type=arg.whole_number(1), help="LLM calls at most (default: 50)"
    )
    run.add_argument(
        "--system-prompt",
        type=arg.text("--system-prompt"),
        help="agent definition (default: built in)",
    )
    run.add_argument(
        "--tools", type=arg.tool_names, help="comma-separated tool names to offer (default: all)"
    )
    run.add_argument(
        "--owner", type=arg.name("--owner"), help="who it is for (default: DURAGENT_OWNER or USER)"
    )
    run.add_argument(
        "--workspace",
        type=arg.workspace_name,
        metavar="NAME",
        help="a folder of the workspace that agents naming it share "
        "(default: the agent's own folder, named by its id)",
    )
    run.add_argument("--wait", action="store_true", help="wait and print the result")
    run.add_argument("--json", action="store_true", help="with --wait: print the result as JSON")
    agents = _command(sub, "agents", "list the agent definitions the queue's workers registered")
    agents.add_argument("--json", action="store_true", help="print JSON")


def _add_inspection(sub: argparse._SubParsersAction[_Parser]) -> None:
    for name, text in (
        ("result", "print an agent's result"),
        ("status", "print an agent's status"),
        ("pending", "print what an agent and its sub-agents wait on, and the commands that act"),
        ("transcript", "print a page of an agent's transcript"),
        ("usage", "print an agent's token usage, cycles and calls"),
        ("todos", "print an agent's todo list"),
        ("watch", "follow an agent or a graph live until it ends"),
        ("trace", "print an agent's run as a tree: cycles, LLM and tool calls"),
    ):
        cmd = _command(sub, name, text)
        _add_agent_id(cmd)
        if name != "watch":
            cmd.add_argument("--json", action="store_true", help="print JSON")
    _add_watch_options(sub.choices["watch"])
    result = sub.choices["result"]
    result.add_argument("--wait", action="store_true", help="wait until the agent ends")
    transcript = sub.choices["transcript"]
    transcript.add_argument(
        "--offset", type=arg.whole_number(0), default=0, help="first message of the page"
    )
    transcript.add_argument(
        "--limit", type=arg.whole_number(1, 500), default=50, help="messages in the page (≤ 500)"
    )
    ls = _command(sub, "ls", "list agents from Temporal visibility, one row per agent")
    ls.add_argument("--status", choices=LS_STATUSES, help="only agents in this status")
    ls.add_argument("--owner", type=arg.name("--owner"), help="only this owner's agents")
    ls.add_argument("--limit", type=arg.whole_number(1, 10_000), default=50, help="rows at most")
    ls.add_argument("--json", action="store_true", help="print JSON")


def _add_watch_options(watch: argparse.ArgumentParser) -> None:
    watch.add_argument(
        "--json", action="store_true", help="print each event as one JSON object a line"
    )
    watch.add_argument(
        "--offset",
        type=arg.whole_number(0),
        default=0,
        help="the first event to show (an offset a previous watch printed: resume there)",
    )


def _add_human_in_the_loop(sub: argparse._SubParsersAction[_Parser]) -> None:
    reply = _command(sub, "reply", "answer an agent's pending question")
    _add_agent_id(reply)
    reply.add_argument(
        "answer",
        nargs="+",
        type=arg.text("the answer", max_bytes=arg.MAX_MESSAGE_BYTES),
        help="several for a multiple choice",
    )
    reply.add_argument(
        "--question-id",
        type=arg.name("--question-id"),
        help="the question answered (default: the only one pending); a stale one is refused",
    )
    for name, text in (
        ("approve", "approve a pending tool call"),
        ("reject", "reject a pending tool call"),
        ("edit", "run a pending tool call with new arguments"),
    ):
        cmd = _command(sub, name, text)
        _add_agent_id(cmd)
        cmd.add_argument(
            "call_id", type=arg.name("the call id"), help="the tool call id (`duragent pending`)"
        )
        if name == "edit":
            cmd.add_argument("arguments", type=arg.json_object, help="new arguments, a JSON object")
        if name == "reject":
            cmd.add_argument(
                "--message",
                type=arg.text("--message", max_bytes=arg.MAX_REJECT_BYTES),
                help="what the model is told",
            )
        cmd.add_argument(
            "--fingerprint", type=arg.name("--fingerprint"), help="refuse if the arguments changed"
        )
    retry = _command(sub, "retry", "make an agent waiting on its provider try again")
    _add_agent_id(retry)
    retry.add_argument(
        "--reason", type=arg.text("--reason", max_bytes=1_000), help="kept in history"
    )
    say = _command(sub, "say", "send the agent a message for its next cycle")
    _add_agent_id(say)
    say.add_argument(
        "message",
        type=arg.text("the message", max_bytes=arg.MAX_MESSAGE_BYTES),
        help="what the agent reads",
    )
    cancel = _command(sub, "cancel", "cancel an agent")
    _add_agent_id(cancel)
    cancel.add_argument("--reason", type=arg.text("--reason"), help="kept, shown by `status`")
    cancel.add_argument("--wait", action="store_true", help="wait until it has stopped")


def _add_local(sub: argparse._SubParsersAction[_Parser]) -> None:
    server = _command(sub, "server", "run a local Temporal dev server")
    server.add_argument("--port", type=arg.whole_number(1, 65_535), default=7233, help="gRPC port")
    server.add_argument(
        "--ui-port", type=arg.whole_number(1, 65_535), default=8233, help="web UI port"
    )
    server.add_argument("--db-file", default=".duragent/temporal.db", help="SQLite file")
    _command(sub, "demo", "run the demo agent on an embedded server")


def _add_serve(sub: argparse._SubParsersAction[_Parser]) -> None:
    serve = _command(sub, "serve", "serve the HTTP API, live events and the web console")
    serve.add_argument(
        "--host",
        type=arg.name("--host"),
        default="127.0.0.1",
        help="address to listen on; any but loopback needs DURAGENT_API_TOKEN",
    )
    serve.add_argument(
        "--port", type=arg.whole_number(0, 65_535), default=8080, help="port (0: any free one)"
    )


def _add_graph(sub: argparse._SubParsersAction[_Parser]) -> None:
    graph = _command(sub, "graph", "validate, show, run and answer workflow graphs")
    verbs = graph.add_subparsers(dest="graph_command", required=True, parser_class=_Parser)

    def verb(name: str, text: str) -> _Parser:
        return _command(verbs, name, text, group="graph")

    validate = verb("validate", "check a graph file; every problem, one per line")
    validate.add_argument(
        "file", type=arg.graph_file, metavar="FILE", help="the graph, YAML or JSON"
    )
    validate.add_argument(
        "--load",
        type=arg.module_names,
        metavar="MODULE[,MODULE]",
        help="also check that task refs name tasks these modules define",
    )
    show = verb("show", "print a graph, or a run with each node's status, as Mermaid")
    show.add_argument("target", metavar="FILE|ID", help="a graph file, or a graph run's id")
    run = verb("run", "start a graph; prints its id")
    run.add_argument("file", type=arg.graph_file, metavar="FILE", help="the graph, YAML or JSON")
    run.add_argument(
        "--input",
        type=arg.json_object_of("the input"),
        metavar="JSON",
        default="{}",
        help="initial values of state fields, a JSON object",
    )
    run.add_argument(
        "--id", dest="graph_id", type=arg.graph_id, metavar="ID", help="graph id (default: new)"
    )
    run.add_argument(
        "--model", type=arg.name("--model"), help="model of agent nodes (default: DURAGENT_MODEL)"
    )
    run.add_argument(
        "--owner", type=arg.name("--owner"), help="who it is for (default: DURAGENT_OWNER or USER)"
    )
    run.add_argument("--wait", action="store_true", help="wait; print the status and output")
    for name, text in (
        ("status", "print a graph run's status: each node's, and the open gates"),
        ("pending", "print the open gates of a graph and the questions of its agents"),
        ("result", "print a graph run's status, output and state"),
    ):
        cmd = verb(name, text)
        cmd.add_argument(
            "graph_id", type=arg.graph_id, metavar="ID", help="the graph's id (its workflow id)"
        )
        cmd.add_argument("--json", action="store_true", help="print JSON")
    verbs.choices["result"].add_argument(
        "--wait", action="store_true", help="wait until the graph ends"
    )
    decide = verb("decide", "answer an open gate")
    decide.add_argument(
        "graph_id", type=arg.graph_id, metavar="ID", help="the graph holding the gate"
    )
    decide.add_argument(
        "gate_id",
        type=arg.name("the gate id"),
        metavar="GATE_ID",
        help="the gate (`duragent graph pending`)",
    )
    decide.add_argument(
        "answer",
        type=arg.json_value("the answer", max_bytes=arg.MAX_MESSAGE_BYTES),
        metavar="JSON",
        help="the answer, as JSON (text is quoted: '\"yes\"')",
    )
    cancel = verb("cancel", "cancel a graph run and its running children")
    cancel.add_argument("graph_id", type=arg.graph_id, metavar="ID", help="the graph's id")
    cancel.add_argument("--reason", type=arg.text("--reason"), help="kept in history")
    cancel.add_argument("--wait", action="store_true", help="wait until it has stopped")
    ls = verb("ls", "list graph runs from Temporal visibility, one row per graph")
    ls.add_argument(
        "--status", choices=(*GRAPH_LS_STATUSES, *arg.CLOSED_BY_TEMPORAL), help="only this status"
    )
    ls.add_argument("--owner", type=arg.name("--owner"), help="only this owner's graphs")
    ls.add_argument("--limit", type=arg.whole_number(1, 10_000), default=50, help="rows at most")
    ls.add_argument("--json", action="store_true", help="print JSON")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and check the arguments; the task of ``run`` is read here, before connecting."""
    args = parser.parse_args(argv)
    if args.command == "run":
        try:
            args.task = arg.read_task(args.task, args.task_file)
        except argparse.ArgumentTypeError as err:
            parser.exit(EXIT_USAGE, f"duragent: error: {err} (see `duragent run --help`)\n")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``duragent`` command.

    The arguments are checked before Temporal's client and the models are imported,
    so help and usage errors answer at once.
    """
    args = parse(build_parser(), argv)
    from duragent.worker.client import TemporalUnavailable
    from duragent.worker.commands import UserError
    from duragent.worker.settings import Settings, SettingsError
    from duragent.worker.telemetry import TelemetrySettings, TelemetrySettingsError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The SDK logs each failed activity attempt at WARNING with a traceback, and the HTTP
    # client each request; the CLI reports outcomes itself.
    for noisy in ("temporalio", "httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        if args.command in ("server", "demo"):
            return _local(args)
        if args.command == "serve":
            from duragent.worker.serve.main import serve

            return serve(args.host, args.port, os.environ)
        if args.command == "graph":
            from duragent.worker.graph_cli import prepare, run_local

            if _graph_is_local(args):
                return run_local(args)
            prepare(args)
        settings = Settings.from_env(os.environ)
        if args.command == "worker":
            settings = _with_modules(settings, args.load)
        telemetry = TelemetrySettings.from_env(os.environ)
        return asyncio.run(_dispatch(args, settings, telemetry))
    except (UserError, SettingsError, TelemetrySettingsError, TemporalUnavailable) as err:
        print(f"duragent: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:
        return 130


def _graph_is_local(args: argparse.Namespace) -> bool:
    """``graph validate`` and ``graph show FILE`` need no server."""
    if args.graph_command == "show":
        return arg.looks_like_file(args.target)
    return bool(args.graph_command == "validate")


def _with_modules(settings: Settings, load: tuple[str, ...] | None) -> Settings:
    """The worker's settings with ``--load`` (over ``DURAGENT_LOAD``), its modules imported.

    Imported here, before connecting, so a module that does not import is reported
    in one line whether or not a server answers. Modules are looked for in the
    current folder too (a console script's path does not hold it), as ``python -m``
    would find them.
    """
    import dataclasses

    from duragent.worker.plugin import load_modules

    if load:
        settings = dataclasses.replace(settings, load=load)
    if settings.load and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    load_modules(settings.load)
    return settings


def _reader_gone() -> int:
    # Whatever is still buffered for stdout can go nowhere; point it at /dev/null so
    # the final flush does not raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def _local(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from duragent.worker.demo import run_demo

        return asyncio.run(run_demo(dict(os.environ)))
    from duragent.worker.devserver import main as server_main
    from duragent.workflows import search_attributes as search

    flags = ["--port", str(args.port), "--ui-port", str(args.ui_port), "--db-file", args.db_file]
    for name, kind in search.DEV_SERVER.items():
        flags += ["--search-attribute", f"{name}={kind}"]
    return server_main(flags)


async def _dispatch(
    args: argparse.Namespace, settings: Settings, telemetry_settings: TelemetrySettings
) -> int:
    from temporalio.service import RPCError

    from duragent.worker.client import connect, is_not_found
    from duragent.worker.commands import COMMANDS, UserError
    from duragent.worker.telemetry import Telemetry

    # Only a worker serves metrics; every command traces, so `run` starts the trace.
    telemetry = Telemetry(
        telemetry_settings, metrics=args.command == "worker", llm_base_url=settings.llm.base_url
    )
    try:
        client: Client = await connect(os.environ, telemetry=telemetry)
        if args.command == "graph":
            from duragent.worker.graph_cli import COMMANDS as GRAPH_COMMANDS
            from duragent.worker.graph_cli import why_not_found

            try:
                return await GRAPH_COMMANDS[args.graph_command](client, args, settings)
            except RPCError as err:
                if is_not_found(err) and getattr(args, "graph_id", None):
                    raise UserError(await why_not_found(client, args)) from err
                raise
        return await COMMANDS[args.command](client, args, settings)
    except RPCError as err:
        if is_not_found(err) and getattr(args, "agent_id", None):
            raise UserError(await _why_not_found(client, args.agent_id, args.command)) from err
        raise UserError(f"Temporal refused the request: {err.message}") from err
    finally:
        # The last spans leave before the process does (the entry point skips atexit).
        await asyncio.to_thread(telemetry.shutdown)


async def _why_not_found(client: Client, agent_id: str, command: str) -> str:
    """No agent with this id, or one that has ended and takes no more input."""
    from duragent.worker.agent_ops import status_of_id

    how = await status_of_id(client, agent_id)
    if how is None:
        return f"no agent with id {agent_id!r}"
    return (
        f"agent {agent_id!r} has ended ({how}); it takes no more "
        f"input (`{command}`); see `duragent result {agent_id}`"
    )


def entry_point() -> NoReturn:
    """The console script: run :func:`main`, then leave without interpreter teardown.

    The Temporal SDK's Rust threads can touch the GIL while CPython finalizes and abort
    the process (temporalio/sdk-python issue 300), turning a clean exit into a crash with
    a non-zero status. Everything worth keeping is flushed first; then ``os._exit``.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            code = code or EXIT_BROKEN_PIPE
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    entry_point()
