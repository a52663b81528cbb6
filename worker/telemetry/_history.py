"""An agent's run as an indented tree, read from its Temporal history.

Always available, with or without a trace collector: every cycle's LLM call, tool calls,
compactions, replies and continue-as-new are events in history, with their times,
attempts and results. The tree has the shape of the agent's trace (``agent <id>`` →
``cycle N`` → ``chat <model>`` / ``execute_tool <name>``), so the two read alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.converter import PayloadConverter

from duragent.activities.models import LLMResult, SummarizeResult, ToolRequest, ToolResult
from duragent.worker.telemetry._tracing import trace_id_from_start_event
from duragent.workflows.events import PUBLISH_SIGNAL

MAX_RUNS = 100
"""Runs (continue-as-new) read at most, the latest ones."""

_CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "cancelled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed out",
}
_CHILD_CLOSED = {
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: (
        "child_workflow_execution_completed_event_attributes",
        "completed",
    ),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: (
        "child_workflow_execution_failed_event_attributes",
        "failed",
    ),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: (
        "child_workflow_execution_canceled_event_attributes",
        "cancelled",
    ),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: (
        "child_workflow_execution_timed_out_event_attributes",
        "timed out",
    ),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: (
        "child_workflow_execution_terminated_event_attributes",
        "terminated",
    ),
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED: (
        "start_child_workflow_execution_failed_event_attributes",
        "not started",
    ),
}
LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""The marker a local activity's result is recorded in (its name is the SDK core's)."""
_ACTIVITY_CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed out",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "cancelled",
}


@dataclass
class TraceNode:
    """One line of the tree: a span-like step with its time and what it did."""

    name: str
    start: datetime | None = None
    end: datetime | None = None
    detail: str = ""
    children: list[TraceNode] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        """Duration, when the step has ended."""
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()


async def history_trace(client: Client, agent_id: str, *, max_runs: int = MAX_RUNS) -> TraceNode:
    """Read every run of an agent (following continue-as-new) and build its tree.

    Args:
        client: A client of the agent's namespace.
        agent_id: The agent's id.
        max_runs: Read at most this many runs, the latest ones.

    Raises:
        temporalio.service.RPCError: No such agent (``NOT_FOUND``) or no server.
    """
    runs: list[Sequence[HistoryEvent]] = []
    run_id: str | None = None
    while len(runs) < max_runs:
        history = await client.get_workflow_handle(agent_id, run_id=run_id).fetch_history()
        runs.insert(0, history.events)
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None:
            break
    return build_tree(agent_id, runs, client.data_converter.payload_converter)


def build_tree(
    agent_id: str, runs: Sequence[Sequence[HistoryEvent]], converter: PayloadConverter
) -> TraceNode:
    """The tree of an agent from the events of its runs, first run first.

    Args:
        agent_id: The agent's id, for the root's name.
        runs: Each run's history events.
        converter: Decodes activity inputs and results (the client's converter).
    """
    root = TraceNode(f"agent {agent_id}")
    builder = _Builder(root, converter)
    for number, events in enumerate(runs, start=1):
        if number > 1:
            builder.continued(events[0], number)
        for event in events:
            builder.add(event)
    first = runs[0][0] if runs and runs[0] else None
    if first is not None:
        root.start = _time(first)
        trace_id = trace_id_from_start_event(first)
        if trace_id:
            root.detail = f"{root.detail}  trace {trace_id}".strip()
    return root


class _Builder:
    """Walks events in order, opening a cycle node at each LLM call of a new cycle."""

    def __init__(self, root: TraceNode, converter: PayloadConverter) -> None:
        self._root = root
        self._converter = converter
        self._cycle: TraceNode | None = None
        self._scheduled: dict[int, TraceNode] = {}
        # Activity type, or the child's workflow id, by the event that started it.
        self._kinds: dict[int, str] = {}
        # A local activity runs inside a workflow task: it started no earlier than that.
        self._task_started: datetime | None = None

    def continued(self, first: HistoryEvent, number: int) -> None:
        self._close_cycle(_time(first))
        self._root.children.append(
            TraceNode(f"continue-as-new → run {number}", _time(first), _time(first))
        )

    def add(self, event: HistoryEvent) -> None:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            self._scheduled_activity(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            node = self._scheduled.get(attrs.scheduled_event_id)
            if node is not None and attrs.attempt > 1:
                node.detail = f"{node.detail}  {attrs.attempt} attempts".strip()
        elif kind in _ACTIVITY_CLOSED:
            self._closed_activity(event, _ACTIVITY_CLOSED[kind])
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            self._task_started = _time(event)
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            self._local_activity(event)
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            child = event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            node = TraceNode(f"agent {child}", _time(event), detail="sub-agent")
            self._parent().children.append(node)
            self._scheduled[event.event_id] = node
            self._kinds[event.event_id] = child
        elif kind in _CHILD_CLOSED:
            field, outcome = _CHILD_CLOSED[kind]
            attrs = getattr(event, field)
            node = self._scheduled.get(attrs.initiated_event_id)
            if node is not None:
                node.end = _time(event)
                child = self._kinds[attrs.initiated_event_id]
                node.detail = f"{node.detail} {outcome}: duragent trace {child}"
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            name = event.workflow_execution_update_accepted_event_attributes.accepted_request
            self._parent().children.append(
                TraceNode(f"update {name.input.name}", _time(event), _time(event))
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signal = event.workflow_execution_signaled_event_attributes.signal_name
            if signal == PUBLISH_SIGNAL:  # a batch of streamed text (activities/tokens.py)
                self._count_token_batch(_time(event))
            else:
                self._parent().children.append(
                    TraceNode(f"signal {signal}", _time(event), _time(event))
                )
        elif kind in _CLOSED:
            self._close_cycle(_time(event))
            self._root.end = _time(event)
            self._root.detail = _CLOSED[kind]

    def _scheduled_activity(self, event: HistoryEvent) -> None:
        attrs = event.activity_task_scheduled_event_attributes
        activity = attrs.activity_type.name
        summary = self._summary(event)
        if activity == "duragent.llm_chat":
            cycle = summary.split(":", 1)[0] if summary.startswith("cycle ") else None
            if cycle is not None and (self._cycle is None or self._cycle.name != cycle):
                self._close_cycle(_time(event))
                self._cycle = TraceNode(cycle, _time(event))
                self._root.children.append(self._cycle)
            node = TraceNode(f"chat {summary.split(': ', 1)[-1] or 'LLM'}", _time(event))
        elif activity == "duragent.summarize":
            node = TraceNode("compaction", _time(event), detail=summary)
        elif activity == "duragent.run_tool":
            request = self._decode(attrs.input.payloads, ToolRequest)
            name = request.call.name if isinstance(request, ToolRequest) else summary
            node = TraceNode(f"execute_tool {name}", _time(event))
            if isinstance(request, ToolRequest):
                node.detail = f"call {request.call.id}"
        else:
            node = TraceNode(activity, _time(event))
        self._parent().children.append(node)
        self._scheduled[event.event_id] = node
        self._kinds[event.event_id] = activity

    def _local_activity(self, event: HistoryEvent) -> None:
        attrs = event.marker_recorded_event_attributes
        if attrs.marker_name != LOCAL_ACTIVITY_MARKER or "data" not in attrs.details:
            return
        data = self._decode(attrs.details["data"].payloads, dict)
        name = data.get("activity_type") if isinstance(data, dict) else None
        node = TraceNode(str(name or "local activity"), self._task_started, _time(event), "local")
        if attrs.HasField("failure"):
            node.detail = f"local  failed: {attrs.failure.message}"
        self._parent().children.append(node)

    def _closed_activity(self, event: HistoryEvent, outcome: str) -> None:
        scheduled_id = _scheduled_event_id(event)
        node = self._scheduled.get(scheduled_id)
        if node is None:
            return
        node.end = _time(event)
        if outcome != "completed":
            message = _failure_message(event)
            node.detail = f"{node.detail}  {outcome}: {message}".strip()
            return
        result = event.activity_task_completed_event_attributes.result.payloads
        kind = self._kinds.get(scheduled_id)
        if kind == "duragent.llm_chat":
            node.detail = f"{node.detail}  {_llm_detail(self._decode(result, LLMResult))}".strip()
        elif kind == "duragent.summarize":
            node.detail = f"{node.detail}  {_llm_detail(self._decode(result, SummarizeResult))}"
        elif kind == "duragent.run_tool":
            tool = self._decode(result, ToolResult)
            if isinstance(tool, ToolResult):
                code = f" ({tool.error_code})" if tool.error_code else ""
                node.detail = f"{node.detail}  {tool.status.value}{code}".strip()

    def _count_token_batch(self, at: datetime | None) -> None:
        """Streamed-text batches of a cycle are one line, not one line each."""
        children = self._parent().children
        last = children[-1] if children else None
        if last is None or last.name != "streamed text":
            last = TraceNode("streamed text", at, at, detail="0 token batches")
            children.append(last)
        last.end = at
        count = int(last.detail.split()[0]) + 1
        last.detail = f"{count} token batch{'' if count == 1 else 'es'}"

    def _parent(self) -> TraceNode:
        return self._cycle or self._root

    def _close_cycle(self, at: datetime) -> None:
        if self._cycle is not None and self._cycle.end is None:
            self._cycle.end = at
        self._cycle = None

    def _summary(self, event: HistoryEvent) -> str:
        if not event.HasField("user_metadata") or not event.user_metadata.HasField("summary"):
            return ""
        value = self._decode([event.user_metadata.summary], str)
        return value if isinstance(value, str) else ""

    def _decode(self, payloads: Sequence[Payload], kind: type[Any]) -> Any:
        if not payloads:
            return None
        try:
            return self._converter.from_payloads(list(payloads), [kind])[0]
        except Exception:  # a payload of another version or codec: show what we can
            return None


def _llm_detail(result: Any) -> str:
    if not isinstance(result, LLMResult | SummarizeResult):
        return ""
    text = f"tokens {result.usage.input_tokens} in / {result.usage.output_tokens} out"
    if isinstance(result, LLMResult) and result.finish_reason:
        text += f", finish {result.finish_reason}"
    return text


def _scheduled_event_id(event: HistoryEvent) -> int:
    for name in (
        "activity_task_completed_event_attributes",
        "activity_task_failed_event_attributes",
        "activity_task_timed_out_event_attributes",
        "activity_task_canceled_event_attributes",
    ):
        if event.HasField(name):
            return int(getattr(event, name).scheduled_event_id)
    return 0


def _failure_message(event: HistoryEvent) -> str:
    if event.HasField("activity_task_failed_event_attributes"):
        failure = event.activity_task_failed_event_attributes.failure
    elif event.HasField("activity_task_timed_out_event_attributes"):
        failure = event.activity_task_timed_out_event_attributes.failure
    else:
        return "cancelled"
    while failure.message.startswith("activity") and failure.HasField("cause"):
        failure = failure.cause
    return failure.message


def _time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(UTC)


def render_tree(node: TraceNode, *, indent: int = 0) -> str:
    """The tree as indented lines: name, duration, what it did.

    Args:
        node: The root.
        indent: Indentation of the root, in levels of two spaces.
    """
    seconds = node.seconds
    duration = f"{seconds:.2f} s" if seconds is not None else "(open)"
    if node.start is not None and node.start == node.end:
        duration = ""
    line = "  " * indent + "  ".join(p for p in (node.name, duration, node.detail) if p)
    return "\n".join([line, *(render_tree(c, indent=indent + 1) for c in node.children)])


async def trace_id_of(client: Client, agent_id: str) -> str | None:
    """The trace id of an agent, from the start event of its latest run.

    Every run carries the agent's trace context (continue-as-new passes it on), so the
    latest run's first event is enough.

    Raises:
        temporalio.service.RPCError: No such agent (``NOT_FOUND``) or no server.
    """
    async for event in client.get_workflow_handle(agent_id).fetch_history_events():
        return trace_id_from_start_event(event)
    return None
