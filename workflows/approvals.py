"""Tool calls that wait for a person's approval, in workflow code.

A call whose tool is gated (the worker's default for the tool, or the run's
``approval.tools`` override) waits, with the other gated calls of its turn, until each
is decided through the ``decide`` update: approved, rejected (the model is told why),
or approved with edited arguments. Past ``approval.deadline_seconds``, or the agent's
own deadline, the undecided ones get ``approval.on_timeout``.

The workflow registers the ``decide`` update and the queries (Temporal finds handlers
on the workflow class); :class:`Approvals` holds what is pending and what they do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from duragent.activities.models import (
        ApprovalMode,
        ToolCall,
        ToolResult,
        ToolSpec,
        ToolStatus,
        ValidateArgumentsRequest,
    )
    from duragent.activities.tools.activity import ToolActivities
    from duragent.workflows import activity_calls as calls
    from duragent.workflows import policy
    from duragent.workflows.models import (
        AgentStatus,
        ApprovalAction,
        ApprovalDecision,
        ApprovalPolicy,
        OnApprovalTimeout,
        PendingApproval,
    )
    from duragent.workflows.waiting import wait_within

if TYPE_CHECKING:
    # Typing only: the events module stays in the sandbox (it registers handlers).
    from duragent.workflows.events import AgentEvents


@dataclass(frozen=True)
class Review:
    """How a turn's gated calls were decided."""

    approved: list[ToolCall]
    """The calls to run, edited arguments applied, in the order the model made them."""
    refused: dict[str, ToolResult]
    """Results of the rejected calls, by call id."""
    edited: dict[str, ToolCall]
    """The approved calls whose arguments a person edited, by call id."""


class Approvals:
    """The calls waiting for approval, and the decisions made on them so far.

    Args:
        settings: The run's approval policy.
        events: The run's event stream.
        deadline: The agent's own deadline, if any: no approval waits past it.
        set_status: Sets the agent's status (waiting for approval, then running).
    """

    def __init__(
        self,
        settings: ApprovalPolicy,
        events: AgentEvents,
        *,
        deadline: datetime | None,
        set_status: Callable[[AgentStatus], None],
    ) -> None:
        self._settings = settings
        self._events = events
        self._deadline = deadline
        self._set_status = set_status
        self._pending: dict[str, PendingApproval] = {}
        self._decisions: dict[str, ApprovalDecision] = {}

    @property
    def pending(self) -> list[PendingApproval]:
        """The calls still waiting for a decision."""
        return [a for a in self._pending.values() if a.call_id not in self._decisions]

    @property
    def undecided(self) -> int:
        """How many calls wait for a decision (the ``status`` query's count)."""
        return len(self._pending) - len(self._decisions)

    def gated(self, calls: list[ToolCall], tools: Mapping[str, ToolSpec]) -> dict[str, str]:
        """Why each call that needs approval needs it, by call id."""
        return {
            c.id: reason
            for c in calls
            if (reason := policy.approval_reason(self._mode(c.name, tools), c)) is not None
        }

    def _mode(self, tool: str, tools: Mapping[str, ToolSpec]) -> ApprovalMode:
        spec = tools.get(tool)
        default = spec.approval if spec is not None else ApprovalMode.NEVER
        return self._settings.tools.get(tool, default)

    def validate(self, decision: ApprovalDecision) -> None:
        """The ``decide`` validator: a decision on no pending call never reaches history."""
        pending = self._pending.get(decision.call_id)
        problem = None
        if pending is None or decision.call_id in self._decisions:
            waiting = ", ".join(self._pending.keys() - self._decisions.keys()) or "none"
            problem = f"no pending approval for call {decision.call_id!r} (pending: {waiting})"
        elif decision.fingerprint is not None and decision.fingerprint != pending.fingerprint:
            problem = "the call's arguments are not the ones approved (fingerprint mismatch)"
        elif decision.action is ApprovalAction.EDIT and not decision.arguments:
            problem = "an edit needs new arguments"
        else:
            problem = policy.decision_too_large(decision)
        if problem is not None:
            raise ApplicationError(problem, type="InvalidDecision")

    async def decide(self, decision: ApprovalDecision) -> str:
        """The ``decide`` update: record a decision, edited arguments checked first."""
        if decision.action is ApprovalAction.EDIT:
            pending = self._pending[decision.call_id]
            checked = await workflow.execute_activity_method(
                ToolActivities.validate_arguments,
                ValidateArgumentsRequest(tool=pending.tool, arguments=decision.arguments or ""),
                **calls.options(calls.REGISTRY_POLICY),
            )
            if checked.error is not None:
                raise ApplicationError(checked.error, type="InvalidArguments")
        if decision.call_id in self._decisions:  # decided while the arguments were checked
            raise ApplicationError("already decided", type="InvalidDecision")
        self._decisions[decision.call_id] = decision
        return decision.call_id

    async def review(self, calls: list[ToolCall], reasons: dict[str, str]) -> Review:
        """Hold the gated calls until each is decided or the deadline passes."""
        now = workflow.now()
        self._pending = {
            c.id: PendingApproval(
                call_id=c.id,
                tool=c.name,
                arguments=c.arguments,
                fingerprint=policy.fingerprint(c.arguments),
                reason=reasons[c.id],
                requested_at=now,
            )
            for c in calls
        }
        self._set_status(AgentStatus.WAITING_APPROVAL)
        self._events.approvals(self._pending.values())
        await wait_within(
            lambda: self._decisions.keys() >= self._pending.keys(),
            self._settings.deadline_seconds,
            self._deadline,
        )
        review = self._sort(calls)
        self.clear()
        self._set_status(AgentStatus.RUNNING)
        return review

    def clear(self) -> None:
        """Forget what was pending (the turn moved on, or the run was cancelled)."""
        self._pending, self._decisions = {}, {}

    def _sort(self, calls: list[ToolCall]) -> Review:
        approved: list[ToolCall] = []
        refused: dict[str, ToolResult] = {}
        for call in calls:
            decision = self._decisions.get(call.id) or self._timeout_decision(call.id)
            self._events.approval_resolved(call, decision)
            if decision.action is ApprovalAction.REJECT:
                refused[call.id] = _rejected(call, decision)
            elif decision.action is ApprovalAction.EDIT and decision.arguments:
                approved.append(call.model_copy(update={"arguments": decision.arguments}))
            else:
                approved.append(call)
        edited = {
            c.id: c
            for c in approved
            if (d := self._decisions.get(c.id)) is not None and d.action is ApprovalAction.EDIT
        }
        return Review(approved=approved, refused=refused, edited=edited)

    def _timeout_decision(self, call_id: str) -> ApprovalDecision:
        seconds = self._settings.deadline_seconds
        if self._settings.on_timeout is OnApprovalTimeout.APPROVE:
            return ApprovalDecision(call_id=call_id, action=ApprovalAction.APPROVE)
        return ApprovalDecision(
            call_id=call_id,
            action=ApprovalAction.REJECT,
            message=f"nobody approved it within {seconds:g} s",
        )


def _rejected(call: ToolCall, decision: ApprovalDecision) -> ToolResult:
    message = decision.message or "no reason given"
    return ToolResult(
        call_id=call.id,
        name=call.name,
        status=ToolStatus.ERROR,
        content=f"the user rejected this call: {message}",
        error_code="rejected",
    )
