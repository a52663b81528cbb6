"""``_workspace_grep``: search the workspace's text files with a regular expression.

Output looks like ``grep -n``: ``path:line:text`` for a match, ``path-line-text`` for a
context line, ``--`` between separate groups. It is bounded three ways, each with a
note saying what was left out: ``max_results`` matching lines, :data:`MAX_LINE_CHARS`
per line (minified files are one huge line), :data:`MAX_OUTPUT_CHARS` in all. Binary
files (a NUL byte early on, or not UTF-8) and files over :data:`MAX_FILE_BYTES` are
skipped and counted.

Files are looked up :data:`LOOKUP_BATCH` at a time, concurrently (an object store
answers each call in a round trip), then read concurrently in groups of at most
:data:`FETCH_BYTES`, and each group is searched in a worker thread, so the event loop
keeps heartbeating other activities meanwhile. Python's ``re``
cannot be interrupted: a pathological pattern holds that thread until it is done, past
the tool's timeout if need be.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from duragent.activities.errors import ToolError
from duragent.activities.tools._glob import compile_glob
from duragent.activities.tools.registry import ToolContext, tool
from duragent.activities.tools.workspace import Workspace, looks_binary, normalize_path, split_lines

MAX_LINE_CHARS = 500
"""A longer line is cut, with a note of how much is missing."""
MAX_OUTPUT_CHARS = 50_000
"""All output lines together."""
MAX_FILE_BYTES = 5_000_000
"""Larger files are skipped (logs and data dumps are for the shell's grep)."""
LOOKUP_BATCH = 64
"""Files whose size is asked at once: enough to hide an object store's round trips."""
FETCH_BYTES = 32_000_000
"""Content read at once, at most (one file larger than the rest is read alone)."""


class GrepArgs(BaseModel):
    """Arguments of ``_workspace_grep``."""

    pattern: str = Field(min_length=1, description="Python regular expression to search for.")
    path: str = Field(".", description="File or folder to search, relative to the workspace.")
    glob: str | None = Field(
        None, description="Only files matching this pattern, e.g. '*.py' or 'src/**/*.ts'."
    )
    context_lines: int = Field(
        0, ge=0, le=20, description="Lines of context to show before and after each match."
    )
    case_sensitive: bool = Field(True, description="Match case exactly.")
    max_results: int = Field(100, ge=1, le=1_000, description="Matching lines to show at most.")
    include_hidden: bool = Field(False, description="Search names starting with '.' too.")


@dataclass
class _Search:
    """The state of one search: what is shown, and what was left out."""

    max_results: int
    lines: list[str] = field(default_factory=list)
    chars: int = 0
    shown: int = 0
    matched: int = 0
    files: int = 0
    binary: int = 0
    large: int = 0
    output_full: bool = False

    def add(self, line: str) -> None:
        if self.chars + len(line) + 1 > MAX_OUTPUT_CHARS:
            self.output_full = True
            return
        self.lines.append(line)
        self.chars += len(line) + 1


@tool(name="_workspace_grep")
async def workspace_grep(args: GrepArgs, ctx: ToolContext) -> str:
    """Search workspace text files for a regular expression; lines shown as path:line:text."""
    return await grep(ctx.workspace, args)


async def grep(workspace: Workspace, args: GrepArgs) -> str:
    """Run the search: fetch files in concurrent batches, search each batch in a thread."""
    regex = _compile(args.pattern, args.case_sensitive)
    matches = compile_glob(args.glob) if args.glob else None
    base = normalize_path(args.path)
    prefix = "" if base == "." else base + "/"
    files = [
        file
        for file in await workspace.walk(base, include_hidden=args.include_hidden)
        if matches is None or matches(file.removeprefix(prefix))
    ]
    search = _Search(max_results=args.max_results)
    for start in range(0, len(files), LOOKUP_BATCH):
        batch = files[start : start + LOOKUP_BATCH]
        infos = await asyncio.gather(*(workspace.info(f, count_lines=False) for f in batch))
        for group in _groups_by_size(batch, [info.size for info in infos]):
            contents = await asyncio.gather(*(_fetch(workspace, f, size) for f, size in group))
            names = [f for f, _ in group]
            await asyncio.to_thread(
                _search_batch, names, contents, regex, args.context_lines, search
            )
    return _report(args, search)


def _groups_by_size(files: list[str], sizes: list[int]) -> list[list[tuple[str, int]]]:
    """Consecutive files in groups of at most :data:`FETCH_BYTES` to read.

    Files over :data:`MAX_FILE_BYTES` are skipped, not read, so they count for nothing.
    """
    groups: list[list[tuple[str, int]]] = []
    held = 0
    for file, size in zip(files, sizes, strict=True):
        cost = 0 if size > MAX_FILE_BYTES else size
        if not groups or (groups[-1] and held + cost > FETCH_BYTES):
            groups.append([])
            held = 0
        groups[-1].append((file, size))
        held += cost
    return groups


def _compile(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    try:
        return re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)
    except re.error as err:
        raise ToolError(
            f"invalid regular expression {pattern!r}: {err.msg} (at position {err.pos}). "
            "It is a Python regex: escape ( ) [ ] { } . * + ? | \\ to match them literally.",
            code="invalid_regex",
        ) from err


async def _fetch(workspace: Workspace, file: str, size: int) -> bytes | None:
    """A file's content, or ``None`` when it is too large to search here."""
    if size > MAX_FILE_BYTES:
        return None
    return await workspace.read_bytes(file)


def _search_batch(
    files: list[str],
    contents: list[bytes | None],
    regex: re.Pattern[str],
    context: int,
    search: _Search,
) -> None:
    for file, data in zip(files, contents, strict=True):
        _search_file(file, data, regex, context, search)


def _search_file(
    file: str, data: bytes | None, regex: re.Pattern[str], context: int, search: _Search
) -> None:
    search.files += 1
    if data is None:
        search.large += 1
        return
    if looks_binary(data):
        search.binary += 1
        return
    lines = split_lines(data.decode("utf-8"))
    hits = [i for i, line in enumerate(lines) if regex.search(line)]
    search.matched += len(hits)
    room = search.max_results - search.shown
    if not hits or room <= 0 or search.output_full:
        return
    shown = hits[:room]
    search.shown += len(shown)
    is_hit = set(shown)
    for group in _groups(shown, context, len(lines)):
        if context > 0 and search.lines:
            search.add("--")  # as grep does: separate groups only when context is shown
        for i in group:
            mark = ":" if i in is_hit else "-"
            search.add(f"{file}{mark}{i + 1}{mark}{_cut(lines[i])}")


def _groups(hits: list[int], context: int, count: int) -> list[list[int]]:
    """Line indexes to print: each hit with its context, overlapping windows merged."""
    groups: list[list[int]] = []
    for hit in hits:
        first, last = max(0, hit - context), min(count - 1, hit + context)
        if groups and first <= groups[-1][-1] + 1:
            groups[-1].extend(range(groups[-1][-1] + 1, last + 1))
        else:
            groups.append(list(range(first, last + 1)))
    return groups


def _cut(line: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    return f"{line[:MAX_LINE_CHARS]}[... {len(line) - MAX_LINE_CHARS} more characters]"


def _report(args: GrepArgs, search: _Search) -> str:
    notes = _notes(args, search)
    if not search.matched:
        text = f"no matches for {args.pattern!r} in {search.files} files under {args.path!r}"
        return "\n".join([text, *notes])
    return "\n".join([*search.lines, *notes])


def _notes(args: GrepArgs, search: _Search) -> list[str]:
    notes: list[str] = []
    if search.matched > search.shown:
        notes.append(
            f"[showing {search.shown} of {search.matched} matching lines; narrow the pattern, "
            "path or glob, or raise max_results]"
        )
    if search.output_full:
        notes.append(f"[output cut at {MAX_OUTPUT_CHARS:,} characters; narrow the search]")
    skipped = [
        f"{n} {kind} file{'s' if n > 1 else ''}"
        for n, kind in ((search.binary, "binary"), (search.large, "large"))
        if n
    ]
    if skipped:
        notes.append(f"[skipped {' and '.join(skipped)}]")
    return notes
