"""Replay-safe telemetry that workflow code calls: spans per cycle, compaction, graph node.

Import it through ``workflow.unsafe.imports_passed_through()``: it must share the
process's OpenTelemetry state with the worker, not get a sandboxed copy.

Spans come from the process's tracer provider when that is the Temporal SDK's
``ReplaySafeTracerProvider`` (``worker.telemetry`` installs one when tracing is on).
With it, span ids come from the workflow's deterministic random, a span opened while
history is replayed starts at the workflow's time, and a span that ends during replay
is dropped. So after a worker restart the cycle that was open is opened again with
the same span id and exported once, by the worker that finishes it; cycles that had
already ended are not exported a second time. Without such a provider every helper is
a no-op, so the replayer and untraced workers need nothing.

An evicted run's coroutines may be closed outside the workflow's event loop (by the
garbage collector, on any thread); the span helpers then call no workflow API and leave
the span open, for the worker that replays the run to end.

Counters go through ``workflow.metric_meter()``, which records nothing during replay.
The run-level counters (started, finished, continue-as-new) need no call from the
workflow: the worker's interceptor records them (see ``worker.telemetry``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import Token

import opentelemetry.context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from temporalio import workflow
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider
from temporalio.exceptions import ActivityError

TRACER_NAME = "duragent.workflow"

CYCLES_METRIC = "duragent_cycles"
COMPACTIONS_METRIC = "duragent_compactions"
GRAPH_NODES_METRIC = "duragent_graph_node_runs"
GRAPH_NODE_DURATION_METRIC = "duragent_graph_node_duration_seconds"


@contextmanager
def cycle_span(cycle: int) -> Iterator[Span]:
    """Open the span ``cycle N`` for one cycle and count the cycle.

    The LLM call, the tool calls and any compaction scheduled inside the block become
    its children. Call it outside queries and update validators.

    Args:
        cycle: The cycle's number, counted across continue-as-new.

    Yields:
        The span, for extra attributes (a non-recording span when tracing is off).
    """
    _count(CYCLES_METRIC, "Agent cycles started: one LLM turn and its tool calls each")
    with _span(f"cycle {cycle}", {"duragent.cycle": cycle}) as span:
        yield span


@contextmanager
def compaction_span(*, forced: bool) -> Iterator[Span]:
    """Open the span ``compaction`` around one memory compaction and count it.

    Args:
        forced: True when the model asked for it or the context overflowed; False when
            the token threshold triggered it.

    Yields:
        The span, e.g. to record ``duragent.compaction.messages`` once known.
    """
    _count(COMPACTIONS_METRIC, "Memory compactions of agent transcripts")
    with _span("compaction", {"duragent.compaction.forced": forced}) as span:
        yield span


@contextmanager
def node_span(graph: str, node: str, kind: str, visit: int) -> Iterator[Span]:
    """Open the span ``node NAME`` around one visit of a graph's node.

    The node's child agents and graphs, and its activities, become its children (the
    child workflows carry the span's context), so an agent's cycles sit below its node.

    Yields:
        The span (a non-recording span when tracing is off).
    """
    attributes: dict[str, AttributeValue] = {
        "duragent.graph.name": graph,
        "duragent.graph.node": node,
        "duragent.graph.kind": kind,
        "duragent.graph.visit": visit,
    }
    with _span(f"node {node}", attributes) as span:
        yield span


def node_finished(graph: str, node: str, kind: str, status: str, seconds: float) -> None:
    """Count a node visit by how it ended, and record how long it took (workflow time).

    Labels are the graph's and the node's names (as many as the specs declare), the
    node's kind and its status (``done``, ``failed``, ``skipped``).
    """
    labels = {"graph": graph, "node": node, "kind": kind, "status": status}
    meter = workflow.metric_meter().with_additional_attributes(labels)
    meter.create_counter(GRAPH_NODES_METRIC, "Graph node visits, by how they ended").add(1)
    meter.create_histogram_float(
        GRAPH_NODE_DURATION_METRIC, "How long graph node visits took", "s"
    ).record(seconds)


def _count(name: str, description: str) -> None:
    workflow.metric_meter().create_counter(name, description).add(1)


@contextmanager
def _span(name: str, attributes: Mapping[str, AttributeValue]) -> Iterator[Span]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, ReplaySafeTracerProvider):
        yield trace.INVALID_SPAN
        return
    # The workflow instance is the event loop; workflow APIs answer only inside it.
    loop = asyncio.get_running_loop()
    span = provider.get_tracer(TRACER_NAME).start_span(name, attributes=attributes)
    context = trace.set_span_in_context(span)
    token = opentelemetry.context.attach(context)
    try:
        yield span
    except GeneratorExit:
        # An evicted run's coroutine closed by the garbage collector, on whatever thread
        # it runs: no workflow loop there, or another workflow's. Workflow APIs would
        # raise (an unraisable error, logged on every eviction) or answer for that other
        # run. The span stays open: the worker that replays the run ends it.
        raise
    except BaseException as err:
        if _in_loop(loop):
            _end_on_error(span, err)
        raise
    else:
        span.end()
    finally:
        _detach(context, token)


def _end_on_error(span: Span, err: BaseException) -> None:
    """End ``span`` if ``err`` ends the run's part it covers; leave it open otherwise."""
    if isinstance(err, asyncio.CancelledError):
        # A cancel of the run ends the span; a cancel that is the worker evicting the
        # run from its cache must not (the next worker replays and ends it).
        if workflow.cancellation_reason() is not None:
            span.set_attribute("duragent.cancelled", True)
            span.end()
    elif isinstance(err, workflow.ContinueAsNewError):
        span.end()
    elif workflow.is_failure_exception(err):
        # Only an error that fails the run ends the span here; any other exception
        # fails the workflow task, which is retried and ends the span then.
        end_with_error(span, err)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the code runs in ``loop`` (the workflow's), not elsewhere after eviction."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop at all: a collector run from plain code
        return False


def end_with_error(span: Span, err: BaseException) -> None:
    """Record ``err`` on ``span``, mark it failed, and end it.

    Args:
        span: The span to end.
        err: What went wrong; for an activity error, its cause is what a reader needs.
    """
    cause = err.cause if isinstance(err, ActivityError) and err.cause is not None else err
    span.record_exception(cause)
    span.set_status(Status(StatusCode.ERROR, f"{type(cause).__name__}: {cause}"))
    span.end()


def _detach(context: Context, token: Token[Context]) -> None:
    # A workflow's coroutine can be finalised in another contextvars.Context (an evicted
    # run's leftovers); there is nothing to detach then, and OpenTelemetry's own detach
    # would log an error for it.
    if opentelemetry.context.get_current() is context:
        try:
            token.var.reset(token)
        except ValueError:
            pass
