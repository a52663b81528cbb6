"""The path rules every workspace backend shares (see :mod:`activities.tools.workspace`).

A path from the model is normalised lexically to one canonical form before any backend
sees it: POSIX separators, no ``.`` or ``..``, ``"."`` for the root; NUL bytes, absolute
and home-relative paths and ``..`` above the root are refused.
"""

from __future__ import annotations

from duragent.activities.errors import ToolError


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
