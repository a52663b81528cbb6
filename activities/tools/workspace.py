"""Workspaces: where the tools read and write, with every path checked.

Backends share one protocol: :class:`LocalWorkspace`, a directory on the worker (the
default), :class:`MemoryWorkspace`, a dictionary (tests, throw-away runs), and an
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
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from duragent.activities.errors import ToolError

# Counting lines means reading the whole file; past this size it is not worth it and
# ``line_count`` stays unknown.
MAX_LINE_COUNT_BYTES = 10_000_000

# How much of a file is sniffed for a NUL byte to call it binary (as git and grep do).
BINARY_SNIFF_BYTES = 8192

# A local file up to this size is read or written on the event loop: the copy takes
# less time than a hop to a worker thread. Larger ones, whole walks and recursive
# deletes go to a thread, so the loop keeps heartbeating the worker's other activities.
INLINE_IO_BYTES = 1_000_000


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


def normalize_path(path: str) -> str:
    """The canonical workspace-relative form of a path from the model.

    Args:
        path: A path relative to the workspace root; empty means the root.

    Returns:
        POSIX path without ``.``/``..`` segments; ``"."`` for the root.

    Raises:
        ToolError: ``invalid_path`` for NUL bytes; ``path_escape`` for absolute or
            home-relative paths and for ``..`` above the root.
    """
    if "\x00" in path:
        raise ToolError("path contains a NUL byte", code="invalid_path")
    text = path.strip()
    if text.startswith("/"):
        raise ToolError(
            f"absolute paths are not allowed: {path!r}; use a path relative to the workspace",
            code="path_escape",
        )
    if text.startswith("~"):
        raise ToolError(
            f"home-relative paths are not allowed: {path!r}; use a path relative to the workspace",
            code="path_escape",
        )
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ToolError(f"path leads outside the workspace: {path!r}", code="path_escape")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) or "."


def scope_folder(name: str) -> str:
    """Check the name of a workspace scope (``duragent run --workspace``).

    The same rules as every path (:func:`normalize_path`), and it must name a folder
    below the root, not the root itself.

    Returns:
        The normalised folder.

    Raises:
        ValueError: The name is empty, absolute, climbs out with ``..`` or holds NUL.
    """
    try:
        folder = normalize_path(name)
    except ToolError as err:
        raise ValueError(f"bad workspace name {name!r}: {err}") from None
    if folder == ".":
        raise ValueError(f"bad workspace name {name!r}: it must name a folder, not the root")
    return folder


def join_path(folder: str, name: str) -> str:
    """Join a normalised folder and a name (``"."`` is the root)."""
    return name if folder == "." else f"{folder}/{name}"


def tree_order(path: str) -> list[str]:
    """Sort key of walked paths: segment by segment, so a folder's files stay together.

    ``a/b`` sorts before ``a.txt`` (as a sorted directory walk gives them), where plain
    string order would put ``.`` before ``/``. Every backend sorts its walk by it.
    """
    return path.split("/")


def is_hidden(relative: str) -> bool:
    """Whether any segment of a relative path starts with a dot."""
    return any(part.startswith(".") for part in relative.split("/") if part not in ("", "."))


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


class LocalWorkspace:
    """A workspace rooted at a local directory on the worker.

    Small files are read and written on the event loop; files over
    :data:`INLINE_IO_BYTES`, walks and recursive deletes run in a worker thread.

    The root may be missing (a scoped view before its first write): it then reads as
    an empty folder, and the first write or ``mkdir`` creates it.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        """The resolved root folder; nothing outside it is ever touched."""

    def resolve(self, path: str) -> Path:
        """Map a workspace-relative path to a real path inside the root.

        Raises:
            ToolError: The path is absolute, contains NUL, or leads outside the root
                (by ``..`` or through a symlink).
        """
        real = (self.root / normalize_path(path)).resolve()
        if real != self.root and self.root not in real.parents:
            raise ToolError(
                f"path leads outside the workspace (through a symlink): {path!r}",
                code="path_escape",
            )
        return real

    def scoped(self, folder: str) -> LocalWorkspace:
        """The folder ``root/folder`` as a workspace of its own (see the protocol).

        Resolved through :meth:`resolve`, so a symlink there that leads outside the
        root is refused (``path_escape``).
        """
        return LocalWorkspace(self.resolve(folder))

    async def read_text(self, path: str) -> str:
        """Read a UTF-8 text file."""
        return decode_text(path, await self.read_bytes(path))

    async def read_bytes(self, path: str) -> bytes:
        """Read a file as bytes."""
        real = self._file(path)
        if real.stat().st_size > INLINE_IO_BYTES:
            return await asyncio.to_thread(real.read_bytes)
        return real.read_bytes()

    async def write_text(self, path: str, content: str, *, append: bool = False) -> int:
        """Write (or append) text, creating parent folders; returns bytes written."""
        return await self._write(path, content.encode("utf-8"), append=append)

    async def write_bytes(self, path: str, data: bytes) -> int:
        """Write bytes, creating parent folders; returns bytes written."""
        return await self._write(path, data, append=False)

    async def list_dir(self, path: str) -> list[str]:
        """Entries of a folder, folders with a trailing ``/``, sorted."""
        real = self._folder(path)
        if not real.exists():  # the root of a view nobody has written to yet
            return []
        return sorted(p.name + ("/" if p.is_dir() else "") for p in real.iterdir())

    async def info(self, path: str, *, count_lines: bool = True) -> FileInfo:
        """Size, modification time, kind and (unless told not to) line count."""
        real = self.resolve(path)
        if real == self.root and not real.exists():
            return FileInfo(path=".", is_dir=True, size=0, mtime=0.0)
        if not real.exists():
            raise ToolError(f"no such file or folder: {path!r}", code="not_found")
        stat = real.stat()
        is_dir = real.is_dir()
        lines = None
        if count_lines and not is_dir and stat.st_size <= MAX_LINE_COUNT_BYTES:
            data = await self.read_bytes(path)
            lines = text_line_count(data)
        return FileInfo(
            path=normalize_path(path),
            is_dir=is_dir,
            size=0 if is_dir else stat.st_size,
            mtime=stat.st_mtime,
            line_count=lines,
        )

    async def exists(self, path: str) -> bool:
        """Whether a file or folder exists (the path is still checked)."""
        real = self.resolve(path)
        return real == self.root or real.exists()

    async def mkdir(self, path: str) -> None:
        """Create a folder and its parents; an existing folder is fine."""
        real = self.resolve(path)
        if real.exists() and not real.is_dir():
            raise ToolError(f"{path!r} exists and is not a folder", code="not_a_directory")
        try:
            real.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as err:
            raise ToolError(f"a parent of {path!r} is a file", code="not_a_directory") from err

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        """Delete a file, or a folder (a non-empty one only with ``recursive``).

        A symlink is removed itself, never what it points to.
        """
        relative = normalize_path(path)
        if relative == ".":
            raise ToolError("the workspace root cannot be deleted", code="invalid_path")
        parent, _, name = relative.rpartition("/")
        target = self.resolve(parent or ".") / name
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            if recursive:
                await asyncio.to_thread(shutil.rmtree, target)
            elif any(target.iterdir()):
                raise ToolError(
                    f"folder {path!r} is not empty (set recursive to delete it)",
                    code="not_empty",
                )
            else:
                target.rmdir()
        else:
            raise ToolError(f"no such file or folder: {path!r}", code="not_found")

    async def walk(self, path: str = ".", *, include_hidden: bool = True) -> list[str]:
        """Files under a folder (or the file itself), as sorted workspace paths.

        Symlinked folders are not entered and symlinks leading outside are skipped, so
        a walk never leaves the root.
        """
        start = normalize_path(path)
        real = self.resolve(start)
        if real.is_file():
            return [start]
        if real == self.root and not real.exists():
            return []
        if not real.is_dir():
            raise ToolError(f"no such file or folder: {path!r}", code="not_found")
        return await asyncio.to_thread(lambda: list(self._walk(real, start, include_hidden)))

    def _walk(self, real: Path, relative: str, include_hidden: bool) -> Iterator[str]:
        for entry in sorted(real.iterdir(), key=lambda p: p.name):
            if not include_hidden and entry.name.startswith("."):
                continue
            child = join_path(relative, entry.name)
            if entry.is_symlink():
                target = entry.resolve()
                if target.is_file() and self.root in target.parents:
                    yield child
            elif entry.is_dir():
                yield from self._walk(entry, child, include_hidden)
            elif entry.is_file():
                yield child

    def _file(self, path: str) -> Path:
        real = self.resolve(path)
        if real.is_dir():
            raise ToolError(f"{path!r} is a folder, not a file", code="is_directory")
        if not real.is_file():
            raise ToolError(f"no such file: {path!r}", code="not_found")
        return real

    def _folder(self, path: str) -> Path:
        real = self.resolve(path)
        if real.is_file():
            raise ToolError(f"{path!r} is a file, not a folder", code="not_a_directory")
        if not real.is_dir() and real != self.root:
            raise ToolError(f"no such directory: {path!r}", code="not_found")
        return real

    async def _write(self, path: str, data: bytes, *, append: bool) -> int:
        real = self.resolve(path)
        if real.is_dir():
            raise ToolError(f"{path!r} is a directory", code="is_directory")
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as err:
            raise ToolError(f"a parent of {path!r} is a file", code="not_a_directory") from err
        if len(data) > INLINE_IO_BYTES:
            await asyncio.to_thread(_write_file, real, data, append)
        else:
            _write_file(real, data, append)
        return len(data)


def _write_file(real: Path, data: bytes, append: bool) -> None:
    with real.open("ab" if append else "wb") as f:
        f.write(data)


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


def ancestors(relative: str, *, including_self: bool) -> list[str]:
    """Parent folders of a normalised path, outermost first (``"."`` excluded).

    Args:
        relative: A path as :func:`normalize_path` gives it.
        including_self: Whether the path itself ends the list.
    """
    if relative == ".":
        return []
    parts = relative.split("/")
    stop = len(parts) if including_self else len(parts) - 1
    return ["/".join(parts[: i + 1]) for i in range(stop)]
