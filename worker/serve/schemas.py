"""What the API accepts: one pydantic model per request body and per query string.

The rules are the CLI's (:mod:`worker.cli_args`), applied to each field, so a value the
CLI refuses in one line the API refuses with 422 naming the field, and both keep what
they send far below Temporal's payload limit. Unknown fields are refused too: a typo
(``questionid``) is an error, not a silently missing value.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
)

from duragent.activities.models import ApprovalMode
from duragent.worker import cli_args as arg
from duragent.worker.cli import GRAPH_LS_STATUSES
from duragent.workflows.models import ApprovalAction

MAX_LIST = 1_000
"""Rows of a listing at most (``limit``)."""


def _rule(check: Callable[[str], Any]) -> AfterValidator:
    """A CLI argument check as a pydantic validator (its message becomes the field's)."""
    return AfterValidator(lambda value: _checked(check, value))


def _checked(check: Callable[[str], Any], value: str) -> str:
    try:
        check(value)
    except argparse.ArgumentTypeError as err:
        raise ValueError(str(err)) from None
    return value


AgentId = Annotated[str, _rule(arg.agent_id)]
GraphId = Annotated[str, _rule(arg.graph_id)]
Task = Annotated[str, _rule(arg.text("the task", max_bytes=arg.MAX_TASK_BYTES))]
Model = Annotated[str, _rule(arg.name("model"))]
Owner = Annotated[str, _rule(arg.name("owner"))]
SystemPrompt = Annotated[str, _rule(arg.text("system_prompt"))]
Workspace = Annotated[str, _rule(arg.workspace_name)]
Answer = Annotated[str, _rule(arg.text("the answer", max_bytes=arg.MAX_MESSAGE_BYTES))]
QuestionId = Annotated[str, _rule(arg.name("question_id"))]
CallId = Annotated[str, _rule(arg.name("call_id"))]
Fingerprint = Annotated[str, _rule(arg.name("fingerprint"))]
RejectMessage = Annotated[str, _rule(arg.text("message", max_bytes=arg.MAX_REJECT_BYTES))]
SayMessage = Annotated[str, _rule(arg.text("the message", max_bytes=arg.MAX_MESSAGE_BYTES))]
Reason = Annotated[str, _rule(arg.text("reason", max_bytes=1_000))]
GateId = Annotated[str, _rule(arg.name("gate_id"))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartAgent(_Strict):
    """``POST /api/v1/agents``."""

    task: Task
    id: AgentId | None = None
    """The agent id (default: a new one); the id of a running agent returns that agent."""
    model: Model | None = None
    tools: list[str] | None = Field(None, min_length=1)
    max_cycles: int = Field(50, ge=1, le=100_000)
    system_prompt: SystemPrompt | None = None
    owner: Owner | None = None
    workspace: Workspace | None = None
    approval: dict[str, ApprovalMode] | None = None
    """Per-tool approval modes, e.g. ``{"_write_file": "always"}``."""

    @field_validator("tools")
    @classmethod
    def _tool_names(cls, names: list[str] | None) -> list[str] | None:
        if names is not None:
            _checked(arg.tool_names, ",".join(names))
        return names

    @field_validator("approval")
    @classmethod
    def _approval_names(
        cls, modes: dict[str, ApprovalMode] | None
    ) -> dict[str, ApprovalMode] | None:
        bad = [name for name in modes or {} if not arg.TOOL_NAME.match(name)]
        if bad:
            raise ValueError(f"not a tool name: {bad[0]!r}")
        return modes


class Reply(_Strict):
    """``POST /api/v1/agents/{id}/reply``: one answer, or several for a multiple choice."""

    answer: Answer | list[Answer]
    question_id: QuestionId | None = None
    """The question answered (default: the only one pending); a stale one is refused."""

    @field_validator("answer")
    @classmethod
    def _not_empty(cls, answer: str | list[str]) -> str | list[str]:
        if isinstance(answer, list) and not answer:
            raise ValueError("give at least one answer")
        return answer


class Decide(_Strict):
    """``POST /api/v1/agents/{id}/decide``: approve, reject or edit a pending tool call."""

    call_id: CallId
    action: ApprovalAction
    message: RejectMessage | None = None
    """A rejection's message to the model."""
    arguments: dict[str, JsonValue] | str | None = Field(None, validate_default=True)
    """An edit's new arguments: a JSON object (or its text)."""
    fingerprint: Fingerprint | None = None
    """Refuse if the call's arguments are no longer these."""

    @field_validator("arguments")
    @classmethod
    def _edit_has_arguments(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("action") is ApprovalAction.EDIT:
                raise ValueError("an edit needs new arguments, a JSON object")
            return None
        return _checked(arg.json_object, value if isinstance(value, str) else json.dumps(value))


class Say(_Strict):
    """``POST /api/v1/agents/{id}/say``: a message the agent reads before its next call."""

    message: SayMessage


class Cancel(_Strict):
    """``POST …/agents/{id}/cancel`` and ``…/graphs/{id}/cancel`` (the body is optional)."""

    reason: Reason | None = None


class StartGraph(_Strict):
    """``POST /api/v1/graphs``: a graph spec (an object, or YAML/JSON text) and its input."""

    spec: dict[str, JsonValue] | str
    input: dict[str, JsonValue] = Field(default_factory=dict)
    id: GraphId | None = None
    model: Model | None = None
    owner: Owner | None = None


class GateAnswer(_Strict):
    """``POST /api/v1/graphs/{id}/decide``: the answer to one open gate."""

    gate_id: GateId
    answer: JsonValue = None

    @field_validator("answer")
    @classmethod
    def _bounded(cls, answer: JsonValue) -> JsonValue:
        size = len(json.dumps(answer).encode())
        if size > arg.MAX_MESSAGE_BYTES:
            raise ValueError(f"the answer is {size:,} bytes; at most {arg.MAX_MESSAGE_BYTES:,}")
        return answer


class ListAgents(_Strict):
    """``GET /api/v1/agents?status=&owner=&limit=``."""

    statuses: ClassVar[tuple[str, ...]] = arg.LS_STATUSES
    status: str | None = None
    """Only runs in this status (the values ``duragent ls --status`` takes)."""
    owner: Owner | None = None
    limit: int = Field(50, ge=1, le=MAX_LIST)

    @field_validator("status")
    @classmethod
    def _known(cls, status: str | None) -> str | None:
        if status is not None and status not in cls.statuses:
            raise ValueError(f"{status!r} is no status; one of: {', '.join(cls.statuses)}")
        return status


class ListGraphs(ListAgents):
    """``GET /api/v1/graphs?status=&owner=&limit=``."""

    statuses: ClassVar[tuple[str, ...]] = (*GRAPH_LS_STATUSES, *arg.CLOSED_BY_TEMPORAL)


class Page(_Strict):
    """``GET /api/v1/agents/{id}/transcript?offset=&limit=``."""

    offset: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=500)
