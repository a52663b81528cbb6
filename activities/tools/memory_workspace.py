"""The in-memory backend of :mod:`activities.tools.workspace`, and scoped views.

:class:`MemoryWorkspace` holds files in a dictionary (tests, throw-away runs);
:class:`PrefixedWorkspace` shows a folder of any workspace as a workspace of its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from duragent.activities.errors import ToolError
from duragent.activities.tools._file_info import FileInfo, decode_text, text_line_count
from duragent.activities.tools._paths import (
    ancestors,
    is_hidden,
    join_path,
    normalize_path,
    tree_order,
)

if TYPE_CHECKING:
    from duragent.activities.tools.workspace import Workspace


@dataclass
class _MemoryFile:
    data: bytes
    mtime: float


class MemoryWorkspace:
    """A workspace held in memory: same rules and errors as a local one, no disk.

    Folders are created by ``mkdir`` and as parents of written files, and stay until
    deleted, as on disk. Nothing here waits: the methods are async for the protocol.
    """

    def __init__(self, files: Mapping[str, str | bytes] | None = None) -> None:
        self._files: dict[str, _MemoryFile] = {}
        self._dirs: dict[str, float] = {".": time.time()}
        """Folder path to creation time (its modification time, as far as we tell)."""
        for path, content in (files or {}).items():
            self._store(path, content.encode("utf-8") if isinstance(content, str) else content)

    def scoped(self, folder: str) -> Workspace:
        """A view of ``folder`` over the same files (see the protocol)."""
        relative = normalize_path(folder)
        return self if relative == "." else PrefixedWorkspace(self, relative)

    async def read_text(self, path: str) -> str:
        """Read a UTF-8 text file."""
        return decode_text(path, await self.read_bytes(path))

    async def read_bytes(self, path: str) -> bytes:
        """Read a file as bytes."""
        relative = normalize_path(path)
        if self._is_dir(relative):
            raise ToolError(f"{path!r} is a folder, not a file", code="is_directory")
        found = self._files.get(relative)
        if found is None:
            raise ToolError(f"no such file: {path!r}", code="not_found")
        return found.data

    async def write_text(self, path: str, content: str, *, append: bool = False) -> int:
        """Write (or append) text, creating parent folders; returns bytes written."""
        data = content.encode("utf-8")
        relative = normalize_path(path)
        if append and relative in self._files:
            self._store(path, self._files[relative].data + data)
            return len(data)
        return self._store(path, data)

    async def write_bytes(self, path: str, data: bytes) -> int:
        """Write bytes, creating parent folders; returns bytes written."""
        return self._store(path, data)

    async def list_dir(self, path: str) -> list[str]:
        """Entries of a folder, folders with a trailing ``/``, sorted."""
        relative = self._folder(path)
        prefix = "" if relative == "." else relative + "/"
        entries = set()
        for p in [*self._files, *self._dirs]:
            if p != "." and p.startswith(prefix):
                name = p[len(prefix) :].split("/", 1)[0]
                entries.add(name + ("/" if self._is_dir(join_path(relative, name)) else ""))
        return sorted(entries)

    async def info(self, path: str, *, count_lines: bool = True) -> FileInfo:
        """Size, modification time, kind and (unless told not to) line count."""
        relative = normalize_path(path)
        if self._is_dir(relative):
            return FileInfo(path=relative, is_dir=True, size=0, mtime=self._dirs[relative])
        found = self._files.get(relative)
        if found is None:
            raise ToolError(f"no such file or folder: {path!r}", code="not_found")
        return FileInfo(
            path=relative,
            is_dir=False,
            size=len(found.data),
            mtime=found.mtime,
            line_count=text_line_count(found.data) if count_lines else None,
        )

    async def exists(self, path: str) -> bool:
        """Whether a file or folder exists (the path is still checked)."""
        relative = normalize_path(path)
        return relative in self._files or self._is_dir(relative)

    async def mkdir(self, path: str) -> None:
        """Create a folder and its parents; an existing folder is fine."""
        relative = normalize_path(path)
        self._check_parents_are_folders(path, relative, including_self=True)
        self._add_dirs(ancestors(relative, including_self=True))

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        """Delete a file, or a folder (a non-empty one only with ``recursive``)."""
        relative = normalize_path(path)
        if relative == ".":
            raise ToolError("the workspace root cannot be deleted", code="invalid_path")
        if relative in self._files:
            del self._files[relative]
            return
        if not self._is_dir(relative):
            raise ToolError(f"no such file or folder: {path!r}", code="not_found")
        below = [p for p in [*self._files, *self._dirs] if p.startswith(relative + "/")]
        if below and not recursive:
            raise ToolError(
                f"folder {path!r} is not empty (set recursive to delete it)", code="not_empty"
            )
        for p in below:
            self._files.pop(p, None)
            self._dirs.pop(p, None)
        self._dirs.pop(relative, None)

    async def walk(self, path: str = ".", *, include_hidden: bool = True) -> list[str]:
        """Files under a folder (or the file itself), as sorted workspace paths."""
        start = normalize_path(path)
        if start in self._files:
            return [start]
        if not self._is_dir(start):
            raise ToolError(f"no such file or folder: {path!r}", code="not_found")
        prefix = "" if start == "." else start + "/"
        return sorted(
            (
                p
                for p in self._files
                if p.startswith(prefix) and (include_hidden or not is_hidden(p[len(prefix) :]))
            ),
            key=tree_order,
        )

    def _is_dir(self, relative: str) -> bool:
        return relative in self._dirs

    def _add_dirs(self, folders: list[str]) -> None:
        now = time.time()
        for folder in folders:
            self._dirs.setdefault(folder, now)

    def _folder(self, path: str) -> str:
        relative = normalize_path(path)
        if relative in self._files:
            raise ToolError(f"{path!r} is a file, not a folder", code="not_a_directory")
        if not self._is_dir(relative):
            raise ToolError(f"no such directory: {path!r}", code="not_found")
        return relative

    def _store(self, path: str, data: bytes) -> int:
        relative = normalize_path(path)
        if self._is_dir(relative):
            raise ToolError(f"{path!r} is a directory", code="is_directory")
        self._check_parents_are_folders(path, relative, including_self=False)
        self._add_dirs(ancestors(relative, including_self=False))
        self._files[relative] = _MemoryFile(data=data, mtime=time.time())
        return len(data)

    def _check_parents_are_folders(self, path: str, relative: str, *, including_self: bool) -> None:
        for ancestor in ancestors(relative, including_self=including_self):
            if ancestor in self._files:
                kind = "is a file" if ancestor == relative else "has a file as a parent"
                raise ToolError(f"{path!r} {kind}", code="not_a_directory")


class PrefixedWorkspace:
    """A folder of another workspace, seen as a workspace of its own.

    Paths are checked against the view's root first, then looked up below the folder.
    Errors come from the workspace underneath, so their messages name the full path.

    Args:
        inner: The workspace that holds the files.
        folder: A normalised folder of ``inner`` (not ``"."``); it may not exist yet.
    """

    def __init__(self, inner: Workspace, folder: str) -> None:
        self._inner = inner
        self._folder = folder

    def scoped(self, folder: str) -> Workspace:
        """A view of a folder of this view (see the protocol)."""
        relative = normalize_path(folder)
        return self if relative == "." else PrefixedWorkspace(self._inner, self._full(relative))

    async def read_text(self, path: str) -> str:
        """Read a UTF-8 text file."""
        return await self._inner.read_text(self._full(path))

    async def read_bytes(self, path: str) -> bytes:
        """Read a file as bytes."""
        return await self._inner.read_bytes(self._full(path))

    async def write_text(self, path: str, content: str, *, append: bool = False) -> int:
        """Write (or append) text, creating parent folders; returns bytes written."""
        return await self._inner.write_text(self._full(path), content, append=append)

    async def write_bytes(self, path: str, data: bytes) -> int:
        """Write bytes, creating parent folders; returns bytes written."""
        return await self._inner.write_bytes(self._full(path), data)

    async def list_dir(self, path: str) -> list[str]:
        """Entries of a folder, folders with a trailing ``/``, sorted."""
        if await self._missing_root(path):
            return []
        return await self._inner.list_dir(self._full(path))

    async def info(self, path: str, *, count_lines: bool = True) -> FileInfo:
        """Size, modification time, kind and (unless told not to) line count."""
        if await self._missing_root(path):
            return FileInfo(path=".", is_dir=True, size=0, mtime=0.0)
        found = await self._inner.info(self._full(path), count_lines=count_lines)
        return replace(found, path=normalize_path(path))

    async def exists(self, path: str) -> bool:
        """Whether a file or folder exists (the path is still checked)."""
        full = self._full(path)
        return full == self._folder or await self._inner.exists(full)

    async def mkdir(self, path: str) -> None:
        """Create a folder and its parents; an existing folder is fine."""
        await self._inner.mkdir(self._full(path))

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        """Delete a file, or a folder (a non-empty one only with ``recursive``)."""
        if normalize_path(path) == ".":
            raise ToolError("the workspace root cannot be deleted", code="invalid_path")
        await self._inner.delete(self._full(path), recursive=recursive)

    async def walk(self, path: str = ".", *, include_hidden: bool = True) -> list[str]:
        """Files under a folder (or the file itself), as sorted paths of this view."""
        if await self._missing_root(path):
            return []
        cut = len(self._folder) + 1
        found = await self._inner.walk(self._full(path), include_hidden=include_hidden)
        return [p[cut:] for p in found]

    def _full(self, path: str) -> str:
        # Normalised here first: ``..`` is judged against the view's root, not the inner one.
        return join_path(self._folder, normalize_path(path)).removesuffix("/.")

    async def _missing_root(self, path: str) -> bool:
        return normalize_path(path) == "." and not await self._inner.exists(self._folder)
