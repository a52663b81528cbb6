"""What a workspace tells about a file, and how the text tools read its content.

Shared by every backend (see :mod:`activities.tools.workspace`).
"""

from __future__ import annotations

from dataclasses import dataclass

from duragent.activities.errors import ToolError

# Counting lines means reading the whole file; past this size it is not worth it and
# ``line_count`` stays unknown.
MAX_LINE_COUNT_BYTES = 10_000_000

# How much of a file is sniffed for a NUL byte to call it binary (as git and grep do).
BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class FileInfo:
    """What :meth:`Workspace.info` tells about a file or folder."""

    path: str
    """The normalised workspace-relative path."""
    is_dir: bool
    size: int
    """Size in bytes (0 for folders)."""
    mtime: float
    """Last modification, seconds since the epoch."""
    line_count: int | None = None
    """Lines of a UTF-8 text file; ``None`` for folders, binary and very large files."""


def split_lines(text: str) -> list[str]:
    """Lines as the tools number them: split on newlines; a final newline ends the last."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def looks_binary(data: bytes) -> bool:
    """True for content the text tools should leave alone (NUL early on, or not UTF-8)."""
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def text_line_count(data: bytes) -> int | None:
    """Line count of UTF-8 text; ``None`` when binary or too large to bother."""
    if len(data) > MAX_LINE_COUNT_BYTES or looks_binary(data):
        return None
    return len(split_lines(data.decode("utf-8")))


def decode_text(path: str, data: bytes) -> str:
    """Decode UTF-8 file content, or refuse it as binary (``binary_file``)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ToolError(
            f"not a UTF-8 text file: {path!r} (use _read_image for images)", code="binary_file"
        ) from err
