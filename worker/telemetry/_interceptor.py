"""The interceptor that observes agents without a line of telemetry in their code.

On the activity side it wraps the LLM call, the compaction's LLM stage and every tool
call: a GenAI span (``chat {model}``, ``execute_tool {name}``) with usage, finish reason
and result status read from the activity's own result, and the latency, token, error
and tool metrics. On the workflow side it counts agents started and finished (by final
status) and continue-as-new, through ``workflow.metric_meter()``, which records nothing
during replay; it keeps every run of an agent in one trace across continue-as-new; and
when an agent was started by a client that does not trace (the ``temporal`` CLI, another
SDK), it opens the ``agent <id>`` root span itself, from replay-safe workflow code; a
sub-agent gets its own ``agent <id>`` span under the parent's cycle the same way.

It runs inside the SDK's ``OpenTelemetryInterceptor`` (the plugin order puts it there),
which has already attached the caller's trace context when these methods run.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import opentelemetry.context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NoOpTracer, Span, SpanKind, Status, StatusCode, Tracer
from temporalio import activity, workflow
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ContinueAsNewInput,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from duragent.activities.errors import LLMErrorType
from duragent.activities.models import (
    LLMRequest,
    LLMResult,
    SummarizeRequest,
    SummarizeResult,
    ToolRequest,
    ToolResult,
)
from duragent.worker.telemetry import _genai as genai
from duragent.workflows.agent import WORKFLOW_NAME
from duragent.workflows.models import AgentResult
from duragent.workflows.telemetry import end_with_error

# Activity names are part of recorded histories, so they never change.
LLM_ACTIVITY = "duragent.llm_chat"
SUMMARIZE_ACTIVITY = "duragent.summarize"
TOOL_ACTIVITY = "duragent.run_tool"

RUNS_STARTED = "duragent_agent_runs_started"
RUNS_FINISHED = "duragent_agent_runs_finished"
CONTINUE_AS_NEW = "duragent_continue_as_new"
LLM_REQUESTS = "duragent_llm_requests"
LLM_ERRORS = "duragent_llm_errors"
LLM_DURATION = "duragent_llm_request_duration_seconds"
LLM_TOKENS = "duragent_llm_tokens"
# SDK counters take whole numbers: cost is counted in millionths of a dollar.
LLM_COST = "duragent_llm_cost_usd_micros"
TOOL_CALLS = "duragent_tool_calls"
TOOL_DURATION = "duragent_tool_call_duration_seconds"

LLM_ERROR_TYPES = frozenset(t.value for t in LLMErrorType)


@dataclass(frozen=True)
class TelemetryOptions:
    """What the interceptor needs from the process."""

    tracer_provider: ReplaySafeTracerProvider | None = None
    """Where activity-side spans go; ``None`` when tracing is off."""
    capture_content: bool = False
    """Put prompts, completions, tool arguments and results on spans."""
    llm_base_url: str | None = None
    """The LLM endpoint, for ``server.address``/``server.port``."""


class TelemetryInterceptor(Interceptor):
    """Spans and metrics of agents, their LLM calls and their tool calls.

    Args:
        options: The tracer provider and what to capture.
    """

    def __init__(self, options: TelemetryOptions) -> None:
        self._options = options
        provider = options.tracer_provider
        self._tracer: Tracer = provider.get_tracer("duragent") if provider else NoOpTracer()
        self._server = genai.server_attributes(options.llm_base_url)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Observe LLM and tool activities."""
        return _ActivityInbound(next, self._tracer, self._options.capture_content, self._server)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        """Count agent runs and keep their runs in one trace."""
        return _WorkflowInbound


class _ActivityInbound(ActivityInboundInterceptor):
    def __init__(
        self,
        next: ActivityInboundInterceptor,
        tracer: Tracer,
        content: bool,
        server: genai.Attributes,
    ) -> None:
        super().__init__(next)
        self._tracer = tracer
        self._tracing = not isinstance(tracer, NoOpTracer)
        self._content = content
        self._server = server

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        request = input.args[0] if input.args else None
        call: _Call
        if isinstance(request, LLMRequest | SummarizeRequest) and info.activity_type in (
            LLM_ACTIVITY,
            SUMMARIZE_ACTIVITY,
        ):
            call = _LLMCall(request, self._content, self._server)
        elif isinstance(request, ToolRequest) and info.activity_type == TOOL_ACTIVITY:
            call = _ToolCall(request, self._content)
        else:
            return await super().execute_activity(input)
        attributes: genai.Attributes = {}
        if self._tracing:  # contents can be large: serialised only when they go somewhere
            attributes = call.attributes() | {
                genai.CONVERSATION_ID: info.workflow_id or "",
                "duragent.activity.attempt": info.attempt,
            }
        started = time.monotonic()
        with self._tracer.start_as_current_span(
            call.name,
            kind=call.kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                result = await super().execute_activity(input)
            except BaseException as err:
                call.failed(span, err, time.monotonic() - started)
                raise
            call.succeeded(span, result, time.monotonic() - started)
            return result


class _Call(ABC):
    """One observed activity call: its span's name and attributes, and its metrics."""

    name: str
    kind: SpanKind = SpanKind.INTERNAL

    @abstractmethod
    def attributes(self) -> genai.Attributes:
        """The span's attributes known before the call."""

    @abstractmethod
    def succeeded(self, span: Span, result: Any, seconds: float) -> None:
        """Record a result: on the span (when it records) and in the metrics."""

    @abstractmethod
    def failed(self, span: Span, err: BaseException, seconds: float) -> None:
        """Record an exception: on the span (when it records) and in the metrics."""


class _LLMCall(_Call):
    kind = SpanKind.CLIENT

    def __init__(
        self, request: LLMRequest | SummarizeRequest, content: bool, server: genai.Attributes
    ) -> None:
        self._request = request
        self._content = content
        self._server = server
        self.name = f"chat {request.model}"
        purpose = "cycle" if isinstance(request, LLMRequest) else "compaction"
        self._labels = {"model": request.model, "purpose": purpose}

    def attributes(self) -> genai.Attributes:
        attributes = genai.llm_request_attributes(self._request, content=self._content)
        return attributes | self._server | {"duragent.llm.purpose": self._labels["purpose"]}

    def succeeded(self, span: Span, result: Any, seconds: float) -> None:
        if isinstance(result, LLMResult | SummarizeResult):
            if span.is_recording():
                span.set_attributes(genai.llm_result_attributes(result, content=self._content))
            meter = activity.metric_meter()
            tokens = meter.create_counter(LLM_TOKENS, "Tokens of LLM calls", "tokens")
            tokens.add(result.usage.input_tokens, self._labels | {"type": "input"})
            tokens.add(result.usage.output_tokens, self._labels | {"type": "output"})
            if result.usage.cost_usd > 0:
                cost = meter.create_counter(
                    LLM_COST, "Cost of LLM calls, per the worker's price table", "1e-6 USD"
                )
                cost.add(round(result.usage.cost_usd * 1_000_000), self._labels)
        self._record("success", seconds)

    def failed(self, span: Span, err: BaseException, seconds: float) -> None:
        if _is_cancel(err):
            span.set_attribute("duragent.cancelled", True)
            self._record("cancelled", seconds)
            return
        kind = err.type if isinstance(err, ApplicationError) else None
        error_type = kind if kind in LLM_ERROR_TYPES else "other"
        span.set_attribute(genai.ERROR_TYPE, kind or type(err).__name__)
        _error(span, err)
        activity.metric_meter().create_counter(
            LLM_ERRORS, "Failed LLM call attempts, by error class"
        ).add(1, self._labels | {"error_type": error_type})
        self._record("error", seconds)

    def _record(self, outcome: str, seconds: float) -> None:
        meter = activity.metric_meter()
        labels = self._labels | {"outcome": outcome}
        meter.create_counter(LLM_REQUESTS, "LLM call attempts").add(1, labels)
        meter.create_histogram_float(LLM_DURATION, "Latency of LLM call attempts", "s").record(
            seconds, labels
        )


class _ToolCall(_Call):
    def __init__(self, request: ToolRequest, content: bool) -> None:
        self._request = request
        self._content = content
        self.name = f"execute_tool {request.call.name}"

    def attributes(self) -> genai.Attributes:
        return genai.tool_request_attributes(self._request, content=self._content)

    def succeeded(self, span: Span, result: Any, seconds: float) -> None:
        status = "success"
        if isinstance(result, ToolResult):
            status = result.status.value
            if span.is_recording():
                span.set_attributes(genai.tool_result_attributes(result, content=self._content))
            if result.error_code is not None or status == "error":
                # The model reads the error and carries on; for a reader of the trace
                # the call still failed.
                span.set_status(Status(StatusCode.ERROR, result.error_code or "tool error"))
        self._record(status, seconds)

    def failed(self, span: Span, err: BaseException, seconds: float) -> None:
        if _is_cancel(err):
            span.set_attribute("duragent.cancelled", True)
            self._record("cancelled", seconds)
            return
        kind = err.type if isinstance(err, ApplicationError) else None
        span.set_attribute(genai.ERROR_TYPE, kind or type(err).__name__)
        _error(span, err)
        self._record("failed", seconds)  # an exception: Temporal retries the attempt

    def _record(self, status: str, seconds: float) -> None:
        meter = activity.metric_meter()
        labels = {"tool": self._request.call.name, "status": status}
        meter.create_counter(TOOL_CALLS, "Tool call attempts, by tool and status").add(1, labels)
        meter.create_histogram_float(TOOL_DURATION, "Latency of tool call attempts", "s").record(
            seconds, labels
        )


def _error(span: Span, err: BaseException) -> None:
    span.record_exception(err)
    span.set_status(Status(StatusCode.ERROR, f"{type(err).__name__}: {err}"))


def _is_cancel(err: BaseException) -> bool:
    return isinstance(err, asyncio.CancelledError)


class _WorkflowInbound(WorkflowInboundInterceptor):
    """Counts agents started and finished; holds the run's top-level trace context."""

    root: Context | None = None
    """The context the run's own spans hang under: the agent's root span."""

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound, self))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        info = workflow.info()
        if info.workflow_type != WORKFLOW_NAME:
            return await super().execute_workflow(input)
        meter = workflow.metric_meter()
        if info.continued_run_id is None:  # a new agent, not the next run of one
            meter.create_counter(RUNS_STARTED, "Agents started").add(1)
        with self._root_span():
            try:
                result = await super().execute_workflow(input)
            except (workflow.ContinueAsNewError, GeneratorExit):
                # GeneratorExit: an evicted run's coroutine closed outside its event
                # loop, where workflow APIs raise; the run itself goes on elsewhere.
                raise
            except BaseException as err:
                status = _final_status(err)
                if status is not None:
                    _count_finished(status)
                raise
        _count_finished(result.status.value if isinstance(result, AgentResult) else "completed")
        return result

    @contextmanager
    def _root_span(self) -> Iterator[None]:
        """Open the agent's own ``agent <id>`` span when it needs one.

        A sub-agent gets one under its parent's cycle; an agent whose starter sent no
        trace context gets one as the root of a new trace. A run after continue-as-new
        continues under the span its first run had.
        """
        provider = trace.get_tracer_provider()
        info = workflow.info()
        parent = trace.get_current_span().get_span_context()
        own = info.continued_run_id is None and (not parent.is_valid or info.parent is not None)
        if not own or not isinstance(provider, ReplaySafeTracerProvider):
            self.root = opentelemetry.context.get_current()
            yield
            return
        span = provider.get_tracer("duragent.workflow").start_span(
            f"agent {info.workflow_id}",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.conversation.id": info.workflow_id,
                "duragent.agent.id": info.workflow_id,
                "duragent.parent.id": info.parent.workflow_id if info.parent else "",
            },
        )
        self.root = trace.set_span_in_context(span)
        with _attached(self.root):
            try:
                yield
            except (workflow.ContinueAsNewError, asyncio.CancelledError):
                # The next run continues under this span. An eviction's cancel ends
                # nothing: the replay-safe span drops an end() made while evicting.
                span.end()
                raise
            except GeneratorExit:
                raise  # an evicted run closed outside its loop: no workflow API there
            except BaseException as err:
                if workflow.is_failure_exception(err):
                    end_with_error(span, err)
                raise
            span.end()


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, inbound: _WorkflowInbound) -> None:
        super().__init__(next)
        self._inbound = inbound

    def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
        if workflow.info().workflow_type == WORKFLOW_NAME:
            workflow.metric_meter().create_counter(
                CONTINUE_AS_NEW, "Agent runs continued as new"
            ).add(1)
        # The SDK's interceptor (next) sends the current context to the next run; it
        # must be the agent's root, not a cycle's span, or every run would nest deeper.
        with _attached(self._inbound.root):
            super().continue_as_new(input)


def _count_finished(status: str) -> None:
    workflow.metric_meter().create_counter(RUNS_FINISHED, "Agents finished, by final status").add(
        1, {"status": status}
    )


def _final_status(err: BaseException) -> str | None:
    """How an exception ends the run: cancelled, failed, or (None) not at all."""
    if workflow.cancellation_reason() is not None and isinstance(
        err, asyncio.CancelledError | CancelledError
    ):
        return "cancelled"
    if workflow.is_failure_exception(err):
        return "failed"
    return None  # a workflow task failure: Temporal retries it, the run goes on


@contextmanager
def _attached(context: Context | None) -> Iterator[None]:
    if context is None:
        yield
        return
    token = opentelemetry.context.attach(context)
    try:
        yield
    finally:
        if opentelemetry.context.get_current() is context:
            try:
                token.var.reset(token)
            except ValueError:
                pass  # finalised in another contextvars.Context: nothing to detach
