"""Control tools: the workflow interprets these itself, they have no activity.

Their argument models live here, beside the other tools, so the schemas the model sees
come from one registry; the workflow validates them with the same models.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from activities.tools.registry import Tool, control_tool

TASK_FINISH = "_task_finish"
ASK_USER = "_ask_user"
TODO_WRITE = "_todo_write"
COMPRESS_MEMORY = "_compress_memory"
CREATE_SUB_TASK = "_create_sub_task"
BATCH_SUB_TASKS = "_batch_sub_tasks"
SUB_TASK_TOOLS = frozenset({CREATE_SUB_TASK, BATCH_SUB_TASKS})


class TaskFinishArgs(BaseModel):
    """Arguments of ``_task_finish``."""

    message: str = Field(description="The final answer for the user.")
    files: list[str] = Field(
        default_factory=list, description="Workspace files that are part of the result."
    )


class Selection(StrEnum):
    """How the user may answer a question."""

    SINGLE = "single"
    MULTIPLE = "multiple"
    FREE_TEXT = "free_text"


class AskUserArgs(BaseModel):
    """Arguments of ``_ask_user``."""

    question: str = Field(description="The question for the user.")
    options: list[str] | None = Field(None, description="Choices to offer, if any.")
    selection: Selection = Field(Selection.FREE_TEXT, description="How the user answers.")
    allow_custom: bool = Field(False, description="Accept an answer that is not among the options.")


class TodoStatus(StrEnum):
    """Where a todo item stands."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class TodoItem(BaseModel):
    """One item of the agent's todo list."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, description="Stable id of the item, unique in the list.")
    content: str = Field(min_length=1, description="What is to be done, in one line.")
    status: TodoStatus = Field(TodoStatus.PENDING, description="pending, in_progress or completed.")


class TodoWriteArgs(BaseModel):
    """Arguments of ``_todo_write``: the whole list, every time."""

    todos: list[TodoItem] = Field(description="The complete todo list, replacing the previous one.")

    @model_validator(mode="after")
    def _consistent(self) -> TodoWriteArgs:
        ids = [t.id for t in self.todos]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"todo ids must be unique; repeated: {', '.join(repeated)}")
        started = [t.id for t in self.todos if t.status is TodoStatus.IN_PROGRESS]
        if len(started) > 1:
            raise ValueError(
                f"at most one todo may be in_progress at a time; found {len(started)}: "
                f"{', '.join(started)}"
            )
        return self


class CompressMemoryArgs(BaseModel):
    """Arguments of ``_compress_memory``."""

    reason: str | None = Field(None, description="Why now (optional).")


class CreateSubTaskArgs(BaseModel):
    """Arguments of ``_create_sub_task``."""

    agent: str = Field(description="Name of the sub-agent to run (see the system prompt).")
    task: str = Field(min_length=1, description="What the sub-agent should do.")
    output_requirements: str | None = Field(
        None, description="What its answer must contain, and in which form."
    )


class BatchSubTasksArgs(BaseModel):
    """Arguments of ``_batch_sub_tasks``."""

    agent: str = Field(description="Name of the sub-agent that runs every task.")
    tasks: list[str] = Field(
        min_length=1, max_length=50, description="Independent tasks, run concurrently."
    )
    output_requirements: str | None = Field(
        None, description="What each answer must contain, and in which form."
    )


def open_todos(todos: Iterable[TodoItem]) -> list[TodoItem]:
    """The items not completed yet (``_task_finish`` is refused while there are any)."""
    return [t for t in todos if t.status is not TodoStatus.COMPLETED]


def control_tools() -> list[Tool[BaseModel]]:
    """The control tools every agent has."""
    return [
        control_tool(
            TASK_FINISH,
            TaskFinishArgs,
            "Finish the task and give the user the final answer. Call it once, when done.",
        ),
        control_tool(
            ASK_USER,
            AskUserArgs,
            "Ask the user a question and wait for the answer. Use it only when you cannot "
            "go on without the user's input.",
        ),
        control_tool(
            TODO_WRITE,
            TodoWriteArgs,
            "Write your todo list for a task of several steps: send the whole list each "
            "time, with at most one item in_progress. Mark items completed as you finish "
            "them; the task cannot be finished while items are open.",
        ),
        control_tool(
            COMPRESS_MEMORY,
            CompressMemoryArgs,
            "Compress your memory when the context is nearly full: older conversation is "
            "summarised and large old tool results are moved to workspace files you can "
            "read back. Offered only when it is needed.",
        ),
        control_tool(
            CREATE_SUB_TASK,
            CreateSubTaskArgs,
            "Hand a self-contained task to a named sub-agent and get its answer back. It "
            "works on its own, with its own tools and context.",
        ),
        control_tool(
            BATCH_SUB_TASKS,
            BatchSubTasksArgs,
            "Run several independent tasks with the same sub-agent concurrently; returns "
            "every task's answer or error.",
        ),
    ]
