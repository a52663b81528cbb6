"""The tracer provider, the root span of an agent, and finding an agent's trace.

The provider is the Temporal SDK's replay-safe one (``create_tracer_provider``): inside
workflows its span ids come from the workflow's deterministic random and spans that end
during replay are dropped. Spans leave through a batch processor to an OTLP/gRPC
collector, or to stdout as JSON with ``OTEL_TRACES_EXPORTER=console``.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from temporalio.api.history.v1 import HistoryEvent
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider, create_tracer_provider
from temporalio.converter import PayloadConverter

from duragent.worker.telemetry._settings import Sampler, TracesExporter, TracingSettings
from duragent.workflows.models import AgentInput

TRACER_NAME = "duragent.client"
# The header the SDK's OpenTelemetry interceptor carries the W3C context in.
TRACE_HEADER = "_tracer-data"


def build_tracer_provider(
    settings: TracingSettings, *, console: TextIO | None = None
) -> ReplaySafeTracerProvider | None:
    """The replay-safe tracer provider the settings ask for; ``None`` when tracing is off.

    Args:
        settings: Exporter, endpoint, resource and sampling.
        console: Where the console exporter writes (stdout when not given).
    """
    if not settings.enabled:
        return None
    resource = Resource(
        {
            **settings.resource_attributes,
            "service.name": settings.service_name,
            "service.version": _version(),
        }
    )
    # shutdown_on_exit=False: the process shuts it down itself, after the last span,
    # and an atexit hook per provider would pile up in a test session.
    provider = create_tracer_provider(
        sampler=_sampler(settings), resource=resource, shutdown_on_exit=False
    )
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings, console)))
    return provider


def _exporter(settings: TracingSettings, console: TextIO | None) -> SpanExporter:
    if settings.exporter is TracesExporter.CONSOLE:
        return ConsoleSpanExporter(out=console or sys.stdout)
    # Imported only when traces go out over OTLP: gRPC costs an untraced worker 2.5 MiB.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    scheme = urllib.parse.urlsplit(settings.endpoint).scheme
    insecure = settings.insecure if settings.insecure is not None else scheme == "http"
    return OTLPSpanExporter(
        endpoint=settings.endpoint, insecure=insecure, headers=dict(settings.headers) or None
    )


def _sampler(settings: TracingSettings) -> sampling.Sampler:
    ratio = sampling.TraceIdRatioBased(settings.sampler_ratio)
    return {
        Sampler.ALWAYS_ON: sampling.ALWAYS_ON,
        Sampler.ALWAYS_OFF: sampling.ALWAYS_OFF,
        Sampler.TRACE_ID_RATIO: ratio,
        Sampler.PARENT_BASED_ALWAYS_ON: sampling.ParentBased(sampling.ALWAYS_ON),
        Sampler.PARENT_BASED_ALWAYS_OFF: sampling.ParentBased(sampling.ALWAYS_OFF),
        Sampler.PARENT_BASED_TRACE_ID_RATIO: sampling.ParentBased(ratio),
    }[settings.sampler]


def _version() -> str:
    try:
        return importlib.metadata.version("duragent")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@contextmanager
def agent_span(
    tracer: Tracer, agent_id: str, input: AgentInput, *, task_queue: str, content: bool
) -> Iterator[None]:
    """The root span ``agent <id>`` around the client call that starts an agent.

    The SDK's client interceptor sends the current context with the start request, so
    every span of every run of the agent joins this trace.

    Args:
        tracer: The client's tracer (a no-op one when tracing is off).
        agent_id: The agent's id (its workflow id).
        input: The agent's input: model and limits become attributes.
        task_queue: The task queue the agent starts on.
        content: Also record the task text (a prompt: off by default).
    """
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.conversation.id": agent_id,
        "gen_ai.request.model": input.model,
        "duragent.agent.id": agent_id,
        "duragent.task_queue": task_queue,
        "duragent.max_cycles": input.max_cycles,
    }
    if content:
        attributes["duragent.task"] = input.task
    with tracer.start_as_current_span(
        f"agent {agent_id}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except Exception as err:
            span.record_exception(err)
            span.set_status(Status(StatusCode.ERROR, f"{type(err).__name__}: {err}"))
            raise


def trace_id_from_start_event(event: HistoryEvent) -> str | None:
    """The trace id an agent's first run was started with, from its start event.

    Args:
        event: The ``WorkflowExecutionStarted`` event of the agent's first run.

    Returns:
        The 32 hex digits of the trace id, or ``None`` when it was started untraced.
    """
    header = event.workflow_execution_started_event_attributes.header.fields.get(TRACE_HEADER)
    if header is None:
        return None
    try:
        carrier = PayloadConverter.default.from_payloads([header])[0]
        parent = str(carrier.get("traceparent", "")) if isinstance(carrier, dict) else ""
    except (ValueError, json.JSONDecodeError):
        return None
    parts = parent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
