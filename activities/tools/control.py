"""Control tools: the workflow interprets these itself, they have no activity.

Their argument models live here, beside the other tools, so the schemas the model sees
come from one registry; the workflow validates them with the same models.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from duragent.activities.tools.registry import Tool, control_tool

TASK_FINISH = "_task_finish"
ASK_USER = "_ask_user"
TODO_WRITE = "_todo_write"
COMPRESS_MEMORY = "_compress_memory"
CREATE_SUB_TASK = "_create_sub_task"
BATCH_SUB_TASKS = "_batch_sub_tasks"
SUB_TASK_TOOLS = frozenset({CREATE_SUB_TASK, BATCH_SUB_TASKS})


# The docstring is the description of the parameters every model sees: one line.
# An ``output`` sent to an agent without an output schema is ignored (pydantic drops
# unknown fields): only an output checked against a schema is ever returned as one.
class TaskFinishArgs(BaseModel):
    """Arguments of ``_task_finish``."""

    message: str = Field(description="The final answer for the user.")
    files: list[str] = Field(
        default_factory=list, description="Workspace files that are part of the result."
    )


class TypedTaskFinishArgs(TaskFinishArgs):
    """Arguments of ``_task_finish`` for an agent that must return a typed result.

    ``output`` is any JSON here; the workflow checks it against the agent's schema,
    which the model sees in the tool's parameters (:func:`typed_finish_tool`).
    """

    output: JsonValue = None


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


TYPED_FINISH_NOTE = (
    " Give the typed result in `output`: it must match the JSON Schema given for it. "
    "An output that does not is refused with the reasons, and the task goes on."
)

# Keywords whose values are data, not schemas: a "$ref" inside them is left alone.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
# Keywords whose values map names to schemas: the names are not keywords.
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"}
)
# Where the output schema sits in the tool's parameters, as a JSON pointer fragment.
_OUTPUT_POINTER = "#/properties/output"


def typed_finish_tool(entry: Mapping[str, Any], output_schema: Mapping[str, Any]) -> dict[str, Any]:
    """The ``_task_finish`` tools entry of an agent with an output schema.

    A new entry: ``entry`` is the registry's shared one and stays as it is. The schema
    becomes the required ``output`` parameter. Its ``$defs`` move to the parameters'
    root and its local references are rewritten to match, so a schema generated by
    pydantic (nested models as ``#/$defs/Name``) reads the same to the model.
    ``$schema`` and ``$id`` are dropped: they belong at a document's root, and
    providers resolve local references only.

    Args:
        entry: The Chat Completions entry built from :class:`TaskFinishArgs`.
        output_schema: The agent's output schema (JSON Schema).

    Returns:
        The entry to send instead, for this call only.
    """
    schema = {k: v for k, v in output_schema.items() if k not in ("$schema", "$id")}
    hoisted = {**schema.pop("definitions", {}), **schema.pop("$defs", {})}
    function = entry["function"]
    parameters = dict(function["parameters"])
    properties = {**parameters.get("properties", {}), "output": _relocate(schema)}
    parameters["properties"] = properties
    parameters["required"] = [*parameters.get("required", []), "output"]
    if hoisted:
        moved = {name: _relocate(sub) for name, sub in hoisted.items()}
        parameters["$defs"] = {**parameters.get("$defs", {}), **moved}
    described = function["description"] + TYPED_FINISH_NOTE
    return {**entry, "function": {**function, "description": described, "parameters": parameters}}


def _relocate(node: Any) -> Any:
    """A copy of ``node`` whose local ``$ref``s point where the output schema now sits."""
    if isinstance(node, list):
        return [_relocate(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#"):
            copy[key] = _relocated_ref(value)
        elif key in _DATA_KEYWORDS:
            copy[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            copy[key] = {name: _relocate(sub) for name, sub in value.items()}
        else:
            copy[key] = _relocate(value)
    return copy


def _relocated_ref(ref: str) -> str:
    for defs in ("#/$defs/", "#/definitions/"):
        if ref.startswith(defs):
            return "#/$defs/" + ref.removeprefix(defs)  # hoisted to the root's $defs
    if ref in ("#", "#/"):
        return _OUTPUT_POINTER
    if ref.startswith("#/"):
        return _OUTPUT_POINTER + ref[1:]
    return ref  # an anchor ("#name") is found wherever it sits


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
