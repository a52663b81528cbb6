"""Workspaces: where the tools read and write, with every path checked.

Backends share one protocol, defined here: :class:`LocalWorkspace`, a directory on the
worker (the default; :mod:`activities.tools.local_workspace`), :class:`MemoryWorkspace`, a
dictionary (tests, throw-away runs; :mod:`activities.tools.memory_workspace`), and an
S3-compatible object store (:mod:`activities.tools.objectstore_workspace`). The protocol
is async: an object store is network I/O, and the tools run in async activities that
must keep heartbeating. A path from the model is always relative to the workspace root.
Every backend refuses, with a ``ToolError`` the model can read:

- NUL bytes (``invalid_path``);
- absolute and home-relative paths, ``/etc/passwd`` or ``~/x`` (``path_escape``);
- ``..`` that climbs above the root (``path_escape``);
- in a local workspace, symlinks that lead outside the root (``path_escape``).

Paths are normalised lexically first (``a/./b/../c`` is ``a/c``), so every backend
sees the same canonical form: POSIX separators, no ``.`` or ``..``, ``"."`` for the
root. A local workspace then resolves symlinks and checks the result again; that check
and the use of the path are not atomic, so a workspace shared with hostile processes
needs an OS sandbox on top.

:meth:`Workspace.scoped` narrows a workspace to a folder: each agent works in its own
(or a named shared one), and the tools, the shell and the LLM activity see only that.

The path rules (:mod:`activities.tools._paths`), the text rules and :class:`FileInfo`
(:mod:`activities.tools._file_info`) and both backends are importable from here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from duragent.activities.tools._file_info import BINARY_SNIFF_BYTES as BINARY_SNIFF_BYTES
from duragent.activities.tools._file_info import MAX_LINE_COUNT_BYTES as MAX_LINE_COUNT_BYTES
from duragent.activities.tools._file_info import FileInfo as FileInfo
from duragent.activities.tools._file_info import decode_text as decode_text
from duragent.activities.tools._file_info import looks_binary as looks_binary
from duragent.activities.tools._file_info import split_lines as split_lines
from duragent.activities.tools._file_info import text_line_count as text_line_count
from duragent.activities.tools._paths import ancestors as ancestors
from duragent.activities.tools._paths import is_hidden as is_hidden
from duragent.activities.tools._paths import join_path as join_path
from duragent.activities.tools._paths import normalize_path as normalize_path
from duragent.activities.tools._paths import scope_folder as scope_folder
from duragent.activities.tools._paths import tree_order as tree_order
from duragent.activities.tools.local_workspace import INLINE_IO_BYTES as INLINE_IO_BYTES
from duragent.activities.tools.local_workspace import LocalWorkspace as LocalWorkspace
from duragent.activities.tools.memory_workspace import MemoryWorkspace as MemoryWorkspace
from duragent.activities.tools.memory_workspace import PrefixedWorkspace as PrefixedWorkspace


@dataclass(frozen=True)
class Stamp:
    """One version of a file as a listing shows it, without reading the file.

    What a worker-local mirror (:mod:`activities.tools.mirror`) compares to tell which
    files changed in the workspace since it last looked.
    """

    size: int
    """Size in bytes."""
    version: str
    """Changes when the content does: an object's ETag, else the modification time."""
    mtime_ns: int = field(default=0, compare=False)
    """Last modification in ns since the epoch (``0``: unknown). Not compared: for a
    backend with ETags, rewriting the same content is no change."""


@dataclass(frozen=True)
class Listing:
    """Every file of a workspace with its stamp, and its folders that need no file."""

    files: Mapping[str, Stamp]
    """Workspace path to stamp, for every file at any depth."""
    folders: frozenset[str]
    """Folders that exist on their own, without a file below them (an object store's
    marked ones; every folder where the backend has real folders). Never ``"."``."""


class Workspace(Protocol):
    """What the tools need from a workspace backend.

    Every method takes a workspace-relative path, checks it, and raises ``ToolError``
    with a code (``invalid_path``, ``path_escape``, ``not_found``, ``is_directory``,
    ``not_a_directory``, ``binary_file``, ``not_empty``) on failure. A backend that
    cannot reach its storage raises something else (Temporal retries the activity).
    """

    async def read_text(self, path: str) -> str:
        """Read a UTF-8 text file."""
        ...

    async def read_bytes(self, path: str) -> bytes:
        """Read a file as bytes."""
        ...

    async def write_text(self, path: str, content: str, *, append: bool = False) -> int:
        """Write (or append) text, creating parent folders; returns bytes written."""
        ...

    async def write_bytes(self, path: str, data: bytes) -> int:
        """Write bytes, creating parent folders; returns bytes written."""
        ...

    async def list_dir(self, path: str) -> list[str]:
        """Entries of a folder, folders with a trailing ``/``, sorted."""
        ...

    async def info(self, path: str, *, count_lines: bool = True) -> FileInfo:
        """Size, modification time, kind and (unless told not to) line count."""
        ...

    async def exists(self, path: str) -> bool:
        """Whether a file or folder exists (the path is still checked)."""
        ...

    async def mkdir(self, path: str) -> None:
        """Create a folder and its parents; an existing folder is fine."""
        ...

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        """Delete a file, or a folder (a non-empty one only with ``recursive``)."""
        ...

    async def walk(self, path: str = ".", *, include_hidden: bool = True) -> list[str]:
        """Files under a folder (or the file itself), as sorted workspace paths.

        A list, not an iterator: every caller wants all of them (a glob listing is
        bounded after sorting, a grep counts every file), and an object store lists
        in pages anyway.

        With ``include_hidden=False``, names starting with ``.`` below ``path`` are
        skipped and hidden folders are not entered.
        """
        ...

    def scoped(self, folder: str) -> Workspace:
        """A view of the same storage whose root is ``folder`` (one agent's scope).

        Paths inside the view obey the same rules, relative to the view's root, so
        nothing escapes it (``../other/x`` is ``path_escape``). The folder need not
        exist: it reads as empty and is created by the first write.

        Raises:
            ToolError: ``folder`` breaks the path rules (see :func:`normalize_path`).
        """
        ...
