"""File tools over the agent's workspace: list, inspect, read, write, edit.

Every path goes through the workspace backend, which refuses paths that leave it.
Outputs are bounded: a listing stops at :data:`MAX_LIST_ENTRIES` with a note, and a
read that would exceed :data:`MAX_READ_LINES` lines or :data:`MAX_READ_CHARS`
characters is refused with the range that does fit, never silently truncated (a model
that believes it read a whole file when it did not makes worse mistakes than one told
to read in parts).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field, model_validator

from duragent.activities.errors import ToolError
from duragent.activities.tools._glob import compile_glob
from duragent.activities.tools.registry import ToolContext, tool
from duragent.activities.tools.workspace import (
    FileInfo,
    Workspace,
    normalize_path,
    split_lines,
)

MAX_LIST_ENTRIES = 500
"""Entries one listing returns; past this a note says how many were left out."""
MAX_READ_LINES = 2_000
"""Lines one read returns at most."""
MAX_READ_CHARS = 50_000
"""Characters one read returns at most (about 12k tokens)."""
MAX_READ_FILE_BYTES = 20_000_000
"""Files larger than this are not loaded to pick lines from; grep or the shell can."""


class ListFilesArgs(BaseModel):
    """Arguments of ``_list_files``."""

    path: str = Field(".", description="Folder relative to the workspace root.")
    glob: str | None = Field(
        None,
        description="Only files matching this pattern, searched below the folder and "
        "listed as workspace paths, e.g. '*.py' (any depth) or 'src/**/*.md'.",
    )
    include_hidden: bool = Field(False, description="Include names starting with '.'.")


class FileInfoArgs(BaseModel):
    """Arguments of ``_file_info``."""

    path: str = Field(description="File or folder path relative to the workspace root.")


class ReadFileArgs(BaseModel):
    """Arguments of ``_read_file``."""

    path: str = Field(description="File path relative to the workspace root.")
    start_line: int = Field(1, ge=1, description="First line to return (1-based).")
    end_line: int | None = Field(None, ge=1, description="Last line to return, inclusive.")
    show_line_numbers: bool = Field(False, description="Prefix each line with its number.")

    @model_validator(mode="after")
    def _range_is_ordered(self) -> ReadFileArgs:
        if self.end_line is not None and self.end_line < self.start_line:
            raise ValueError(f"end_line {self.end_line} is before start_line {self.start_line}")
        return self


class WriteFileArgs(BaseModel):
    """Arguments of ``_write_file``."""

    path: str = Field(description="File path relative to the workspace root.")
    content: str = Field(description="Text to write.")
    append: bool = Field(False, description="Append instead of replacing the file.")


class FileStrReplaceArgs(BaseModel):
    """Arguments of ``_file_str_replace``."""

    path: str = Field(description="File path relative to the workspace root.")
    old: str = Field(
        min_length=1,
        description="Exact text to replace, whitespace and indentation included; include "
        "enough surrounding lines to make it unique.",
    )
    new: str = Field(description="Text to put in its place.")
    replace_all: bool = Field(False, description="Replace every occurrence, not just one.")

    @model_validator(mode="after")
    def _changes_something(self) -> FileStrReplaceArgs:
        if self.old == self.new:
            raise ValueError("old and new are the same; there is nothing to replace")
        return self


@tool(name="_list_files")
async def list_files(args: ListFilesArgs, ctx: ToolContext) -> str:
    """List a workspace folder (folders end with '/'), or the files matching a glob."""
    if args.glob is None:
        listed = await ctx.workspace.list_dir(args.path)
        entries = [e for e in listed if args.include_hidden or e[0] != "."]
        empty = "(empty folder)"
    else:
        entries = await _glob_files(ctx.workspace, args.path, args.glob, args.include_hidden)
        empty = f"(no files match {args.glob!r} in {normalize_path(args.path)!r})"
    if not entries:
        return empty
    shown = entries[:MAX_LIST_ENTRIES]
    if len(entries) > len(shown):
        shown.append(
            f"[... {len(entries) - len(shown)} more entries left out; narrow the listing "
            "with path or glob]"
        )
    return "\n".join(shown)


@tool(name="_file_info")
async def file_info(args: FileInfoArgs, ctx: ToolContext) -> str:
    """Size, modification time, kind and line count of a workspace file or folder."""
    info = await ctx.workspace.info(args.path)
    return await _format_info(ctx.workspace, info)


@tool(name="_read_file")
async def read_file(args: ReadFileArgs, ctx: ToolContext) -> str:
    """Read a text file from the workspace, optionally a range of lines.

    A range over 2,000 lines or 50,000 characters is refused with a range that fits.
    """
    workspace = ctx.workspace
    await _refuse_too_large(workspace, args.path)
    lines = split_lines(await workspace.read_text(args.path))
    if not lines:
        return "(empty file)"
    if args.start_line > len(lines):
        raise ToolError(
            f"{args.path} has {len(lines)} lines; start_line {args.start_line} is past its end",
            code="out_of_range",
        )
    end = min(args.end_line or len(lines), len(lines))
    rendered = _render(lines, args.start_line, end, args.show_line_numbers)
    if end - args.start_line + 1 > MAX_READ_LINES or len(rendered) > MAX_READ_CHARS:
        raise ToolError(_too_long(args, lines, end), code="too_large")
    return rendered


@tool(name="_write_file")
async def write_file(args: WriteFileArgs, ctx: ToolContext) -> str:
    """Write text to a workspace file (parent folders are created)."""
    written = await ctx.workspace.write_text(args.path, args.content, append=args.append)
    verb = "appended" if args.append else "wrote"
    return f"{verb} {written} bytes to {args.path}"


@tool(name="_file_str_replace")
async def file_str_replace(args: FileStrReplaceArgs, ctx: ToolContext) -> str:
    """Replace an exact piece of text in a workspace file.

    The old text must occur exactly once, unless replace_all is set.
    """
    text = await ctx.workspace.read_text(args.path)
    count = text.count(args.old)
    if count == 0:
        raise ToolError(
            f"the old text was not found in {args.path}. It must match exactly, whitespace "
            "and indentation included: read the file again and copy the text.",
            code="not_found",
        )
    if count > 1 and not args.replace_all:
        raise ToolError(
            f"the old text occurs {count} times in {args.path}; include more surrounding "
            f"lines to make it unique, or set replace_all to replace all {count}.",
            code="ambiguous",
        )
    replaced = text.replace(args.old, args.new, -1 if args.replace_all else 1)
    await ctx.workspace.write_text(args.path, replaced)
    done = count if args.replace_all else 1
    return f"replaced {done} occurrence{'s' if done > 1 else ''} in {args.path}"


async def _refuse_too_large(workspace: Workspace, path: str) -> None:
    """Refuse a file too large to load; a missing one is left to the read to report.

    One ``info`` rather than ``exists`` then ``info``: on an object store each is a
    round trip.
    """
    try:
        info = await workspace.info(path, count_lines=False)
    except ToolError as err:
        if err.code == "not_found":
            return
        raise
    if not info.is_dir and info.size > MAX_READ_FILE_BYTES:
        raise ToolError(
            f"{path} is {info.size:,} bytes, too large to read here; search it "
            "with _workspace_grep, or take lines with _bash (sed -n '100,200p').",
            code="too_large",
        )


async def _glob_files(
    workspace: Workspace, path: str, pattern: str, include_hidden: bool
) -> list[str]:
    matches = compile_glob(pattern)
    base = normalize_path(path)
    prefix = "" if base == "." else base + "/"
    return [
        file
        for file in await workspace.walk(base, include_hidden=include_hidden)
        if matches(file.removeprefix(prefix))
    ]


async def _format_info(workspace: Workspace, info: FileInfo) -> str:
    modified = datetime.fromtimestamp(info.mtime, UTC).isoformat(timespec="seconds")
    if info.is_dir:
        entries = len(await workspace.list_dir(info.path))
        return f"path: {info.path}\ntype: folder\nentries: {entries}\nmodified: {modified}"
    lines = "unknown (binary or very large)" if info.line_count is None else info.line_count
    return (
        f"path: {info.path}\ntype: file\nsize: {info.size:,} bytes\nlines: {lines}\n"
        f"modified: {modified}"
    )


def _render(lines: list[str], start: int, end: int, numbered: bool) -> str:
    selected = lines[start - 1 : end]
    if not numbered:
        return "\n".join(selected)
    return "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(selected, start))


def _too_long(args: ReadFileArgs, lines: list[str], end: int) -> str:
    """The refusal of a range that is too long, with the longest range that fits."""
    budget = MAX_READ_CHARS
    fits = args.start_line - 1
    prefix = 7 if args.show_line_numbers else 0  # "%6d\t"
    while fits < min(end, args.start_line - 1 + MAX_READ_LINES):
        budget -= len(lines[fits]) + prefix + 1
        if budget < 0:
            break
        fits += 1
    asked = f"lines {args.start_line}-{end} of {args.path} ({len(lines)} lines in all)"
    limits = f"{MAX_READ_LINES:,} lines or {MAX_READ_CHARS:,} characters"
    if fits < args.start_line:
        return (
            f"{asked}: line {args.start_line} alone is over {limits}; look into it with "
            "_workspace_grep or _bash (e.g. cut -c1-2000)."
        )
    return (
        f"{asked} are more than one read returns ({limits}). Read it in parts, e.g. "
        f"start_line={args.start_line}, end_line={fits}."
    )
