"""Built-in tools, the registry that holds them, and the activity that runs them."""

from __future__ import annotations

from typing import Any

from activities.tools.control import control_tools
from activities.tools.files import list_files, read_file, write_file
from activities.tools.registry import Tool, ToolContext, ToolRegistry, tool
from activities.tools.workspace import LocalWorkspace, Workspace


def default_tools() -> list[Tool[Any]]:
    """The tools a worker offers unless told otherwise."""
    return [*control_tools(), list_files, read_file, write_file]


__all__ = [
    "LocalWorkspace",
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "Workspace",
    "default_tools",
    "tool",
]
