"""Workspaces: where file tools read and write, with every path checked.

The protocol is small on purpose; the local directory is the default backend. A path
from the model is always relative to the workspace root: absolute paths, ``..`` that
climbs out, NUL bytes and symlinks that lead outside are refused with a ``ToolError``
the model can read.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Protocol

from activities.errors import ToolError


class Workspace(Protocol):
    """What file tools need from a workspace backend."""

    def read_text(self, path: str) -> str:
        """Read a UTF-8 text file."""
        ...

    def write_text(self, path: str, content: str, *, append: bool = False) -> int:
        """Write (or append) text, creating parent folders; returns bytes written."""
        ...

    def list_dir(self, path: str) -> list[str]:
        """Entries of a folder, folders with a trailing ``/``, sorted."""
        ...


class LocalWorkspace:
    """A workspace rooted at a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def resolve(self, path: str) -> Path:
        """Map a workspace-relative path to a real path inside the root.

        Raises:
            ToolError: The path is absolute, contains NUL, or leads outside the root
                (by ``..`` or through a symlink).
        """
        if "\x00" in path:
            raise ToolError("path contains a NUL byte", code="invalid_path")
        pure = PurePosixPath(path.strip() or ".")
        if pure.is_absolute():
            raise ToolError(
                f"absolute paths are not allowed: {path!r}; use a path relative to the workspace",
                code="path_escape",
            )
        real = (self.root / pure).resolve()
        if real != self.root and self.root not in real.parents:
            raise ToolError(f"path leads outside the workspace: {path!r}", code="path_escape")
        return real

    def read_text(self, path: str) -> str:
        """Read a UTF-8 text file."""
        real = self.resolve(path)
        if not real.is_file():
            raise ToolError(f"no such file: {path!r}", code="not_found")
        try:
            return real.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ToolError(f"not a UTF-8 text file: {path!r}", code="binary_file") from err

    def write_text(self, path: str, content: str, *, append: bool = False) -> int:
        """Write (or append) text, creating parent folders; returns bytes written."""
        real = self.resolve(path)
        if real.is_dir():
            raise ToolError(f"{path!r} is a directory", code="is_directory")
        real.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8")
        with real.open("ab" if append else "wb") as f:
            f.write(data)
        return len(data)

    def list_dir(self, path: str) -> list[str]:
        """Entries of a folder, folders with a trailing ``/``, sorted."""
        real = self.resolve(path)
        if not real.is_dir():
            raise ToolError(f"no such directory: {path!r}", code="not_found")
        return sorted(p.name + ("/" if p.is_dir() else "") for p in real.iterdir())
