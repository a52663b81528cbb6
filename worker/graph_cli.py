"""The ``duragent graph`` commands: check, draw, start, follow and answer workflow graphs.

``validate`` and ``show FILE`` read a graph file and need no server. The others talk
to Temporal: ``run`` starts a ``GraphWorkflow``; ``status``, ``pending`` and ``show ID``
ask its queries (``status``, ``pending``; a worker answers); ``decide`` sends its
``decide`` update (the workflow's validator refuses a stale gate or an answer outside
the gate's schema, and the CLI prints why); ``cancel``, ``result`` and ``ls`` need only
Temporal. Mistakes are :class:`~worker.inspection.UserError`: one line, exit code 2.
What they print is drawn by :mod:`worker.graph_render`; what a graph tree waits on is
walked by :mod:`worker.graph_pending`.

A graph file may name child graphs by file (``graph: {file: review.yaml}``); they are
read relative to the file naming them and inlined here, before validation, so the run's
input holds the whole graph and its fingerprint covers it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from duragent.activities.tasks import TaskRegistry
from duragent.worker.agent_ops import UserError, closed_by, status_of_id
from duragent.worker.cli_args import EXIT_NOT_COMPLETED, EXIT_OK, EXIT_USAGE, graph_file
from duragent.worker.client import is_not_found, workflow_pollers
from duragent.worker.graph_ops import (
    GraphHandle,
    ask,
    cancel_graph,
    described_graph,
    graph_pending,
    graph_state,
    input_problems,
    run_spec,
    send_gate_answer,
    start_graph,
)
from duragent.worker.graph_render import mermaid, status_lines
from duragent.worker.inspection import note_missing_worker, print_closed, print_json
from duragent.worker.listing import list_graphs
from duragent.worker.plugin import load_modules
from duragent.worker.settings import Settings
from duragent.workflows.graph_load import load_graph
from duragent.workflows.graph_models import (
    GateDecision,
    GraphInput,
    GraphResult,
    GraphStatus,
    GraphView,
)
from duragent.workflows.graph_spec import GraphSpec, Node, SubgraphNodeSpec
from duragent.workflows.graph_validate import GraphSpecError, Problem, validate

Command = Callable[[Client, argparse.Namespace, Settings], Awaitable[int]]

MAX_FILE_DEPTH: Final = 16
"""Graph files naming graph files, at most this deep (a loop is reported before)."""
STATE_TIMEOUT: Final = timedelta(seconds=5)
"""How long ``result`` waits for a failed graph's state before printing without it."""


# --- reading graph files ---------------------------------------------------------------


def read_graph(path: str | Path) -> GraphSpec:
    """A graph file as a spec, with the child graphs it names by file inlined.

    Raises:
        GraphSpecError: Every problem found loading the file and the files it names.
    """
    return _read(Path(path), ())


def _read(path: Path, stack: tuple[Path, ...]) -> GraphSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        why = err.strerror if isinstance(err, OSError) else "not valid UTF-8"
        problem = Problem(where="", message=f"cannot read {path}: {why}")
        raise GraphSpecError([problem], str(path)) from None
    spec = load_graph(text, source=str(path))
    return _inline(spec, path.parent, (*stack, path.resolve()))


def _inline(spec: GraphSpec, base: Path, stack: tuple[Path, ...]) -> GraphSpec:
    """``spec`` with every ``graph: {file: ...}`` node's file read and put in its place."""
    problems: list[Problem] = []
    nodes: dict[str, Node] = {}
    for name, node in spec.nodes.items():
        sub = node.graph
        nodes[name] = node
        if sub is None:
            continue
        where = f"nodes.{name}.graph"
        try:
            child = _child(sub, base, stack)
        except GraphSpecError as err:
            if sub.file is None:
                problems += [
                    Problem(where=f"{where}.spec.{p.where}", message=p.message)
                    for p in err.problems
                ]
            else:
                problems += [
                    Problem(where=f"{where}.file", message=f"{sub.file}: {p}") for p in err.problems
                ]
            continue
        inlined = SubgraphNodeSpec(spec=child, input=sub.input, output=sub.output)
        nodes[name] = node.model_copy(update={"graph": inlined})
    if problems:
        raise GraphSpecError(problems, spec.name)
    return spec.model_copy(update={"nodes": nodes})


def _child(sub: SubgraphNodeSpec, base: Path, stack: tuple[Path, ...]) -> GraphSpec:
    if sub.spec is not None:
        return _inline(sub.spec, base, stack)
    assert sub.file is not None
    path = base / sub.file
    if path.resolve() in stack:
        chain = " -> ".join([*(p.name for p in stack), path.name])
        raise GraphSpecError([Problem(where="", message=f"the file names itself ({chain})")])
    if len(stack) >= MAX_FILE_DEPTH:
        message = f"graph files nest more than {MAX_FILE_DEPTH} deep"
        raise GraphSpecError([Problem(where="", message=message)])
    return _read(path, stack)


def _problems_line(file: str, problems: Sequence[Problem]) -> str:
    if len(problems) == 1:
        return f"the graph {file} has a problem: {problems[0]}"
    return (
        f"the graph {file} has {len(problems)} problems, the first: {problems[0]}; "
        f"see them all with `duragent graph validate {file}`"
    )


def checked_graph(file: str, *, known_tasks: set[str] | None = None) -> GraphSpec:
    """The graph of ``file``, sound, or a one-line :class:`UserError`."""
    try:
        spec = read_graph(file)
    except GraphSpecError as err:
        raise UserError(_problems_line(file, err.problems)) from None
    problems = validate(spec, known_tasks=known_tasks)
    if problems:
        raise UserError(_problems_line(file, problems))
    return spec


def known_tasks(modules: Sequence[str]) -> set[str]:
    """The task refs the modules define (imported as a worker would load them).

    Raises:
        ModuleLoadError: A module does not import.
    """
    return set(TaskRegistry(load_modules(modules).tasks).refs)


# --- the commands that need no server --------------------------------------------------


def run_local(args: argparse.Namespace) -> int:
    """``graph validate FILE`` and ``graph show FILE``."""
    if args.graph_command == "show":
        try:
            graph_file(args.target)
            spec = read_graph(args.target)
        except argparse.ArgumentTypeError as err:
            raise UserError(str(err)) from None
        except GraphSpecError as err:
            raise UserError(_problems_line(args.target, err.problems)) from None
        print(mermaid(spec))
        return EXIT_OK
    return validate_file(args.file, args.load)


def validate_file(file: str, load: Sequence[str] | None) -> int:
    """Print every problem of a graph file, one per line, or ``ok: NAME (FINGERPRINT)``."""
    if load and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `duragent worker --load` finds modules
    known = known_tasks(load) if load else None
    try:
        spec = read_graph(file)
    except GraphSpecError as err:
        return _print_problems(err.problems)
    problems = validate(spec, known_tasks=known)
    if problems:
        return _print_problems(problems)
    print(f"ok: {spec.name} ({spec.fingerprint()[:12]})")
    return EXIT_OK


def _print_problems(problems: Sequence[Problem]) -> int:
    for problem in problems:
        print(f"{problem.where or '(graph)'}: {problem.message}")
    return EXIT_USAGE


# --- starting --------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> None:
    """Read and check what ``graph run`` starts, before connecting: ``args.spec``.

    Raises:
        UserError: The graph has problems, or ``--input`` does not fit its state.
    """
    if args.graph_command != "run":
        return
    args.spec = checked_graph(args.file)
    args.values = json.loads(args.input)
    problems = input_problems(args.spec, args.values)
    if problems:
        raise UserError("; ".join(problems))


async def run(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Start a graph (``prepare`` read it), print its id, with ``--wait`` its outcome."""
    input = GraphInput(
        spec=args.spec,
        input=args.values,
        owner=args.owner or settings.owner,
        model=args.model or settings.model,
    )
    queue = settings.task_queue
    handle = await start_graph(client, input, task_queue=queue, graph_id=args.graph_id)
    print(handle.id, flush=True)
    if not args.wait:
        return EXIT_OK
    return await _print_result(client, handle, as_json=False, task_queue=settings.task_queue)


# --- asking a graph --------------------------------------------------------------------


async def why_not_found(client: Client, args: argparse.Namespace) -> str:
    """No graph with this id, or one that has ended and takes no more input."""
    graph_id = args.graph_id
    how = await status_of_id(client, graph_id)
    if how is None:
        return f"no graph with id {graph_id!r}"
    return (
        f"graph {graph_id!r} has ended ({how}); it takes no more "
        f"input (`graph {args.graph_command}`); see `duragent graph result {graph_id}`"
    )


# --- status and show -------------------------------------------------------------------


async def status(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print the ``status`` query: the run, each node, the open gates."""
    state = await graph_state(client, args.graph_id)
    if state.view is None:
        hint = f"; `duragent graph result {args.graph_id}` reads its result from history"
        why = state.why or ""
        print_closed("graph", args.graph_id, state.description, why, as_json=args.json, hint=hint)
    elif args.json:
        print_json(state.json())
    else:
        print(status_lines(args.graph_id, state.view, status=state.shown))
    return EXIT_OK


async def show(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print a run's graph as Mermaid, each node with its status and visits."""
    try:
        handle, _ = await described_graph(client, args.target)
    except RPCError as err:
        if is_not_found(err):
            raise UserError(f"no graph with id {args.target!r} (and no such file)") from err
        raise
    spec = await run_spec(client, handle)
    try:
        view = await ask(client, handle, "status", GraphView)
    except UserError as err:
        print(f"duragent: note: node statuses unavailable ({err})", file=sys.stderr)
        print(mermaid(spec))
        return EXIT_OK
    print(mermaid(spec, {node.name: node for node in view.nodes}))
    return EXIT_OK


# --- pending and decide ----------------------------------------------------------------


async def pending(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print the open gates of a graph and its child graphs, and its agents' questions."""
    found = await graph_pending(client, args.graph_id)
    if isinstance(found, str):
        if args.json:
            print_json({"gates": [], "questions": [], "approvals": [], "ended": found})
        else:
            print(f"nothing pending: graph {args.graph_id} has ended ({found})")
        return EXIT_OK
    if args.json:
        print_json(found.json())
    else:
        print(found.lines())
    return EXIT_OK


async def decide(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Answer an open gate (the ``decide`` update; the workflow checks it first)."""
    decision = GateDecision(gate_id=args.gate_id, answer=json.loads(args.answer))
    gate_id = await send_gate_answer(client, args.graph_id, decision, slow=_notice_missing_worker)
    print(f"answer recorded for gate {gate_id}")
    return EXIT_OK


# --- cancel and result -----------------------------------------------------------------


async def cancel(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Request cancellation (running children are cancelled with it)."""
    reason = args.reason or "cancelled from the CLI"
    handle = await cancel_graph(client, args.graph_id, reason)
    print(f"cancellation requested for {args.graph_id}")
    if args.wait:
        await _print_result(client, handle, as_json=False)
    return EXIT_OK


async def result(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Print a finished graph's status, output and state (or its status while it runs)."""
    handle, description = await described_graph(client, args.graph_id)
    running = description.status is WorkflowExecutionStatus.RUNNING
    if running and not args.wait:
        view = await ask(client, handle, "status", GraphView)
        if args.json:
            print_json({"status": view.status.value, "running": True})
        else:
            print(f"graph {args.graph_id} is {view.status.value}; use --wait to wait for its end")
        return EXIT_NOT_COMPLETED
    queue = description.task_queue if running else None
    return await _print_result(client, handle, as_json=args.json, task_queue=queue)


async def _print_result(
    client: Client, handle: GraphHandle, *, as_json: bool, task_queue: str | None = None
) -> int:
    """Wait for the run's end and print it; the exit code says whether it completed."""
    waiting = asyncio.ensure_future(handle.result())
    if task_queue is not None:
        await note_missing_worker(client, waiting, task_queue=task_queue)
    try:
        outcome: GraphResult = await waiting
    except WorkflowFailureError as err:
        shown = closed_by(err)
        state = await _last_state(client, handle)
        _print_outcome(shown, None, state, str(err.cause), as_json=as_json)
        return EXIT_NOT_COMPLETED
    _print_outcome(
        outcome.status.value, outcome.output, outcome.state, outcome.error, as_json=as_json
    )
    return EXIT_OK if outcome.status is GraphStatus.COMPLETED else EXIT_NOT_COMPLETED


def _print_outcome(
    status: str, output: Any, state: Mapping[str, Any] | None, error: str | None, *, as_json: bool
) -> None:
    if as_json:
        print_json({"status": status, "output": output, "state": state or {}, "error": error})
        return
    print(f"status: {status}")
    if status == GraphStatus.COMPLETED.value or output is not None:
        print("output: " + json.dumps(output, indent=2, ensure_ascii=False))
    if error:
        print(f"error: {error}")


async def _last_state(client: Client, handle: GraphHandle) -> dict[str, Any] | None:
    """A closed run's last state, when a worker is there to answer; else ``None``."""
    try:
        queue = (await handle.describe()).task_queue
        if not await workflow_pollers(client, queue):
            return None
        state: dict[str, Any] = await handle.query(
            "state", result_type=dict, rpc_timeout=STATE_TIMEOUT
        )
    except (RPCError, WorkflowQueryFailedError):
        return None
    return state


async def _notice_missing_worker(
    client: Client, waiting: asyncio.Future[Any], handle: WorkflowHandle[Any, Any]
) -> None:
    # An update waits for a worker to run its validator: say so when none polls.
    await note_missing_worker(client, waiting, handle=handle)


# --- listing ---------------------------------------------------------------------------


async def ls(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """List graph runs from Temporal visibility (no graph is queried)."""
    rows = await list_graphs(client, args.status, args.owner, args.limit)
    if args.json:
        print_json(rows)
        return EXIT_OK
    print(f"{'GRAPH':<36} {'NAME':<20} {'STATUS':<17} STARTED")
    for row in rows:
        print(f"{row['id']:<36} {row['graph']:<20} {row['status']:<17} {row['started']}")
    return EXIT_OK


COMMANDS: dict[str, Command] = {
    "run": run,
    "status": status,
    "pending": pending,
    "decide": decide,
    "cancel": cancel,
    "result": result,
    "ls": ls,
    "show": show,
}
"""The ``graph`` commands that talk to Temporal, by name (``validate`` and ``show FILE``
do not: :func:`run_local`)."""

__all__ = [
    "COMMANDS",
    "checked_graph",
    "input_problems",
    "read_graph",
    "run_local",
    "start_graph",
    "validate_file",
    "why_not_found",
]
