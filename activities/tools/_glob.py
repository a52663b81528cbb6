"""Glob patterns for the file tools, the same in every workspace backend.

``*`` and ``?`` stay within one path segment, ``**`` spans folders, ``[abc]`` and
``{py,md}`` work as in a shell. A pattern without ``/`` matches file names at any depth
(``*.py`` finds every Python file, as ``rg --glob`` does); a pattern with ``/`` matches
the path below the folder searched (``src/**/*.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from duragent.activities.errors import ToolError


def compile_glob(pattern: str) -> Callable[[str], bool]:
    """A predicate over paths relative to the folder searched.

    Raises:
        ToolError: ``invalid_glob`` for an empty or unbalanced pattern.
    """
    text = pattern.strip()
    while text.startswith("./"):
        text = text[2:]
    if not text:
        raise ToolError("the glob pattern is empty", code="invalid_glob")
    try:
        regex = re.compile(_translate(text))
    except re.error as err:
        raise ToolError(
            f"invalid glob pattern {pattern!r}: {err.msg}", code="invalid_glob"
        ) from err
    if "/" in text:
        return lambda path: regex.fullmatch(path) is not None
    return lambda path: regex.fullmatch(path.rsplit("/", 1)[-1]) is not None


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            piece, i = _translate_one(pattern, i)
            out.append(piece)
    return "".join(out)


def _translate_one(pattern: str, i: int) -> tuple[str, int]:
    char = pattern[i]
    if char == "*":
        return "[^/]*", i + 1
    if char == "?":
        return "[^/]", i + 1
    if char == "[":
        end = pattern.find("]", i + 2)
        if end == -1:
            return re.escape(char), i + 1
        body = pattern[i + 1 : end]
        if body.startswith("!"):
            body = "^" + body[1:]
        return f"[{body.replace(chr(92), chr(92) * 2)}]", end + 1
    if char == "{":
        end = pattern.find("}", i)
        if end == -1:
            return re.escape(char), i + 1
        options = pattern[i + 1 : end].split(",")
        return "(?:" + "|".join(_translate(o) for o in options) + ")", end + 1
    return re.escape(char), i + 1
