"""File tools over the agent's workspace."""

from __future__ import annotations

from pydantic import BaseModel, Field

from activities.tools.registry import ToolContext, tool

# A model reading a huge file in one go would blow its context; past this it is told
# how to read a range instead of getting a silently truncated file.
MAX_READ_CHARS = 50_000


class ListFilesArgs(BaseModel):
    """Arguments of ``_list_files``."""

    path: str = Field(".", description="Folder relative to the workspace root.")


class ReadFileArgs(BaseModel):
    """Arguments of ``_read_file``."""

    path: str = Field(description="File path relative to the workspace root.")
    start_line: int = Field(1, ge=1, description="First line to return (1-based).")
    end_line: int | None = Field(None, ge=1, description="Last line to return, inclusive.")


class WriteFileArgs(BaseModel):
    """Arguments of ``_write_file``."""

    path: str = Field(description="File path relative to the workspace root.")
    content: str = Field(description="Text to write.")
    append: bool = Field(False, description="Append instead of replacing the file.")


@tool(name="_list_files")
async def list_files(args: ListFilesArgs, ctx: ToolContext) -> str:
    """List the files and folders in a workspace folder (folders end with '/')."""
    entries = ctx.workspace.list_dir(args.path)
    return "\n".join(entries) if entries else "(empty folder)"


@tool(name="_read_file")
async def read_file(args: ReadFileArgs, ctx: ToolContext) -> str:
    """Read a text file from the workspace, optionally a range of lines."""
    lines = ctx.workspace.read_text(args.path).splitlines()
    end = args.end_line or len(lines)
    text = "\n".join(lines[args.start_line - 1 : end])
    if len(text) > MAX_READ_CHARS:
        per_line = max(1, len(text) // max(1, end - args.start_line + 1))
        suggested = args.start_line + MAX_READ_CHARS // per_line - 1
        return (
            f"{args.path} has {len(lines)} lines; the range asked for is over "
            f"{MAX_READ_CHARS} characters. Read it in parts, e.g. start_line="
            f"{args.start_line}, end_line={suggested}."
        )
    return text


@tool(name="_write_file")
async def write_file(args: WriteFileArgs, ctx: ToolContext) -> str:
    """Write text to a workspace file (parent folders are created)."""
    written = ctx.workspace.write_text(args.path, args.content, append=args.append)
    verb = "appended" if args.append else "wrote"
    return f"{verb} {written} bytes to {args.path}"
