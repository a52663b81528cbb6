"""``AgentWorkflow``: one agent task, cycle by cycle, as a Temporal workflow.

A cycle: build the prompt, call the LLM (activity), run the tool calls (one activity
each, concurrently), interpret the control tools, decide. Decisions live in
:mod:`workflows.policy` as pure functions; this class only sequences them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TypedDict

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.llm import LLMActivities
    from activities.models import (
        DescribeToolsRequest,
        LLMRequest,
        LLMResult,
        Message,
        Role,
        TokenUsage,
        ToolCall,
        ToolKind,
        ToolRequest,
        ToolResult,
        ToolSpec,
        ToolStatus,
    )
    from activities.tools.activity import ToolActivities
    from workflows import policy
    from workflows.models import (
        ActivityPolicy,
        AgentInput,
        AgentResult,
        AgentStatus,
        AgentView,
        CycleRecord,
        PendingQuestion,
        ReplyInput,
    )

WORKFLOW_NAME = "AgentWorkflow"

# Listing tools is a registry lookup on the worker: fast, and safe to retry at will.
DESCRIBE_TOOLS_POLICY = ActivityPolicy(start_to_close_seconds=30, heartbeat_seconds=None)


@workflow.defn(name=WORKFLOW_NAME)
class AgentWorkflow:
    """A durable agent: survives worker restarts, waits for users, can be queried."""

    @workflow.init
    def __init__(self, input: AgentInput) -> None:
        self._input = input
        self._status = AgentStatus.RUNNING
        self._transcript: list[Message] = [Message(role=Role.USER, content=input.task)]
        self._cycles: list[CycleRecord] = []
        self._usage = TokenUsage()
        self._tools: dict[str, ToolSpec] = {}
        self._question: PendingQuestion | None = None
        self._reply: str | None = None
        self._answer: str | None = None
        self._files: list[str] = []
        self._error: str | None = None
        self._started_at = workflow.now()

    @workflow.run
    async def run(self, input: AgentInput) -> AgentResult:
        """Run cycles until the agent finishes, asks too long, or runs out of cycles."""
        await self._load_tools()
        try:
            while self._status is AgentStatus.RUNNING:
                if policy.cycles_exhausted(len(self._cycles), input.max_cycles):
                    self._status = AgentStatus.MAX_CYCLES
                    break
                await self._cycle()
        except ActivityError as err:
            self._fail(err)
        return self._result()

    @workflow.query(name="status")
    def status(self) -> AgentView:
        """Status, cycle, usage, the pending question, and the answer once finished."""
        return AgentView(
            status=self._status,
            cycle=len(self._cycles),
            model=self._input.model,
            usage=self._usage,
            pending_question=self._question,
            answer=self._answer,
            error=self._error,
        )

    @workflow.query(name="transcript")
    def transcript(self) -> list[Message]:
        """The transcript so far (the system prompt excluded)."""
        return list(self._transcript)

    @workflow.update(name="reply")
    async def reply(self, reply: ReplyInput) -> str:
        """Answer the pending ``_ask_user`` question; returns the question id."""
        assert self._question is not None  # guaranteed by the validator
        self._reply = reply.answer
        return self._question.id

    @reply.validator
    def _validate_reply(self, reply: ReplyInput) -> None:
        # Rejected here, a bad reply never reaches history.
        if self._question is None or self._reply is not None:
            raise ApplicationError("no question is pending", type="InvalidReply")
        if reply.question_id is not None and reply.question_id != self._question.id:
            raise ApplicationError(
                f"stale reply: question {reply.question_id!r} is not the pending one "
                f"({self._question.id!r})",
                type="InvalidReply",
            )

    async def _load_tools(self) -> None:
        described = await workflow.execute_activity_method(
            ToolActivities.describe_tools,
            DescribeToolsRequest(enabled=self._input.tools),
            **_activity_options(DESCRIBE_TOOLS_POLICY),
        )
        if described.unknown:
            raise ApplicationError(
                f"unknown tools requested: {', '.join(described.unknown)}",
                type="UnknownTools",
                non_retryable=True,
            )
        self._tools = {t.name: t for t in described.tools}

    async def _cycle(self) -> None:
        cycle = len(self._cycles) + 1
        turn = await self._call_llm(cycle)
        calls = turn.message.tool_calls
        self._transcript.append(turn.message)
        record = CycleRecord(cycle=cycle, usage=turn.usage, finish_reason=turn.finish_reason)
        self._cycles.append(record)
        self._usage = self._usage + turn.usage

        control = policy.interpret_control_calls([c for c in calls if self._is_control(c)])
        results = await self._run_tools([c for c in calls if not self._is_control(c)])
        results.update(control.results)
        await self._apply(policy.decide(calls, control), calls, results)
        record.tool_calls.update({r.call_id: r.status for r in results.values()})

    async def _call_llm(self, cycle: int) -> LLMResult:
        names = list(self._tools)
        prompt = policy.system_prompt(self._input.system_prompt, self._started_at, names)
        request = LLMRequest(
            model=self._input.model,
            messages=[Message(role=Role.SYSTEM, content=prompt), *self._transcript],
            tool_names=names,
            stream=self._input.stream,
            temperature=self._input.temperature,
        )
        return await workflow.execute_activity_method(
            LLMActivities.chat,
            request,
            summary=f"cycle {cycle}: {self._input.model}",
            **_activity_options(self._input.llm_policy),
        )

    async def _run_tools(self, calls: list[ToolCall]) -> dict[str, ToolResult]:
        outcomes = await asyncio.gather(*(self._run_tool(c) for c in calls))
        return {r.call_id: r for r in outcomes}

    async def _run_tool(self, call: ToolCall) -> ToolResult:
        spec = self._tools.get(call.name)
        if spec is None:
            return policy.unknown_tool_result(call, list(self._tools))
        request = ToolRequest(call=call, idempotency_key=f"{workflow.info().workflow_id}:{call.id}")
        try:
            return await workflow.execute_activity_method(
                ToolActivities.run_tool,
                request,
                summary=call.name,
                **_activity_options(policy.tool_policy(spec)),
            )
        except ActivityError as err:
            # Retries are exhausted: the model hears about it and decides; the run goes on.
            return ToolResult(
                call_id=call.id,
                name=call.name,
                status=ToolStatus.ERROR,
                content=f"{call.name} failed: {_cause(err)}",
                error_code="tool_failed",
            )

    async def _apply(
        self, directive: policy.Directive, calls: list[ToolCall], results: dict[str, ToolResult]
    ) -> None:
        if directive.question is not None:
            results[directive.question.id] = await self._ask(directive.question)
        # Every call gets its answer, in the order the model made them.
        self._transcript.extend(policy.tool_message(results[c.id]) for c in calls)
        if directive.kind is policy.DirectiveKind.FINISH:
            self._answer = directive.answer
            self._files = list(directive.files)
            self._status = AgentStatus.COMPLETED
        elif directive.kind is policy.DirectiveKind.NUDGE:
            self._transcript.append(Message(role=Role.USER, content=policy.CONTINUE_HINT))

    async def _ask(self, question: PendingQuestion) -> ToolResult:
        self._question, self._reply = question, None
        self._status = AgentStatus.WAITING_USER
        await workflow.wait_condition(lambda: self._reply is not None)
        answer = self._reply or ""
        self._question, self._reply = None, None
        self._status = AgentStatus.RUNNING
        return ToolResult(
            call_id=question.id, name="_ask_user", status=ToolStatus.SUCCESS, content=answer
        )

    def _is_control(self, call: ToolCall) -> bool:
        spec = self._tools.get(call.name)
        return spec is not None and spec.kind is ToolKind.CONTROL

    def _fail(self, err: ActivityError) -> None:
        self._status = AgentStatus.FAILED
        self._error = _cause(err)
        workflow.logger.warning("agent failed: %s", self._error)
        raise ApplicationError(self._error, type="AgentFailed", non_retryable=True) from err

    def _result(self) -> AgentResult:
        return AgentResult(
            status=self._status,
            answer=self._answer,
            cycles=len(self._cycles),
            usage=self._usage,
            files=self._files,
            transcript_length=len(self._transcript),
            error=self._error,
        )


class _ActivityOptions(TypedDict):
    start_to_close_timeout: timedelta
    heartbeat_timeout: timedelta | None
    retry_policy: RetryPolicy


def _activity_options(p: ActivityPolicy) -> _ActivityOptions:
    heartbeat = timedelta(seconds=p.heartbeat_seconds) if p.heartbeat_seconds else None
    return {
        "start_to_close_timeout": timedelta(seconds=p.start_to_close_seconds),
        "heartbeat_timeout": heartbeat,
        "retry_policy": policy.retry_policy(p),
    }


def _cause(err: ActivityError) -> str:
    """What the activity said went wrong (not the wrapper's "activity task failed")."""
    return str(err.cause or err)
