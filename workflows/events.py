"""Publishing an agent's or a graph's live events from workflow code.

The events (their schema is :mod:`duragent.activities.events`) go on the run's
workflow stream (``temporalio.contrib.workflow_streams``): an append-only log held in
the workflow, read through a query or a long-poll update, and carried across
continue-as-new. Publishing from workflow code writes nothing to history: the log is
rebuilt by replay, so a worker restart neither loses an event nor repeats one. Only the
LLM activity's ``token`` batches arrive from outside, as signals.

Runs started before this module existed publish nothing (the ``live-events`` patch):
they have no stream, and ``duragent watch`` polls them as before.

The stream's own signal and update are registered again here with a guard in front,
because anyone with a Temporal client can send them: a malformed publish is dropped
(and counted, like other dropped signals), a malformed poll is rejected, and neither
can fail a workflow task. Only ``token`` events may be published from outside, and a
batch from an attempt that a later attempt (or the finished turn) has superseded is
dropped, so a late batch of a zombie attempt never shows up after its replacement.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from google.protobuf.message import DecodeError
    from pydantic import JsonValue, TypeAdapter, ValidationError
    from temporalio.api.common.v1 import Payload
    from temporalio.contrib.workflow_streams import (
        PollInput,
        PollResult,
        PublishInput,
        WorkflowStream,
        WorkflowStreamState,
    )

    from duragent.activities.events import (
        TOPIC,
        ApprovalEvent,
        BaseEvent,
        CompactionEvent,
        ContinuedAsNewEvent,
        FinishedEvent,
        MessageEvent,
        NodeEvent,
        QuestionEvent,
        StatusEvent,
        TokenEvent,
        ToolFinishedEvent,
        ToolStartedEvent,
    )
    from duragent.activities.models import Message, Role, TokenStream, ToolCall, ToolResult
    from duragent.workflows.graph_models import GateView, NodeView
    from duragent.workflows.models import ApprovalDecision, PendingApproval, PendingQuestion

EVENTS_PATCH = "live-events"
"""Runs that record this patch publish events; older runs replay without a stream."""

PUBLISH_SIGNAL = "__temporal_workflow_stream_publish"
POLL = "__temporal_workflow_stream_poll"
"""The stream library's handler names (its signal, and its update and query)."""

MAX_PUBLISH_ITEMS = 100
"""Items in one publish signal at most; the LLM activity sends one per batch."""
MAX_ITEM_CHARS = 64_000
"""Encoded size of one published item at most: a batch of text is far smaller."""
MAX_POLL_TOPICS = 16
CARRIED_EVENT_BYTES = 64_000
"""The newest events that ride along into the next run's input (the rest stay in the
old run): enough for a subscriber a little behind, and small beside the transcript the
input carries too (Temporal warns at 512 KB)."""
PUBLISHER_TTL = timedelta(minutes=5)
"""How long a publisher's de-duplication state is carried after its last batch. Each
LLM attempt is one publisher that gives up retrying a batch after 30 s."""
ARGUMENTS_CHARS = 2_000
"""A tool call's arguments in ``tool_started``, cut to this (the transcript has them)."""

_PUBLISH = TypeAdapter(PublishInput)
_POLL_INPUT = TypeAdapter(PollInput)


class EventStream:
    """The run's event stream: publishes events, guards the stream's handlers.

    Build it in the workflow's ``@workflow.init`` (the stream library requires it),
    once per run.

    Args:
        prior: The stream state the previous run carried (``None``: a fresh stream).
        graph: Whether the events are a graph's (``graph_id``) or an agent's.
    """

    def __init__(self, prior: WorkflowStreamState | None, *, graph: bool = False) -> None:
        self._id = workflow.info().workflow_id
        self._graph = graph
        self._stream: WorkflowStream | None = None
        self._closed_cycle = 0
        """The last cycle whose turn is in the transcript: its tokens are late."""
        self._attempts: dict[tuple[int, str], int] = {}
        """The highest attempt seen per LLM call (cycle, activity id)."""
        if workflow.patched(EVENTS_PATCH):
            # The library insists on being built in a method named ``__init__``.
            self._stream = WorkflowStream(prior)
            workflow.set_signal_handler(PUBLISH_SIGNAL, self._on_publish)
            workflow.set_update_handler(POLL, self._on_poll, validator=self._validate_poll)

    @property
    def enabled(self) -> bool:
        """Whether this run publishes events (it started after the patch)."""
        return self._stream is not None

    def publish(self, event: BaseEvent) -> None:
        """Stamp the event with the run's id and the time, and append it to the stream."""
        if self._stream is None:
            return
        if self._graph:
            event.graph_id = self._id
        else:
            event.agent_id = self._id
        event.at = workflow.now()
        self._stream.topic(TOPIC).publish(event)

    def finished(self, status: str, *, result: JsonValue = None, error: str | None = None) -> None:
        """The last event of the run: publish it and release long-polling readers."""
        self.publish(FinishedEvent(status=status, result=result, error=error))
        if self._stream is not None:
            self._stream.detach_pollers()

    def detach(self) -> None:
        """Release long-polling readers before the run waits for its handlers to finish.

        A reader's poll is an update handler that waits for new events: without this,
        ``all_handlers_finished`` would wait for it as long as nothing is published.
        """
        if self._stream is not None:
            self._stream.detach_pollers()

    def carry(self, *, cycle: int, run: int) -> WorkflowStreamState | None:
        """Announce continue-as-new and return the stream state the next run takes over.

        Only the newest events are kept (``CARRIED_EVENT_BYTES``); offsets go on.
        """
        if self._stream is None:
            return None
        self.publish(ContinuedAsNewEvent(cycle=cycle, run=run))
        self._stream.detach_pollers()
        self._stream.truncate(_keep_from(self._stream))
        return self._stream.get_state(publisher_ttl=PUBLISHER_TTL)

    def close_cycle(self, cycle: int) -> None:
        """The turn of ``cycle`` is recorded: later token batches of it are dropped."""
        self._closed_cycle = max(self._closed_cycle, cycle)

    # --- the stream's handlers, guarded ---------------------------------------------------

    def _on_publish(self, *args: Any) -> None:
        """The stream's publish signal: only well-formed, current token batches get in."""
        assert self._stream is not None
        try:
            batch = _one_publish(args)
            tokens = [_token(entry.data) for entry in batch.items]
        except ValueError as err:
            _drop(PUBLISH_SIGNAL, str(err))
            return
        kept = [e for e, t in zip(batch.items, tokens, strict=True) if self._current(t)]
        # Still passed on when all were stale: the publisher's sequence is recorded.
        batch.items = kept
        self._stream._on_publish(batch)

    def _current(self, token: TokenEvent) -> bool:
        if token.agent_id not in (None, self._id) or token.cycle <= self._closed_cycle:
            return False
        key = (token.cycle, token.call)
        if token.attempt < self._attempts.get(key, 0):
            return False
        self._attempts[key] = token.attempt
        return True

    def _validate_poll(self, *args: Any) -> None:
        assert self._stream is not None
        self._stream._validate_poll(_one_poll(args))

    async def _on_poll(self, *args: Any) -> PollResult:
        assert self._stream is not None
        return await self._stream._on_poll(_one_poll(args))


class AgentEvents(EventStream):
    """An agent's events, published from small hooks in :class:`AgentWorkflow`.

    Args:
        prior: The stream state the previous run carried.
        published: Transcript messages already published (by earlier runs).
    """

    def __init__(self, prior: WorkflowStreamState | None, *, published: int = 0) -> None:
        super().__init__(prior)
        self._published = published
        self._routed: dict[str, QuestionEvent] = {}
        """Sub-agents' questions pending here, by routed id."""
        if prior is None and published == 0:  # the agent's first run starts
            self.status("running", 0, None)

    def tokens(self, cycle: int, batch_seconds: float) -> TokenStream | None:
        """What the LLM call of ``cycle`` needs to publish its text (``None``: nothing)."""
        if not self.enabled or batch_seconds <= 0:
            return None
        return TokenStream(cycle=cycle, batch_seconds=batch_seconds)

    def status(self, status: str, cycle: int, waiting_for: str | None) -> None:
        """The agent's status changed."""
        self.publish(StatusEvent(status=status, cycle=cycle, waiting_for=waiting_for))

    def messages(self, transcript: Sequence[Message], cycle: int) -> None:
        """Publish the messages added to the transcript since the last call."""
        for index in range(self._published, len(transcript)):
            message = transcript[index]
            self.publish(MessageEvent(index=index, cycle=cycle, message=message))
            if message.role is Role.ASSISTANT:
                self.close_cycle(cycle)
        self._published = len(transcript)

    def compaction(self, cycle: int, before: int, transcript: Sequence[Message]) -> None:
        """The transcript was compacted from ``before`` messages to what it holds now."""
        after = len(transcript)
        self.publish(
            CompactionEvent(cycle=cycle, replaced=max(before - after, 0), transcript_length=after)
        )
        self._published = after

    async def tool(self, call: ToolCall, cycle: int, run: Awaitable[ToolResult]) -> ToolResult:
        """Run one tool call between its ``tool_started`` and ``tool_finished`` events."""
        began = workflow.now()
        arguments = call.arguments[:ARGUMENTS_CHARS]
        self.publish(
            ToolStartedEvent(cycle=cycle, call_id=call.id, name=call.name, arguments=arguments)
        )
        result = await run
        took = workflow.now() - began
        self.publish(
            ToolFinishedEvent(
                cycle=cycle,
                call_id=call.id,
                name=call.name,
                status=result.status.value,
                duration_ms=int(took.total_seconds() * 1000),
                error_code=result.error_code,
            )
        )
        return result

    def question(
        self, question: PendingQuestion, *, answer: JsonValue = None, resolved: bool = False
    ) -> None:
        """The agent's own question was asked or answered."""
        self.publish(_question_event(question, answer=answer, resolved=resolved))

    def sub_questions(self, agent_id: str, pending: Mapping[str, PendingQuestion]) -> None:
        """A sub-agent's routed questions changed: ``pending`` is every one held now."""
        prefix = f"{agent_id}:"
        for key in [k for k in self._routed if k.startswith(prefix) and k not in pending]:
            gone = self._routed.pop(key)
            self.publish(gone.model_copy(update={"state": "resolved"}))
        for key, question in pending.items():
            if key.startswith(prefix) and key not in self._routed:
                event = _question_event(question, answer=None, resolved=False)
                event.asked_by = agent_id
                self._routed[key] = event
                self.publish(event)

    def approvals(self, pending: Iterable[PendingApproval]) -> None:
        """Tool calls now wait for approval."""
        for a in pending:
            self.publish(
                ApprovalEvent(
                    call_id=a.call_id,
                    tool=a.tool,
                    arguments=a.arguments,
                    fingerprint=a.fingerprint,
                    reason=a.reason,
                )
            )

    def approval_resolved(self, call: ToolCall, decision: ApprovalDecision) -> None:
        """A pending call was decided (by a person, or by the deadline)."""
        self.publish(
            ApprovalEvent(
                state="resolved",
                call_id=call.id,
                tool=call.name,
                arguments=call.arguments,
                decision=decision.action.value,
                message=decision.message,
            )
        )


class GraphEvents(EventStream):
    """A graph's events, published from small hooks in :class:`GraphWorkflow`."""

    def __init__(self, prior: WorkflowStreamState | None) -> None:
        super().__init__(prior, graph=True)
        if prior is None:  # the graph's first run starts
            self.status("running", 0)

    def status(self, status: str, step: int) -> None:
        """The graph's status changed."""
        self.publish(StatusEvent(status=status, cycle=step))

    def node(self, view: NodeView) -> None:
        """A node's visit changed: its status, children or error."""
        self.publish(
            NodeEvent(
                node=view.name,
                kind=view.kind,
                visit=view.visits,
                status=view.status.value,
                children=list(view.children),
                error=view.error,
            )
        )

    def gate(self, gate: GateView, *, answer: JsonValue = None, resolved: bool = False) -> None:
        """A gate opened, or was answered or timed out."""
        self.publish(
            QuestionEvent(
                state="resolved" if resolved else "pending",
                kind="gate",
                id=gate.id,
                question=gate.prompt,
                node=gate.node,
                show=gate.show,
                answer_schema=gate.answer_schema,
                answer=answer,
            )
        )


def _question_event(
    question: PendingQuestion, *, answer: JsonValue, resolved: bool
) -> QuestionEvent:
    return QuestionEvent(
        state="resolved" if resolved else "pending",
        id=question.id,
        question=question.question,
        options=question.options,
        selection=question.selection.value,
        answer=answer,
    )


def _keep_from(stream: WorkflowStream) -> int:
    """The first offset whose events, to the end, fit in ``CARRIED_EVENT_BYTES``.

    Reads the stream's log directly: the library offers ``truncate`` but no sizes.
    """
    log = stream._log
    size = 0
    keep = len(log)
    while keep > 0 and size + log[keep - 1].data.ByteSize() <= CARRIED_EVENT_BYTES:
        keep -= 1
        size += log[keep].data.ByteSize()
    return stream._base_offset + keep


def _one_publish(args: Sequence[Any]) -> PublishInput:
    if len(args) != 1:
        raise ValueError(f"expected 1 argument, got {len(args)}")
    try:
        batch = _PUBLISH.validate_python(args[0])
    except ValidationError as err:
        raise ValueError(f"not a publish batch: {_first_error(err)}") from None
    if len(batch.items) > MAX_PUBLISH_ITEMS:
        raise ValueError(f"{len(batch.items)} items; at most {MAX_PUBLISH_ITEMS}")
    if len(batch.publisher_id) > 200:
        raise ValueError("publisher_id is over 200 characters")
    for entry in batch.items:
        if entry.topic != TOPIC:
            raise ValueError(f"topic {entry.topic[:50]!r}: only {TOPIC!r} is published")
        if len(entry.data) > MAX_ITEM_CHARS:
            raise ValueError(f"an item of {len(entry.data)} characters; at most {MAX_ITEM_CHARS}")
    return batch


def _token(data: str) -> TokenEvent:
    """A published item's event; only ``token`` events come from outside the workflow."""
    payload = Payload()
    try:
        payload.ParseFromString(base64.b64decode(data, validate=True))
        raw = workflow.payload_converter().from_payload(payload)
    except (binascii.Error, DecodeError, ValueError, TypeError) as err:
        raise ValueError(f"an item does not decode: {err}") from None
    if not isinstance(raw, dict) or raw.get("type") != "token":
        raise ValueError("only token events may be published to the stream")
    try:
        return TokenEvent.model_validate(raw)
    except ValidationError as err:
        raise ValueError(f"not a token event: {_first_error(err)}") from None


def _one_poll(args: Sequence[Any]) -> PollInput:
    """The poll's input, checked; a bad one rejects the update before it reaches history."""
    problem = None
    if len(args) != 1:
        problem = f"expected 1 argument, got {len(args)}"
    else:
        try:
            poll = _POLL_INPUT.validate_python(args[0])
        except ValidationError as err:
            problem = _first_error(err)
        else:
            if poll.from_offset < 0:
                problem = "from_offset must not be negative"
            elif len(poll.topics) > MAX_POLL_TOPICS or any(len(t) > 200 for t in poll.topics):
                problem = f"at most {MAX_POLL_TOPICS} topics of at most 200 characters"
            else:
                return poll
    raise ApplicationError(f"invalid stream poll: {problem}", type="InvalidInput")


def _drop(signal: str, reason: str) -> None:
    """Dropped like the workflow's own bad signals: logged, and counted where it counts."""
    workflow.logger.warning("signal %s dropped: %s", signal, reason)
    notify = getattr(workflow.instance(), "on_dropped_signal", None)
    if callable(notify):
        notify(signal, reason)


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "input"
    return f"{where}: {first['msg']}"
