"""Declaring tools (policies, descriptions, statuses), the default set, and todos."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel
from temporalio.testing import ActivityEnvironment

from duragent.activities.errors import ToolError
from duragent.activities.models import ApprovalMode, ToolCall, ToolKind, ToolRequest, ToolStatus
from duragent.activities.tools import (
    MemoryWorkspace,
    TodoItem,
    TodoStatus,
    TodoWriteArgs,
    ToolContext,
    ToolOutput,
    ToolRegistry,
    default_tools,
    open_todos,
    parse_arguments,
    tool,
)
from duragent.activities.tools.activity import ToolActivities
from duragent.activities.tools.control import TODO_WRITE


class Deploy(BaseModel):
    target: str


@tool(
    timeout=timedelta(minutes=5),
    heartbeat=timedelta(seconds=20),
    max_attempts=1,
    approval=ApprovalMode.ALWAYS,
)
async def deploy(args: Deploy, ctx: ToolContext) -> ToolOutput:
    """Deploy a build.

    The deployment goes on after the call returns; its status says so.

    Args:
        args: Where to deploy.
        ctx: The tool context.
    """
    return ToolOutput(f"deploying to {args.target}", status=ToolStatus.RUNNING)


def test_a_custom_tool_declares_its_policies() -> None:
    spec = deploy.spec()
    assert (spec.start_to_close_seconds, spec.heartbeat_seconds, spec.max_attempts) == (
        300,
        20,
        1,
    )
    assert spec.approval is ApprovalMode.ALWAYS
    assert deploy.approval is ApprovalMode.ALWAYS


def test_the_description_is_the_docstring_before_its_sections() -> None:
    assert deploy.description == (
        "Deploy a build.\n\nThe deployment goes on after the call returns; its status says so."
    )


async def test_a_tool_may_report_another_status() -> None:
    activities = ToolActivities(ToolRegistry([deploy]), MemoryWorkspace())
    call = ToolCall(id="c", name="deploy", arguments='{"target": "prod"}')
    result = await ActivityEnvironment().run(
        activities.run_tool, ToolRequest(call=call, idempotency_key="wf:c")
    )
    assert (result.status, result.content) == (ToolStatus.RUNNING, "deploying to prod")


def test_the_default_tools() -> None:
    tools = {t.name: t for t in default_tools()}
    assert list(tools) == [
        "_task_finish",
        "_ask_user",
        "_todo_write",
        "_compress_memory",
        "_create_sub_task",
        "_batch_sub_tasks",
        "_list_files",
        "_file_info",
        "_read_file",
        "_write_file",
        "_file_str_replace",
        "_workspace_grep",
        "_bash",
        "_check_background_command",
        "_stop_background_command",
        "_read_image",
        "_activate_skill",
    ]
    assert {n for n, t in tools.items() if t.kind is ToolKind.CONTROL} == {
        "_task_finish",
        "_ask_user",
        "_todo_write",
        "_compress_memory",
        "_create_sub_task",
        "_batch_sub_tasks",
    }
    assert {n for n, t in tools.items() if t.approval is not ApprovalMode.NEVER} == {"_bash"}
    for t in tools.values():  # every schema is generated and has a description
        schema = t.openai_schema()["function"]
        assert schema["description"] and schema["parameters"]["type"] == "object"


def todos(*items: tuple[str, str]) -> str:
    body = ", ".join(f'{{"id": "{i}", "content": "do {i}", "status": "{s}"}}' for i, s in items)
    return f'{{"todos": [{body}]}}'


def test_todo_write_accepts_a_consistent_list() -> None:
    args = parse_arguments(
        TODO_WRITE,
        TodoWriteArgs,
        todos(("1", "completed"), ("2", "in_progress"), ("3", "pending")),
    )
    assert [t.status for t in args.todos] == [
        TodoStatus.COMPLETED,
        TodoStatus.IN_PROGRESS,
        TodoStatus.PENDING,
    ]
    assert [t.id for t in open_todos(args.todos)] == ["2", "3"]
    assert parse_arguments(TODO_WRITE, TodoWriteArgs, '{"todos": []}').todos == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (todos(("1", "in_progress"), ("2", "in_progress")), "at most one todo may be in_progress"),
        (todos(("1", "pending"), ("1", "completed")), "todo ids must be unique; repeated: 1"),
        (todos(("1", "started")), "todos.0.status: Input should be 'pending'"),
        ('{"todos": [{"id": "", "content": "x"}]}', "todos.0.id"),
    ],
)
def test_todo_write_refuses_an_inconsistent_list(arguments: str, message: str) -> None:
    with pytest.raises(ToolError) as err:
        parse_arguments(TODO_WRITE, TodoWriteArgs, arguments)
    assert err.value.code == "invalid_arguments"
    assert message in str(err.value)


def test_open_todos_keeps_the_order() -> None:
    items = [
        TodoItem(id="a", content="x", status=TodoStatus.PENDING),
        TodoItem(id="b", content="y", status=TodoStatus.COMPLETED),
        TodoItem(id="c", content="z", status=TodoStatus.IN_PROGRESS),
    ]
    assert [t.id for t in open_todos(items)] == ["a", "c"]
    assert open_todos([]) == []
