"""``AgentWorkflow``: one agent task, cycle by cycle, as a Temporal workflow.

A cycle: fold in steering messages, build the prompt, call the LLM (activity), run the
tool calls (one activity each, concurrently; those that need approval wait for a
person's decision first), interpret the control tools, decide. Decisions live in
:mod:`workflows.policy` as pure functions; this class only sequences them and holds
the state that queries, updates and signals read and change. Whole concerns live in
helpers it holds: questions (:mod:`workflows.questions`), approvals
(:mod:`workflows.approvals`), sub-agents (:mod:`workflows.sub_agents`), and where a run
begins and hands over (:mod:`workflows.lifecycle`).
"""

from __future__ import annotations

import asyncio
from typing import NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from pydantic import JsonValue

    from duragent.activities.errors import LLMErrorType
    from duragent.activities.llm import LLMActivities
    from duragent.activities.memory import MemoryActivities
    from duragent.activities.models import (
        LLMRequest,
        LLMResult,
        Message,
        Role,
        SkillSummary,
        SummarizeRequest,
        SummarizeResult,
        TokenUsage,
        ToolCall,
        ToolKind,
        ToolRequest,
        ToolResult,
        ToolSpec,
    )
    from duragent.activities.tools.activity import ToolActivities
    from duragent.activities.tools.control import SUB_TASK_TOOLS, TodoItem, TypedTaskFinishArgs
    from duragent.workflows import activity_calls as calls
    from duragent.workflows import budgets, catalog, lifecycle, policy, telemetry
    from duragent.workflows import search_attributes as search
    from duragent.workflows.approvals import Approvals
    from duragent.workflows.events import AgentEvents
    from duragent.workflows.models import (
        AgentInput,
        AgentResult,
        AgentStatus,
        AgentView,
        ApprovalDecision,
        CarryState,
        PendingView,
        ProviderOutage,
        ReplyInput,
        RetryInput,
        SteerInput,
        SubAgentQuestion,
        TranscriptPage,
        TranscriptQuery,
        UsageView,
    )
    from duragent.workflows.outage import OutageRider
    from duragent.workflows.questions import Questions
    from duragent.workflows.shell_host import ShellHost
    from duragent.workflows.sub_agents import SubAgents

WORKFLOW_NAME = "AgentWorkflow"
ACTIVATE_SKILL = "_activate_skill"

# Errors the LLM call recovers from once: a full context (compact, then retry) and a
# stored transcript this worker cannot see (resend it whole).
RECOVERABLE_LLM_ERRORS = frozenset(
    {LLMErrorType.CONTEXT_LENGTH.value, LLMErrorType.TRANSCRIPT_NOT_FOUND.value}
)
# Providers reuse tool call ids across turns: keys of runs started before this patch
# stay as they were, so a retried call of a running agent keeps its key.
KEY_PER_CYCLE_PATCH = "idempotency-key-per-cycle"
# A transcript page stays far below the query response limit (2 MB payloads); a page
# cut short says so by holding fewer messages than asked.
QUERY_PAGE_BYTES = 1_000_000
# A cancel that reached an LLM activity first ends the run Canceled (it was Failed).
CANCEL_PATCH = "cancel-during-activity"


@workflow.defn(name=WORKFLOW_NAME)
class AgentWorkflow:
    """A durable agent: survives worker restarts, waits for people, can be queried."""

    @workflow.init
    def __init__(self, input: AgentInput) -> None:
        self._input = input
        self._status = AgentStatus.RUNNING
        carry = input.carry or CarryState(
            transcript=[Message(role=Role.USER, content=input.task)],
            cycles=0,
            usage=TokenUsage(),
            started_at=workflow.now(),
        )
        self._transcript = list(carry.transcript)
        self._cycle_count = carry.cycles
        self._usage = carry.usage
        self._usage_by_model = dict(carry.usage_by_model)
        self._llm_calls = carry.llm_calls
        self._llm_attempts = carry.llm_attempts
        self._tool_calls = carry.tool_calls
        self._runs = carry.runs
        self._compactions = carry.compactions
        self._prompt_tokens = carry.prompt_tokens
        # The stored transcript the next LLM call builds on, and how much of ours it holds.
        self._transcript_ref = carry.transcript_ref
        self._sent = carry.sent
        self._tools: dict[str, ToolSpec] = {}
        self._skills: list[SkillSummary] = []
        self._inbox = list(carry.inbox)
        self._todos = list(carry.todos)
        self._doing: str | None = None
        self._answer: str | None = None
        self._output: JsonValue = None
        self._files: list[str] = []
        self._error: str | None = None
        self._cancel_reason: str | None = None
        self._started_at = carry.started_at
        self._last_activity = workflow.now()
        self._budget = budgets.Budget.of(input, carry.started_at)
        self._outage = OutageRider(input.llm_policy, self._on_outage, self._fail)
        self._shell = ShellHost(carry.shell)
        self._dropped = 0
        self._last_dropped: str | None = None
        self._workspace = input.workspace
        """The agent's workspace folder (``None``: the root), settled by ``run``."""
        # Only runs started with the attributes keep them current: the server of an older
        # run may not have them registered, and an upsert there would fail the task.
        self._searchable = workflow.info().typed_search_attributes.get(search.STATUS) is not None
        published = len(carry.transcript) if input.carry else 0
        self._events = AgentEvents(carry.events, published=published)
        deadline = self._budget.deadline
        self._questions = Questions(
            input.ask,
            input.parent,
            self._events,
            deadline=deadline,
            set_status=self._set_status,
            fail=self._fail,
        )
        self._approvals = Approvals(
            input.approval, self._events, deadline=deadline, set_status=self._set_status
        )
        self._sub_agents = SubAgents(
            input,
            self._budget,
            self._events,
            child=AgentWorkflow.run,
            searchable=self._searchable,
            usage=lambda: self._usage,
            add_usage=self._add_usage,
            doing=self._now_doing,
        )

    @workflow.run
    async def run(self, input: AgentInput) -> AgentResult:
        """Run cycles until the agent finishes, fails, is cancelled or runs out of cycles."""
        self._workspace = lifecycle.decide_workspace(input)
        await self._load_tools()
        self._shell.resume(self._workspace)
        try:
            while self._status is AgentStatus.RUNNING:
                if policy.cycles_exhausted(self._cycle_count, input.max_cycles):
                    self._set_status(AgentStatus.MAX_CYCLES)
                    break
                spent = budgets.spent(self._budget, self._usage, workflow.now())
                if spent is not None:
                    self._error = spent
                    self._set_status(AgentStatus.BUDGET_EXCEEDED)
                    break
                if lifecycle.history_full(input.history):
                    await self._continue_as_new()
                await self._cycle()
        except ActivityError as err:
            if not isinstance(err.cause, CancelledError) or not workflow.patched(CANCEL_PATCH):
                self._fail(calls.cause(err))
            # The run's cancel reached an activity first (an LLM call, a compaction).
            await self._clean_up_after_cancel()
            raise asyncio.CancelledError(calls.cause(err)) from None
        except asyncio.CancelledError:
            await self._clean_up_after_cancel()
            raise
        except ApplicationError:  # the run fails: its background commands stop first
            await self._shell.release()
            raise
        await self._shell.release()
        final = self._answer if self._output is None else self._output
        self._events.finished(self._status.value, result=final, error=self._error)
        return self._result()

    # --- queries -------------------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> AgentView:
        """Status, cycle, usage, what the agent waits for, and its answer once finished."""
        return AgentView(
            status=self._status,
            cycle=self._cycle_count,
            model=self._input.model,
            usage=self._usage,
            pending_question=self._questions.own,
            answer=self._answer,
            error=self._error,
            waiting_for=self._waiting_for(),
            pending_approvals=self._approvals.undecided,
            last_activity=self._last_activity,
            cancel_reason=self._cancel_reason,
            provider_outage=self._outage.outage,
            dropped_inputs=self._dropped,
            last_dropped=self._last_dropped,
            deadline=self._budget.deadline,
            workspace=self._workspace,
            shell=self._shell.carry(),
            output=self._output,
        )

    @workflow.query(name="transcript")
    def transcript(self, page: TranscriptQuery | None = None) -> TranscriptPage:
        """One page of the transcript (the system prompt excluded).

        Paged, and cut short past ``QUERY_PAGE_BYTES`` (at least one message), so a
        long run never exceeds the query size limit.
        """
        page = page or TranscriptQuery()
        messages = policy.page_within(
            self._transcript[page.offset : page.offset + page.limit], QUERY_PAGE_BYTES
        )
        return TranscriptPage(total=len(self._transcript), offset=page.offset, messages=messages)

    @workflow.query(name="usage")
    def usage(self) -> UsageView:
        """Token usage in total and per model, cycles, LLM calls and tool calls."""
        return UsageView(
            total=self._usage,
            by_model=dict(self._usage_by_model),
            cycles=self._cycle_count,
            llm_calls=self._llm_calls,
            llm_attempts=self._llm_attempts,
            tool_calls=self._tool_calls,
            runs=self._runs,
            compactions=self._compactions,
            context_tokens=self._context_tokens(),
        )

    @workflow.query(name="todos")
    def todos(self) -> list[TodoItem]:
        """The agent's todo list, as it last wrote it."""
        return list(self._todos)

    @workflow.query(name="pending")
    def pending(self) -> PendingView:
        """The pending question and the tool calls waiting for approval."""
        return PendingView(
            question=self._questions.own,
            approvals=self._approvals.pending,
            sub_agent_questions=self._questions.routed,
            sub_agents=self._sub_agents.running,
        )

    # --- updates and signals ---------------------------------------------------------

    @workflow.update(name="reply")
    async def reply(self, reply: ReplyInput) -> str:
        """Answer a pending ``_ask_user`` question; returns the question id.

        The question is this agent's, or a sub-agent's when ``question_id`` names it (or
        when it is the only one pending): the reply is then forwarded to that sub-agent.
        """
        return await self._questions.reply(reply)

    @reply.validator
    def _validate_reply(self, reply: ReplyInput) -> None:
        self._questions.validate(reply)

    @workflow.signal(name="sub_agent_question")
    def sub_agent_question(self, asked: SubAgentQuestion) -> None:
        """A sub-agent asks (or withdraws) a question; it waits here for a reply."""
        self._questions.route(asked)

    @workflow.signal(name="reply_signal")
    def reply_signal(self, reply: ReplyInput) -> None:
        """Fire-and-forget form of ``reply``: an invalid reply is logged and dropped."""
        try:
            self._questions.reply_signal(reply)
        except policy.InvalidReply as err:
            self._drop("reply_signal", str(err))

    @workflow.update(name="decide")
    async def decide(self, decision: ApprovalDecision) -> str:
        """Approve, reject or edit a pending tool call; returns the call id.

        Edited arguments are checked against the tool's model by an activity (the
        worker holds the models); invalid ones fail the update and the call stays pending.
        """
        return await self._approvals.decide(decision)

    @decide.validator
    def _validate_decision(self, decision: ApprovalDecision) -> None:
        self._approvals.validate(decision)

    @workflow.signal(name="say")
    def say(self, steer: SteerInput) -> None:
        """A user message for the agent, folded in before its next LLM call.

        A message over its bound, or one that would overfill the unread inbox, is
        dropped (a signal cannot be refused): logged, and counted in ``status``.
        """
        problem = policy.steering_too_large(steer.message, self._inbox)
        if problem is not None:
            self._drop("say", problem)
            return
        self._inbox.append(steer.message)

    @workflow.update(name="retry")
    def retry(self, request: RetryInput) -> str:
        """Try the LLM call again after the provider's retries ran out (operators)."""
        self._outage.request_retry()
        workflow.logger.info("operator asked to retry the provider: %s", request.reason)
        return "retrying"

    @retry.validator
    def _validate_retry(self, request: RetryInput) -> None:
        if not self._outage.awaiting_operator:
            raise ApplicationError(
                f"the agent is not waiting for a retry (status {self._status.value}); "
                "retry applies once its provider retries ran out (llm_policy.on_exhausted=wait)",
                type="InvalidRetry",
            )

    # --- the cycle -------------------------------------------------------------------

    async def _load_tools(self) -> None:
        described = await lifecycle.describe_tools(self._input.tools)
        if described.unknown:
            self._fail(f"unknown tools requested: {', '.join(described.unknown)}", "UnknownTools")
        self._tools = {t.name: t for t in described.tools}
        # A schema the model could never satisfy ends the run now, not at max_cycles.
        problem = policy.output_schema_problem(self._input.output_schema, self._tools)
        if problem is not None:
            self._fail(problem, "InvalidOutputSchema")
        self._skills = described.skills if ACTIVATE_SKILL in self._tools else []

    async def _cycle(self) -> None:
        cycle = self._cycle_count + 1
        with telemetry.cycle_span(cycle):
            if policy.should_compact(self._context_tokens(), self._input.memory):
                await self._compact(force=False)
            self._fold_inbox()
            turn = await self._call_llm(cycle)
            calls = turn.message.tool_calls
            self._record_turn(turn)
            # Calls the LLM activity refused (oversize arguments) are answered at once.
            refused = {c.id: policy.refused_result(c) for c in calls if c.refused}
            runnable = [c for c in calls if c.id not in refused]

            control = policy.interpret_control_calls(
                [c for c in runnable if self._is_control(c)],
                self._todos,
                output_schema=self._input.output_schema,
            )
            control = await self._definition_checked(control)
            if control.todos is not None:
                self._todos = control.todos
            results, delegated = await asyncio.gather(
                self._run_with_approval([c for c in runnable if not self._is_control(c)]),
                self._sub_agents.run(
                    [c for c in runnable if c.name in SUB_TASK_TOOLS],
                    cycle=self._cycle_count,
                    workspace=self._workspace,
                ),
            )
            results.update(delegated)
            results.update(control.results)
            results.update(refused)
            await self._apply(policy.decide(calls, control), calls, results)
            if control.compress:
                await self._compact(force=True)

    async def _definition_checked(self, control: policy.ControlOutcome) -> policy.ControlOutcome:
        """A typed finish of a run started from a definition, checked by its type too."""
        finish, agent = control.finish, self._input.agent
        if agent is None or not isinstance(finish, TypedTaskFinishArgs):
            return control
        if not workflow.patched(catalog.DEFINITION_OUTPUT_PATCH):
            return control
        verdict = await catalog.definition_verdict(agent, finish.output)
        return control if verdict.error is None else policy.refuse_finish(control, verdict.error)

    def _fold_inbox(self) -> None:
        # A safe point: no tool is mid-flight and the next prompt is not built yet.
        for text in self._inbox:
            self._transcript.append(Message(role=Role.USER, content=text))
        self._inbox.clear()
        self._events.messages(self._transcript, self._cycle_count)

    async def _call_llm(self, cycle: int) -> LLMResult:
        """The LLM call, recovering once from a full context or a lost stored transcript."""
        self._doing = f"LLM call (cycle {cycle})"
        for attempt in (1, 2):
            try:
                return await self._outage.call(lambda: self._llm_activity(cycle))
            except ActivityError as err:
                kind = calls.error_type(err)
                if attempt == 2 or kind not in RECOVERABLE_LLM_ERRORS:
                    raise
                if kind == LLMErrorType.CONTEXT_LENGTH:
                    await self._compact(force=True)
                self._transcript_ref, self._sent = None, 0  # resend the transcript whole
        raise AssertionError("unreachable")

    async def _llm_activity(self, cycle: int) -> LLMResult:
        has_sub_agents = bool(self._input.sub_agents) and self._input.parent is None
        names = policy.offered_tools(
            list(self._tools), self._context_tokens(), self._input.memory, sub_agents=has_sub_agents
        )
        sections = [policy.SUB_AGENT_ROLE] if self._input.parent else []
        if has_sub_agents:
            sections += policy.sub_agents_section(self._input.sub_agents)
        sections += policy.skills_section(self._skills)
        naive = self._input.history.ship_full_transcript or self._transcript_ref is None
        request = LLMRequest(
            model=self._input.model,
            system=policy.system_prompt(self._input.system_prompt, self._started_at, sections),
            messages=self._transcript if naive else self._transcript[self._sent :],
            base_ref=None if naive else self._transcript_ref,
            tool_names=names,
            stream=self._input.stream,
            temperature=self._input.temperature,
            options=self._input.model_options,
            workspace=self._workspace,
            finish_output_schema=self._input.output_schema,
            events=self._events.tokens(cycle, self._input.llm_policy.token_batch_seconds),
        )
        self._llm_calls += 1
        return await workflow.execute_activity_method(
            LLMActivities.chat,
            request,
            summary=f"cycle {cycle}: {self._input.model}",
            **calls.options(self._input.llm_policy),
        )

    def _record_turn(self, turn: LLMResult) -> None:
        self._cycle_count += 1
        self._transcript.append(turn.message)
        self._transcript_ref, self._sent = turn.transcript_ref, len(self._transcript)
        self._prompt_tokens = turn.usage.input_tokens
        self._llm_attempts += turn.attempt
        self._add_usage(turn.model or self._input.model, turn.usage)
        self._last_activity = workflow.now()
        self._events.messages(self._transcript, self._cycle_count)

    def _add_usage(self, model: str, usage: TokenUsage) -> None:
        self._usage = self._usage + usage
        self._usage_by_model[model] = self._usage_by_model.get(model, TokenUsage()) + usage

    def _context_tokens(self) -> int:
        return policy.context_tokens(self._prompt_tokens, self._transcript, self._sent)

    async def _compact(self, *, force: bool) -> None:
        """Stage 1 (stub old large results), then stage 2 (summary) if still needed."""
        with telemetry.compaction_span(forced=force):
            memory = self._input.memory
            stored = (self._transcript_ref, self._sent)  # what the store holds of ours
            before = len(self._transcript)
            self._transcript, _ = policy.stub_old_results(
                self._transcript, memory.keep_recent_turns
            )
            self._transcript_ref, self._sent, self._prompt_tokens = None, 0, 0
            if force or policy.should_compact(self._context_tokens(), memory):
                head, middle, tail = policy.summary_split(
                    self._transcript, memory.keep_recent_turns
                )
                if middle:
                    model = memory.summary_model or self._input.model
                    self._doing = f"compacting memory ({len(middle)} messages)"
                    request = policy.summary_request(model, head, middle, *stored)
                    summary = await self._summarize(request, middle)
                    self._add_usage(model, summary.usage)
                    self._transcript = policy.compacted(head, middle, tail, summary.summary)
            self._compactions += 1
            self._events.compaction(self._cycle_count, before, self._transcript)

    async def _summarize(self, request: SummarizeRequest, middle: list[Message]) -> SummarizeResult:
        """The summary stage, by reference when it can be; inline if the store lost it."""
        options = calls.options(self._input.llm_policy)
        summary = f"compaction: {len(middle)} messages"
        try:
            return await self._outage.call(
                lambda: workflow.execute_activity_method(
                    MemoryActivities.summarize, request, summary=summary, **options
                )
            )
        except ActivityError as err:
            if (
                request.transcript_ref is None
                or calls.error_type(err) != LLMErrorType.TRANSCRIPT_NOT_FOUND
            ):
                raise
        inline = SummarizeRequest(model=request.model, messages=middle)
        return await self._outage.call(
            lambda: workflow.execute_activity_method(
                MemoryActivities.summarize, inline, summary=summary, **options
            )
        )

    async def _run_with_approval(self, calls: list[ToolCall]) -> dict[str, ToolResult]:
        gated = self._approvals.gated(calls, self._tools)
        results = await self._run_tools([c for c in calls if c.id not in gated])
        if gated:
            review = await self._approvals.review([c for c in calls if c.id in gated], gated)
            self._show_edits(review.edited)
            results.update(review.refused)
            results.update(await self._run_tools(review.approved))
        return results

    def _show_edits(self, edited: dict[str, ToolCall]) -> None:
        """The transcript shows the arguments that ran, not the ones first proposed."""
        if not edited:
            return
        index = policy.last_turn_index(self._transcript)
        turn = self._transcript[index]
        calls = [edited.get(c.id, c) for c in turn.tool_calls]
        self._transcript[index] = turn.model_copy(update={"tool_calls": calls})
        if index < self._sent:  # the store holds the turn as proposed: resend it whole
            self._transcript_ref, self._sent = None, 0

    async def _run_tools(self, calls: list[ToolCall]) -> dict[str, ToolResult]:
        if calls:
            self._doing = "tools: " + ", ".join(c.name for c in calls)
        self._tool_calls += len(calls)
        cycle = self._cycle_count
        outcomes = await asyncio.gather(
            *(self._events.tool(c, cycle, self._run_tool(c)) for c in calls)
        )
        return {r.call_id: r for r in outcomes}

    async def _run_tool(self, call: ToolCall) -> ToolResult:
        spec = self._tools.get(call.name)
        if spec is None:
            return policy.unknown_tool_result(call, list(self._tools))
        key = f"{workflow.info().workflow_id}:{call.id}"
        if workflow.patched(KEY_PER_CYCLE_PATCH):
            key = f"{workflow.info().workflow_id}:{self._cycle_count}:{call.id}"
        request = ToolRequest(
            call=call,
            idempotency_key=key,
            large_result_chars=self._input.memory.large_result_chars,
            workspace=self._workspace,
        )
        if self._shell.applies(spec):
            return await self._shell.run(request, spec)
        try:
            return await workflow.execute_activity_method(
                ToolActivities.run_tool,
                request,
                summary=call.name,
                **calls.options(policy.tool_policy(spec)),
            )
        except ActivityError as err:
            # Retries are exhausted: the model hears about it and decides; the run goes on.
            return policy.failed_result(call, calls.cause(err))

    # --- endings of a cycle ----------------------------------------------------------

    async def _apply(
        self, directive: policy.Directive, calls: list[ToolCall], results: dict[str, ToolResult]
    ) -> None:
        if directive.question is not None:
            results[directive.question.id] = await self._questions.ask(directive.question)
        # Every call gets its answer, in the order the model made them.
        self._transcript.extend(policy.tool_message(results[c.id]) for c in calls)
        self._events.messages(self._transcript, self._cycle_count)
        if directive.kind is policy.DirectiveKind.FINISH:
            self._answer = directive.answer
            self._output = directive.output
            self._files = list(directive.files)
            self._set_status(AgentStatus.COMPLETED)
        elif directive.kind is policy.DirectiveKind.NUDGE:
            self._transcript.append(Message(role=Role.USER, content=policy.CONTINUE_HINT))

    # --- continue-as-new ---------------------------------------------------------------

    async def _continue_as_new(self) -> NoReturn:
        # A safe point: between cycles, nothing pending; let in-flight handlers finish so
        # no update is lost across the boundary (a stream reader's poll is released first).
        self._events.detach()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if policy.carry_too_large(self._transcript, self._input.history):
            # The transcript rides in the next run's input: keep that payload well under
            # Temporal's limits (warning at 512 KB, failure at 2 MB).
            await self._compact(force=True)
        carry = CarryState(
            transcript=self._transcript,
            cycles=self._cycle_count,
            usage=self._usage,
            usage_by_model=self._usage_by_model,
            llm_calls=self._llm_calls,
            llm_attempts=self._llm_attempts,
            tool_calls=self._tool_calls,
            todos=self._todos,
            inbox=self._inbox,
            started_at=self._started_at,
            runs=self._runs + 1,
            compactions=self._compactions,
            prompt_tokens=self._prompt_tokens,
            transcript_ref=self._transcript_ref,
            sent=self._sent,
            shell=self._shell.carry(),
            events=self._events.carry(cycle=self._cycle_count, run=self._runs + 1),
        )
        lifecycle.hand_over(self._input, carry, self._workspace)

    # --- state and endings -------------------------------------------------------------

    def _on_outage(self, outage: ProviderOutage | None) -> None:
        status = AgentStatus.RUNNING if outage is None else AgentStatus.WAITING_PROVIDER
        if status is not self._status:
            self._set_status(status)

    def on_dropped_signal(self, handler: str, reason: str) -> None:
        """Told by :mod:`workflows.handler_guard` when it drops a malformed signal."""
        self._drop(handler, reason)

    def _drop(self, handler: str, reason: str) -> None:
        """A signal that cannot be applied: dropped, logged, and counted for ``status``."""
        self._dropped += 1
        self._last_dropped = f"{handler}: {reason}"
        workflow.logger.warning("%s signal dropped: %s", handler, reason)

    def _set_status(self, status: AgentStatus) -> None:
        self._status = status
        self._last_activity = workflow.now()
        self._doing = None
        if self._searchable:
            workflow.upsert_search_attributes([search.STATUS.value_set(status.value)])
        self._events.status(status.value, self._cycle_count, self._waiting_for())

    def _now_doing(self, what: str) -> None:
        self._doing = what

    def _waiting_for(self) -> str | None:
        own, routed = self._questions.own, self._questions.routed
        if self._status is AgentStatus.WAITING_USER and own is not None:
            return f"a reply to question {own.id}: {own.question}"
        if self._status is AgentStatus.WAITING_APPROVAL:
            waiting = [a.tool for a in self._approvals.pending]
            return f"approval of {len(waiting)} tool call(s): {', '.join(waiting)}"
        if routed:
            return f"a reply to sub-agent question {routed[0].id}: {routed[0].question}"
        return self._doing if self._status is AgentStatus.RUNNING else None

    def _is_control(self, call: ToolCall) -> bool:
        spec = self._tools.get(call.name)
        return spec is not None and spec.kind is ToolKind.CONTROL

    async def _clean_up_after_cancel(self) -> None:
        self._cancel_reason = workflow.cancellation_reason() or "cancelled"
        self._questions.clear()
        self._approvals.clear()
        self._set_status(AgentStatus.CANCELLED)
        self._events.finished(AgentStatus.CANCELLED.value, error=self._cancel_reason)
        await self._shell.release()
        # The cancel was delivered to the run's task once; new work may still be scheduled,
        # so the cleanup runs to completion before the run is marked Canceled.
        cleaned = await lifecycle.release_after_cancel(self._cancel_reason)
        workflow.logger.info("agent cancelled (%s); released %s", self._cancel_reason, cleaned)

    def _fail(self, message: str, kind: str = "AgentFailed") -> NoReturn:
        self._error = message
        self._set_status(AgentStatus.FAILED)
        self._events.finished(AgentStatus.FAILED.value, error=message)
        workflow.logger.warning("agent failed: %s", message)
        raise ApplicationError(message, type=kind, non_retryable=True)

    def _result(self) -> AgentResult:
        return AgentResult(
            status=self._status,
            answer=self._answer,
            cycles=self._cycle_count,
            usage=self._usage,
            files=self._files,
            workspace=self._workspace,
            transcript_length=len(self._transcript),
            error=self._error,
            runs=self._runs,
            compactions=self._compactions,
            llm_attempts=self._llm_attempts,
            output=self._output,
        )
