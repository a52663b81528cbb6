"""Tool results the workflow makes itself, and results as the messages the model reads.

Pure and deterministic, like all of :mod:`workflows.policy` (which re-exports them).
"""

from __future__ import annotations

from duragent.activities.models import Message, Role, ToolCall, ToolResult, ToolStatus


def refused_result(call: ToolCall) -> ToolResult:
    """The error a model gets for a call the LLM activity refused (see ``ToolCall.refused``)."""
    return tool_result(
        call,
        ToolStatus.ERROR,
        f"{call.refused}; nothing was run. Send large content in several smaller calls "
        "(for a file: _write_file with append=true).",
        "too_large",
    )


def unknown_tool_result(call: ToolCall, offered: list[str]) -> ToolResult:
    """The error a model gets for calling a tool it was not offered."""
    return tool_result(
        call,
        ToolStatus.ERROR,
        f"unknown tool {call.name!r}; available tools: {', '.join(offered)}",
        "unknown_tool",
    )


def failed_result(call: ToolCall, why: str) -> ToolResult:
    """The error a model gets for a call whose activity gave up (retries spent, worker gone)."""
    return tool_result(call, ToolStatus.ERROR, f"{call.name} failed: {why}", "tool_failed")


def error_result_of(call: ToolCall, content: str, code: str) -> ToolResult:
    """Any other error a model gets for a call, with its code."""
    return tool_result(call, ToolStatus.ERROR, content, code)


def tool_message(result: ToolResult) -> Message:
    """A tool result as the transcript message the model reads."""
    content = result.content
    if result.status is ToolStatus.ERROR:
        content = f"ERROR ({result.error_code or 'tool_error'}): {content}"
    return Message(
        role=Role.TOOL,
        content=content,
        tool_call_id=result.call_id,
        name=result.name,
        artifact=result.artifact,
        artifact_chars=result.artifact_chars,
    )


def tool_result(
    call: ToolCall, status: ToolStatus, content: str, code: str | None = None
) -> ToolResult:
    """A result of ``call`` made by the workflow, not by a tool activity."""
    return ToolResult(
        call_id=call.id, name=call.name, status=status, content=content, error_code=code
    )
