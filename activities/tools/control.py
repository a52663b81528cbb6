"""Control tools: the workflow interprets these itself, they have no activity.

Their argument models live here, beside the other tools, so the schemas the model sees
come from one registry; the workflow validates them with the same models.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from activities.tools.registry import Tool, control_tool

TASK_FINISH = "_task_finish"
ASK_USER = "_ask_user"


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
    ]
