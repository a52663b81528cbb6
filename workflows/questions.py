"""Questions for a person, in workflow code: the agent's own, and its sub-agents'.

The model asks with ``_ask_user``; the run waits for the ``reply`` update (or the
``reply_signal`` signal) until ``ask.deadline_seconds``, or the agent's own deadline,
passes, then goes on with ``ask.default_answer`` or fails (``ask.on_timeout``).

A sub-agent has nobody to ask directly: it tells its parent (the ``sub_agent_question``
signal), the parent holds the question with the sub-agent's id in front of its own, and
a reply to that id is forwarded to the sub-agent as a ``reply_signal``.

The workflow registers the handlers (Temporal finds them on the workflow class);
:class:`Questions` holds what is asked and what the handlers do.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from duragent.activities.models import ToolResult, ToolStatus
    from duragent.workflows import policy
    from duragent.workflows.models import (
        AgentStatus,
        AskPolicy,
        OnQuestionTimeout,
        ParentLink,
        PendingQuestion,
        ReplyInput,
        SubAgentQuestion,
    )
    from duragent.workflows.waiting import wait_within

if TYPE_CHECKING:
    # Typing only: the events module stays in the sandbox (it registers handlers).
    from duragent.workflows.events import AgentEvents


class Questions:
    """The agent's pending question, its reply, and its sub-agents' questions.

    Args:
        settings: The run's ``ask`` policy.
        parent: The agent's parent, when it is a sub-agent: its questions go there too.
        events: The run's event stream.
        deadline: The agent's own deadline, if any: no question waits past it.
        set_status: Sets the agent's status (waiting for the user, then running).
        fail: Ends the run with a message and an error type.
    """

    def __init__(
        self,
        settings: AskPolicy,
        parent: ParentLink | None,
        events: AgentEvents,
        *,
        deadline: datetime | None,
        set_status: Callable[[AgentStatus], None],
        fail: Callable[[str, str], NoReturn],
    ) -> None:
        self._settings = settings
        self._parent = parent
        self._events = events
        self._deadline = deadline
        self._set_status = set_status
        self._fail = fail
        self._question: PendingQuestion | None = None
        self._reply: str | None = None
        self._routed: dict[str, PendingQuestion] = {}
        """Sub-agents' questions waiting here, by routed id (``<agent id>:<id>``)."""

    @property
    def own(self) -> PendingQuestion | None:
        """The agent's own question, while it waits for a reply."""
        return self._question

    @property
    def routed(self) -> list[PendingQuestion]:
        """The sub-agents' questions waiting here, oldest first."""
        return list(self._routed.values())

    # --- the handlers' bodies ----------------------------------------------------------

    def validate(self, reply: ReplyInput) -> None:
        """The ``reply`` validator: a bad reply is rejected before it reaches history."""
        try:
            policy.reply_text(self._target(reply), reply)
        except policy.InvalidReply as err:
            raise ApplicationError(str(err), type="InvalidReply") from None

    async def reply(self, reply: ReplyInput) -> str:
        """The ``reply`` update: answer the question it targets; returns its id."""
        question = self._target(reply)
        assert question is not None  # guaranteed by the validator
        text = policy.reply_text(question, reply)
        if question.agent_id is None:
            self._reply = text
        else:
            await self._forward(question, reply)
        return question.id

    def reply_signal(self, reply: ReplyInput) -> None:
        """The ``reply_signal`` signal: answer the agent's own question.

        Raises:
            policy.InvalidReply: The reply does not fit (the caller drops it).
        """
        self._reply = policy.reply_text(None if self._reply is not None else self._question, reply)

    def route(self, asked: SubAgentQuestion) -> None:
        """The ``sub_agent_question`` signal: hold (or withdraw) a sub-agent's question."""
        prefix = f"{asked.agent_id}:"
        for key in [k for k in self._routed if k.startswith(prefix)]:
            del self._routed[key]
        if asked.question is not None:
            routed = asked.question.model_copy(
                update={"id": prefix + asked.question.id, "agent_id": asked.agent_id}
            )
            self._routed[routed.id] = routed
        self._events.sub_questions(asked.agent_id, self._routed)

    def clear(self) -> None:
        """Forget the own question (the run was cancelled)."""
        self._question = None

    def _target(self, reply: ReplyInput) -> PendingQuestion | None:
        own = self._question if self._reply is None else None
        if reply.question_id is not None and reply.question_id in self._routed:
            return self._routed[reply.question_id]
        if own is None and reply.question_id is None and len(self._routed) == 1:
            return next(iter(self._routed.values()))
        return own

    async def _forward(self, question: PendingQuestion, reply: ReplyInput) -> None:
        del self._routed[question.id]
        assert question.agent_id is not None
        child = workflow.get_external_workflow_handle(question.agent_id)
        original = question.id.removeprefix(f"{question.agent_id}:")
        await child.signal("reply_signal", ReplyInput(answer=reply.answer, question_id=original))

    # --- asking ------------------------------------------------------------------------

    async def ask(self, question: PendingQuestion) -> ToolResult:
        """Ask a person and wait for the reply; the ``_ask_user`` call's result."""
        self._question = question.model_copy(update={"asked_at": workflow.now()})
        self._reply = None
        self._set_status(AgentStatus.WAITING_USER)
        self._events.question(self._question)
        await self._tell_parent(self._question)
        answered = await wait_within(
            lambda: self._reply is not None, self._settings.deadline_seconds, self._deadline
        )
        answer = self._reply if answered and self._reply is not None else self._no_answer(question)
        self._question, self._reply = None, None
        self._events.question(question, answer=answer, resolved=True)
        await self._tell_parent(None)
        self._set_status(AgentStatus.RUNNING)
        return ToolResult(
            call_id=question.id, name="_ask_user", status=ToolStatus.SUCCESS, content=answer
        )

    def _no_answer(self, question: PendingQuestion) -> str:
        ask = self._settings
        # Past the deadline the run ends at the next cycle boundary, for that reason.
        past_deadline = self._deadline is not None and workflow.now() >= self._deadline
        if ask.on_timeout is OnQuestionTimeout.FAIL and not past_deadline:
            self._fail(
                f"nobody answered {question.question!r} within {ask.deadline_seconds:g} s",
                "QuestionTimeout",
            )
        return ask.default_answer

    async def _tell_parent(self, question: PendingQuestion | None) -> None:
        """A sub-agent cannot ask the user directly: its question waits on the parent."""
        if self._parent is None:
            return
        asked = SubAgentQuestion(agent_id=workflow.info().workflow_id, question=question)
        try:
            await workflow.get_external_workflow_handle(self._parent.workflow_id).signal(
                "sub_agent_question", asked
            )
        except FailureError as err:  # the parent is gone: nobody can answer but a deadline
            workflow.logger.warning("could not reach parent %s: %s", self._parent.workflow_id, err)
