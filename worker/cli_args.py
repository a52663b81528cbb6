"""What the ``duragent`` command accepts as arguments, checked before anything connects.

Each checker is an argparse ``type=``: a bad value becomes the parser's one-line usage
error (exit code 2), so a mistake is reported the same way with or without a server.
The bounds keep what a command sends far below Temporal's 2 MB payload limit.

This module imports nothing heavy (no SDK, no models): ``--help``, ``--version`` and
every usage error answer at once, before the CLI loads Temporal's client.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from collections.abc import Callable
from functools import cache
from pathlib import Path

EXIT_OK, EXIT_NOT_COMPLETED, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 141
"""As a shell reports a process killed by SIGPIPE: whoever read the output left."""
MAX_ID_CHARS = 1_000
"""Temporal's default limit on a workflow id."""
MAX_TASK_BYTES = 1_000_000
"""A task, however it is given (argument, ``--task-file``, standard input)."""
MAX_TEXT_BYTES = 100_000
"""A message, an answer, a reason, a system prompt, edited arguments."""
# The workflow's own bounds (activities/limits.py; tests/test_cli_fuzz.py keeps them
# equal), so the CLI refuses in one line what the agent would refuse or drop.
MAX_MESSAGE_BYTES = 32 * 1024
"""A ``say`` message, a reply's answer."""
MAX_REJECT_BYTES = 8 * 1024
"""What the model is told of a rejected call."""
MAX_NAME_CHARS = 200
"""A model, an owner, a question or call id, a fingerprint."""
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What OpenAI-compatible providers accept as a function name."""
MCP_TOOLS = re.compile(r"^mcp:[A-Za-z0-9_.-]{1,64}(/[^\s,]{1,128})?$")
"""An MCP server's tools, ``mcp:SERVER`` or ``mcp:SERVER/tool`` (see ``duragent.toml``)."""
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
"""A dotted Python module name, as ``--load`` and ``DURAGENT_LOAD`` take them."""
MAX_GRAPH_FILE_BYTES = 1_000_000
"""A graph file: it travels in the run's input, under Temporal's 2 MB payload limit."""
STDIN = "-"
AGENT_STATUSES = (
    "running",
    "waiting_user",
    "waiting_approval",
    "waiting_provider",
    "completed",
    "failed",
    "cancelled",
    "max_cycles",
    "budget_exceeded",
)
"""``workflows.models.AgentStatus``'s values (a test keeps them equal), without its import."""
CLOSED_BY_TEMPORAL = ("terminated", "timed_out")
"""Statuses of runs Temporal closed itself, which the agent never recorded."""
LS_STATUSES = (*AGENT_STATUSES, *CLOSED_BY_TEMPORAL)


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A whole number in ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {_shown(text)}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


def agent_id(text: str) -> str:
    """An agent (workflow) id: printable, not blank, no surrounding spaces."""
    return workflow_id(text, "the agent id")


def graph_id(text: str) -> str:
    """A graph (workflow) id, by the same rules as an agent's."""
    return workflow_id(text, "the graph id")


def workflow_id(text: str, what: str) -> str:
    """A workflow id: printable, not blank, no surrounding spaces, within Temporal's limit."""
    text = _utf8(text, what)
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{what} must not be empty")
    if text != text.strip():
        raise argparse.ArgumentTypeError(f"{what} {_shown(text)} must not start or end with spaces")
    if len(text) > MAX_ID_CHARS:
        raise argparse.ArgumentTypeError(
            f"{what} is {len(text)} characters long; at most {MAX_ID_CHARS}"
        )
    if any(_is_control(c) for c in text):
        raise argparse.ArgumentTypeError(f"{what} {_shown(text)} contains control characters")
    return text


def name(what: str) -> Callable[[str], str]:
    """A short single-line value (model, owner, question id, call id, fingerprint)."""

    def parse(text: str) -> str:
        text = _utf8(text, what)
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{what} must not be empty")
        if len(text) > MAX_NAME_CHARS:
            raise argparse.ArgumentTypeError(
                f"{what} is {len(text)} characters long; at most {MAX_NAME_CHARS}"
            )
        if any(_is_control(c) for c in text):
            raise argparse.ArgumentTypeError(f"{what} {_shown(text)} contains control characters")
        return text

    return parse


def workspace_name(text: str) -> str:
    """``--workspace``: a folder below the workspace root, by the workspace's path rules.

    Relative, no ``..`` segment, no NUL or control characters, not the root itself: what
    ``AgentInput.workspace`` accepts (stricter only in refusing ``..`` anywhere), checked
    here so a bad name is a usage error, not a failed start.
    """
    text = name("--workspace")(text)
    if text.strip().startswith(("/", "~")):
        raise argparse.ArgumentTypeError(
            f"--workspace {_shown(text)} must be relative to the workspace root"
        )
    parts = [p for p in text.strip().split("/") if p not in ("", ".")]
    if ".." in parts:
        raise argparse.ArgumentTypeError(f"--workspace {_shown(text)} must not contain '..'")
    if not parts:
        raise argparse.ArgumentTypeError(
            f"--workspace {_shown(text)} must name a folder, not the workspace root"
        )
    return text


def text(what: str, *, max_bytes: int = MAX_TEXT_BYTES) -> Callable[[str], str]:
    """Free text (several lines allowed): valid UTF-8, not blank, bounded, no NUL."""

    def parse(value: str) -> str:
        return checked_text(_utf8(value, what), what, max_bytes=max_bytes)

    return parse


def checked_text(value: str, what: str, *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """``value`` if it is usable text, else the reason as an ``ArgumentTypeError``."""
    if not value.strip():
        raise argparse.ArgumentTypeError(f"{what} must not be empty")
    if "\x00" in value:
        raise argparse.ArgumentTypeError(f"{what} contains a NUL character")
    size = len(value.encode())
    if size > max_bytes:
        raise argparse.ArgumentTypeError(f"{what} is {size:,} bytes; at most {max_bytes:,}")
    return value


def tool_names(value: str) -> list[str]:
    """``--tools a,b``: valid, distinct tool names."""
    value = _utf8(value, "--tools")
    names = [part.strip() for part in value.split(",")]
    if not any(names):
        raise argparse.ArgumentTypeError("--tools names no tool")
    if not all(names):
        raise argparse.ArgumentTypeError(f"--tools has an empty name in {_shown(value)}")
    bad = [n for n in names if not (TOOL_NAME.match(n) or MCP_TOOLS.match(n))]
    if bad:
        raise argparse.ArgumentTypeError(
            f"not a tool name: {_shown(bad[0])} (letters, digits, '_' and '-', at most 64; "
            "or mcp:SERVER, mcp:SERVER/tool)"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"--tools names {', '.join(repeated)} more than once")
    return names


@cache
def built_in_tools() -> frozenset[str]:
    """The names of the tools every stock worker has."""
    from duragent.activities.tools import default_tools
    from duragent.activities.tools.control import COMPRESS_MEMORY, SUB_TASK_TOOLS

    return frozenset([t.name for t in default_tools()] + [COMPRESS_MEMORY, *SUB_TASK_TOOLS])


def unknown_tools(names: list[str] | None) -> list[str]:
    """The names that are no built-in tool (a worker may still register them)."""
    return [n for n in names or [] if n not in built_in_tools() and not MCP_TOOLS.match(n)]


def split_module_names(value: str) -> tuple[str, ...]:
    """``a.b,c``: distinct dotted module names, in order.

    Raises:
        ValueError: No name, or one that is no module name.
    """
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise ValueError("names no module")
    bad = [n for n in names if not MODULE_NAME.fullmatch(n)]
    if bad:
        raise ValueError(
            f"{_shown(bad[0])} is not a module name (dotted, like mypkg.tasks; not a file path)"
        )
    return tuple(dict.fromkeys(names))


def module_names(value: str) -> tuple[str, ...]:
    """``--load a.b,c``: module names (whether they import is checked before connecting)."""
    try:
        return split_module_names(_utf8(value, "--load"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def json_value(what: str, *, max_bytes: int = MAX_TEXT_BYTES) -> Callable[[str], str]:
    """Any JSON value (a graph's input, a gate's answer), returned as given."""

    def parse(value: str) -> str:
        value = checked_text(_utf8(value, what), what, max_bytes=max_bytes)
        try:
            json.loads(value)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(
                f"{what} is not valid JSON: {err.msg} at position {err.pos}"
                + (" (quote text as JSON: '\"yes\"')" if err.pos == 0 else "")
            ) from None
        return value

    return parse


def json_object_of(what: str) -> Callable[[str], str]:
    """A JSON object (a graph's ``--input``), returned as given."""

    def parse(value: str) -> str:
        value = json_value(what)(value)
        parsed = json.loads(value)
        if not isinstance(parsed, dict):
            raise argparse.ArgumentTypeError(
                f"{what} must be a JSON object, got {type(parsed).__name__}"
            )
        return value

    return parse


def graph_file(value: str) -> str:
    """A graph file's path: given, and naming a readable regular file."""
    value = _utf8(value, "the graph file")
    if not value.strip():
        raise argparse.ArgumentTypeError("the graph file must not be empty")
    path = Path(value)
    if not path.is_file():
        why = "no such file" if not path.exists() else "not a regular file"
        raise argparse.ArgumentTypeError(f"cannot read the graph file {_shown(value)}: {why}")
    size = path.stat().st_size
    if size > MAX_GRAPH_FILE_BYTES:
        raise argparse.ArgumentTypeError(
            f"the graph file {_shown(value)} is {size:,} bytes; at most {MAX_GRAPH_FILE_BYTES:,}"
        )
    return value


def looks_like_file(value: str) -> bool:
    """Whether ``graph show X`` means a file (it exists, or ends .yaml/.yml/.json) or an id."""
    return Path(value).exists() or value.lower().endswith((".yaml", ".yml", ".json"))


def json_object(value: str) -> str:
    """Arguments of ``edit``: a JSON object, returned as given."""
    value = checked_text(_utf8(value, "the arguments"), "the arguments")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(
            f"the arguments are not valid JSON: {err.msg} at position {err.pos}"
        ) from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(
            f"the arguments must be a JSON object, got {type(parsed).__name__}"
        )
    return value


def read_task(task: str | None, task_file: str | None) -> str:
    """The task from the argument, ``--task-file PATH`` or ``-`` (standard input).

    Raises:
        argparse.ArgumentTypeError: No task, two of them, or one that is unusable.
    """
    if task is not None and task_file is not None:
        raise argparse.ArgumentTypeError("give the task or --task-file, not both")
    if task is None and task_file is None:
        raise argparse.ArgumentTypeError("no task: give it as an argument, --task-file or -")
    if task == STDIN or task_file == STDIN:
        raw = sys.stdin.buffer.read(MAX_TASK_BYTES + 1)
        source = "the task on standard input"
    elif task_file is not None:
        raw = _read_file(task_file)
        source = f"the task file {_shown(task_file)}"
    else:
        assert task is not None
        return checked_text(_utf8(task, "the task"), "the task", max_bytes=MAX_TASK_BYTES)
    try:
        decoded = raw.decode()
    except UnicodeDecodeError as err:
        raise argparse.ArgumentTypeError(
            f"{source} is not valid UTF-8 (byte {err.start})"
        ) from None
    return checked_text(decoded, source, max_bytes=MAX_TASK_BYTES)


def _read_file(path: str) -> bytes:
    path = _utf8(path, "--task-file")
    try:
        with Path(path).open("rb") as file:
            return file.read(MAX_TASK_BYTES + 1)
    except OSError as err:
        raise argparse.ArgumentTypeError(
            f"cannot read the task file {_shown(path)}: {err.strerror}"
        ) from None


def _utf8(value: str, what: str) -> str:
    # Arguments that are not UTF-8 reach Python as lone surrogates (PEP 383); they
    # could not be encoded into any payload later.
    try:
        value.encode()
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{what} is not valid UTF-8") from None
    return value


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def _shown(value: str, limit: int = 60) -> str:
    shown = ascii(value) if any(_is_control(c) for c in value) else repr(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
