"""The local backend of :mod:`activities.tools.workspace`: a directory on the worker."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

from duragent.activities.errors import ToolError
from duragent.activities.tools._file_info import (
    MAX_LINE_COUNT_BYTES,
    FileInfo,
    decode_text,
    text_line_count,
)
from duragent.activities.tools._paths import join_path, normalize_path

# A local file up to this size is read or written on the event loop: the copy takes
# less time than a hop to a worker thread. Larger ones, whole walks and recursive
# deletes go to a thread, so the loop keeps heartbeating the worker's other activities.
INLINE_IO_BYTES = 1_000_000


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
