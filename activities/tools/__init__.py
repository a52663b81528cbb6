"""Built-in tools, the registry that holds them, and the activity that runs them.

Activity tools (run by ``duragent.run_tool`` on a worker):

- ``_list_files``: a folder's entries, or the files matching a glob (bounded);
- ``_file_info``: size, modification time, kind and line count of a path;
- ``_read_file``: a text file or a range of its lines (refuses too long a range and
  says which range fits);
- ``_write_file``: write or append text, creating parent folders;
- ``_file_str_replace``: replace an exact, unique piece of text (or every occurrence);
- ``_workspace_grep``: regex search over text files, with context lines (bounded);
- ``_bash``: a shell command with a timeout and process-group cleanup, optionally in
  the background; dangerous commands wait for approval;
- ``_check_background_command``, ``_stop_background_command``: follow or stop one;
- ``_read_image``: attach a workspace image for the model to look at;
- ``_activate_skill``: load a skill's instructions.

Control tools (interpreted by the workflow): ``_task_finish``, ``_ask_user``,
``_todo_write``.

MCP servers' tools (the worker's ``[mcp.NAME]`` tables) join the registry when an
agent enables ``mcp:SERVER`` or ``mcp:SERVER/tool`` (see :mod:`activities.tools.mcp`).
"""

from __future__ import annotations

from typing import Any

from duragent.activities.models import ApprovalMode
from duragent.activities.tools.background import BackgroundCommands, BackgroundStatus
from duragent.activities.tools.control import (
    TodoItem,
    TodoStatus,
    TodoWriteArgs,
    control_tools,
    open_todos,
)
from duragent.activities.tools.dangerous import is_dangerous_command
from duragent.activities.tools.files import (
    file_info,
    file_str_replace,
    list_files,
    read_file,
    write_file,
)
from duragent.activities.tools.image import image_data_url, image_refs, read_image
from duragent.activities.tools.objectstore_workspace import S3Workspace
from duragent.activities.tools.registry import (
    Tool,
    ToolContext,
    ToolOutput,
    ToolRegistry,
    parse_arguments,
    tool,
)
from duragent.activities.tools.search import workspace_grep
from duragent.activities.tools.shell import bash, check_background_command, stop_background_command
from duragent.activities.tools.skills import SkillInfo, Skills, activate_skill
from duragent.activities.tools.workspace import FileInfo, LocalWorkspace, MemoryWorkspace, Workspace


def default_tools() -> list[Tool[Any]]:
    """The tools a worker offers unless told otherwise: control tools, then the rest."""
    return [
        *control_tools(),
        list_files,
        file_info,
        read_file,
        write_file,
        file_str_replace,
        workspace_grep,
        bash,
        check_background_command,
        stop_background_command,
        read_image,
        activate_skill,
    ]


__all__ = [
    "ApprovalMode",
    "BackgroundCommands",
    "BackgroundStatus",
    "FileInfo",
    "LocalWorkspace",
    "MemoryWorkspace",
    "S3Workspace",
    "SkillInfo",
    "Skills",
    "TodoItem",
    "TodoStatus",
    "TodoWriteArgs",
    "Tool",
    "ToolContext",
    "ToolOutput",
    "ToolRegistry",
    "Workspace",
    "control_tools",
    "default_tools",
    "image_data_url",
    "image_refs",
    "is_dangerous_command",
    "list_files",
    "open_todos",
    "parse_arguments",
    "read_file",
    "tool",
    "write_file",
]
