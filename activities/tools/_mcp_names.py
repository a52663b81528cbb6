"""The names MCP tools are offered under, and how agents name the tools they enable.

Pure: the same servers' listings give the same names on every worker, which is what
lets any worker of a cluster find the tool behind a name the model called.

An agent enables ``mcp:SERVER`` (every tool of that server) or ``mcp:SERVER/tool``.
The model sees each tool under its own name unless that name is not unique among the
worker's tools (its built-in and user tools, and every configured server's tools) or
does not fit the model's alphabet (``^[a-zA-Z0-9_-]{1,64}$``); then it is offered as
``SERVER__tool``, or ``PREFIXtool`` with the server's configured ``prefix``. Every such
renaming is reported, so the worker can log it and the tool listing can show it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

MCP_SCHEME = "mcp:"
"""How an agent's tool list names MCP tools: ``mcp:SERVER`` or ``mcp:SERVER/tool``."""
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What Chat Completions accepts as a function name."""
_UNFIT = re.compile(r"[^a-zA-Z0-9_-]")
_HASH_CHARS = 8


@dataclass(frozen=True)
class McpRef:
    """An ``mcp:SERVER[/tool]`` entry of an agent's tool list."""

    server: str
    tool: str | None
    """``None``: every tool of the server."""


def parse_ref(name: str) -> McpRef | None:
    """The MCP reference an agent's tool name is, or ``None`` for any other name."""
    if not name.startswith(MCP_SCHEME):
        return None
    server, _, tool = name[len(MCP_SCHEME) :].partition("/")
    return McpRef(server=server, tool=tool or None)


@dataclass(frozen=True)
class Offered:
    """One MCP tool under the name the model sees."""

    name: str
    server: str
    tool: str
    """The tool's own name on its server."""


@dataclass(frozen=True)
class NameMap:
    """Every MCP tool of the worker under its offered name."""

    by_name: dict[str, Offered] = field(default_factory=dict)
    by_tool: dict[tuple[str, str], Offered] = field(default_factory=dict)
    renamed: list[str] = field(default_factory=list)
    """One line per tool offered under another name, and why."""

    def of(self, server: str, tool: str) -> Offered | None:
        """The offered form of a server's tool, if it is offered."""
        return self.by_tool.get((server, tool))


def name_map(
    listings: Mapping[str, Sequence[str]],
    taken: Collection[str],
    prefixes: Mapping[str, str | None],
) -> NameMap:
    """Offered names for the tools of every server.

    Args:
        listings: Each server's tool names, as it lists them.
        taken: The worker's own tool names; an MCP tool never shadows one.
        prefixes: Each server's configured ``prefix`` (``None``: ``SERVER__``).

    Returns:
        The map, deterministic in its inputs (servers are taken in name order).
    """
    holders: dict[str, list[str]] = {}
    for server in sorted(listings):
        for tool in dict.fromkeys(listings[server]):
            holders.setdefault(tool, []).append(server)
    used = set(taken)
    result = NameMap()
    for server in sorted(listings):
        prefix = prefixes.get(server) or f"{server}__"
        for tool in listings[server]:
            if (server, tool) in result.by_tool:
                continue  # a server that lists a tool twice
            why = _clash(tool, holders[tool], taken, used)
            name = tool if why is None else _fit(prefix + tool, used)
            if name is None:
                result.renamed.append(f"{server}/{tool} is not offered: no free name ({why})")
                continue
            if name != tool:
                result.renamed.append(f"{server}/{tool} is offered as {name}: {why}")
            used.add(name)
            offered = Offered(name=name, server=server, tool=tool)
            result.by_name[name] = offered
            result.by_tool[(server, tool)] = offered
    return result


def _clash(
    tool: str, holders: Sequence[str], taken: Collection[str], used: Collection[str]
) -> str | None:
    """Why a tool cannot have its own name, or ``None`` when it can."""
    if tool in taken:
        return "the worker has a tool of that name"
    if len(holders) > 1:
        return f"servers {', '.join(holders)} all have a tool {tool!r}"
    if tool in used:
        return "another MCP tool is offered under that name"
    if not TOOL_NAME.fullmatch(tool):
        return "the name does not fit [a-zA-Z0-9_-]{1,64}"
    return None


def _fit(candidate: str, used: Collection[str]) -> str | None:
    """``candidate`` made a valid, unused name; ``None`` if it is used already.

    Odd characters become ``_``; a long name keeps its head and gets a short hash of
    the whole, so two long names that share a head stay apart.
    """
    name = _UNFIT.sub("_", candidate)
    if len(name) > 64:
        digest = hashlib.sha256(candidate.encode()).hexdigest()[:_HASH_CHARS]
        name = f"{name[: 64 - _HASH_CHARS - 1]}_{digest}"
    return None if name in used else name
