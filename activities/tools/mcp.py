"""MCP servers' tools as first-class tools of the worker.

The worker owns one :class:`McpServers` (built at start, closed at shutdown) for the
``[mcp.NAME]`` tables of its configuration. It connects to every server when it
starts (a stdio server is a process it starts, and starts again if it dies), lists
each server's tools once and keeps the listing, and lists again when it connects
anew or when asked for a tool its listing lacks.

An agent enables ``mcp:SERVER`` or ``mcp:SERVER/tool`` in ``AgentInput.tools``. The
local activity that describes a run's tools expands those entries into the tools'
offered names and policies (:meth:`McpServers.expand`); its answer is recorded in
history, so the workflow sees concrete names, as for any other tool. Each tool is an
:class:`McpTool` in the worker's :class:`~activities.tools.registry.ToolRegistry`:

- the model sees the server's own input schema (raw JSON Schema), and arguments are
  checked against it before the call; a mismatch goes back to the model as a tool
  error (``invalid_arguments``);
- names are unique across the worker (see :mod:`._mcp_names`): a colliding tool is
  offered as ``SERVER__tool`` (or its server's ``prefix``), with a warning in the log,
  and the description of the run's tools maps each offered name to its ``SERVER/tool``;
- each call is one ``run_tool`` activity with the tool's timeout and attempts, and
  waits for a person first when its approval mode is ``always``, exactly as a
  dangerous built-in tool does.

What the model reads back:

==================================  =================================================
the server answers                  the tool result
==================================  =================================================
content                             its text blocks joined; an image attached for the
                                    model to see (as ``_read_image`` does); other
                                    blocks named in one line; bounded like any result
``isError: true``                   error ``mcp_error`` with the server's text
a protocol (JSON-RPC) error         error ``mcp_protocol_error`` with its message
no answer within the timeout        error ``mcp_timeout``
unreachable, after one reconnect    error ``mcp_unavailable``
==================================  =================================================

None of these fails the run: the model hears and decides.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue, RootModel

from duragent.activities.errors import ToolError
from duragent.activities.limits import truncate
from duragent.activities.models import ToolKind
from duragent.activities.tools._mcp_names import (
    MCP_SCHEME,
    NameMap,
    Offered,
    name_map,
    parse_ref,
)
from duragent.activities.tools.image import (
    IMAGE_REF_PREFIX,
    MAX_IMAGE_BYTES,
    sniff_image,
    store_image,
)
from duragent.activities.tools.mcp_config import McpServerConfig
from duragent.activities.tools.registry import Tool, ToolContext, ToolOutput, parse_arguments

if TYPE_CHECKING:
    from mcp_types import CallToolResult, ContentBlock

    from duragent.activities.tools._mcp_session import McpSession, RemoteTool

__all__ = ["MCP_SCHEME", "Expansion", "McpArguments", "McpServers", "McpTool"]

log = logging.getLogger("duragent.mcp")

RECONNECT_SECONDS = 30.0
"""Added to a tool's timeout for its activity: a call may first have to start its
server again (see :mod:`._mcp_session`) before it gets its own timeout."""
MAX_RESULT_BYTES = 1_000_000
"""A result's text, head and tail kept past it; past the run's ``large_result_chars``
it goes to a workspace artifact anyway, so this only bounds the worker's memory."""


class McpArguments(RootModel[dict[str, JsonValue]]):
    """An MCP tool's arguments: a JSON object, checked against the server's schema."""


@dataclass(frozen=True)
class McpTool(Tool[McpArguments]):
    """A tool of an MCP server, under the name the model sees."""

    server: str = ""
    remote_name: str = ""
    """Its name on the server."""
    input_schema: Mapping[str, Any] = field(default_factory=dict)
    """The server's JSON Schema of its arguments, sent to the model as it is."""

    def parse(self, raw: str) -> McpArguments:
        """Parse the arguments and check them against the server's schema.

        Raises:
            ToolError: With code ``invalid_arguments``, naming what does not match.
        """
        args = parse_arguments(self.name, McpArguments, raw)
        problems = _schema_errors(args.root, self.input_schema)
        if problems:
            raise ToolError(
                f"invalid arguments for {self.name}: {'; '.join(problems)}",
                code="invalid_arguments",
            )
        return args

    def openai_schema(self) -> dict[str, Any]:
        """The Chat Completions entry, with the server's own schema as parameters."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.input_schema),
            },
        }


@dataclass(frozen=True)
class Expansion:
    """An agent's ``mcp:`` entries, expanded (see :meth:`McpServers.expand`)."""

    tools: list[McpTool]
    unknown: list[str]
    """Entries that name no server or tool, each with the reason."""
    sources: dict[str, str]
    """Offered name -> ``SERVER/tool``, for every tool of ``tools``."""


class McpServers:
    """The worker's MCP servers, their tools, and the names the model sees them by.

    A :class:`~activities.tools.registry.ToolSource`: the registry finds MCP tools
    here by name. Build it once per worker, :meth:`start` it, :meth:`close` it at
    shutdown.

    Args:
        servers: The configuration's ``[mcp.NAME]`` tables.
        env: Values of the worker variables the tables name (``env``, ``headers_env``).
    """

    def __init__(self, servers: Mapping[str, McpServerConfig], env: Mapping[str, str]) -> None:
        # The SDK is imported here, by a worker that has servers, not by every worker.
        from duragent.activities.tools._mcp_session import McpSession

        self._sessions: dict[str, McpSession] = {
            name: McpSession(name, config, env) for name, config in servers.items()
        }
        self._taken: frozenset[str] = frozenset()
        self._seen: tuple[int, ...] = ()
        self._names = NameMap()
        self._tools: dict[str, McpTool] = {}
        self._listing: dict[str, asyncio.Task[None]] = {}
        """Listings under way in the background (see :meth:`get`), by server."""

    def reserve(self, names: Iterable[str]) -> None:
        """Names the worker's own tools have: an MCP tool never takes one."""
        self._taken = frozenset(names)
        self._seen = ()

    @property
    def servers(self) -> list[str]:
        """The configured servers' names."""
        return list(self._sessions)

    async def start(self) -> None:
        """Connect to every server and list its tools; a failure is logged, not raised.

        A server that cannot be reached now is tried again when an agent needs it.
        """
        names = list(self._sessions)
        listed = await asyncio.gather(
            *(self._sessions[n].list_tools() for n in names), return_exceptions=True
        )
        for name, outcome in zip(names, listed, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("MCP server %s is not available yet: %s", name, outcome)
        self._current()

    async def close(self) -> None:
        """Close every connection; stdio servers' processes are stopped."""
        for task in self._listing.values():
            task.cancel()
        await asyncio.gather(*self._listing.values(), return_exceptions=True)
        await asyncio.gather(*(s.close() for s in self._sessions.values()))

    def get(self, name: str) -> McpTool | None:
        """The MCP tool offered under ``name``, from the listings at hand.

        Never waits (the LLM activity asks for each tool's schema). A server that has
        never been listed (it was down when the worker started) is listed in the
        background, so that a later lookup finds its tools.
        """
        found = self._current().get(name)
        if found is None:
            self._list_unlisted()
        return found

    async def find(self, name: str) -> McpTool | None:
        """The tool offered under ``name``, listing every server again if need be.

        Raises:
            ToolError: The tool is not found and a server could not be listed again
                (code ``mcp_unavailable``): the tool may be that server's.
        """
        found = self.get(name)
        if found is not None:
            return found
        sessions = list(self._sessions.values())
        outcomes = await asyncio.gather(
            *(s.list_tools(refresh=True) for s in sessions), return_exceptions=True
        )
        found = self.get(name)
        failed = [
            (s.name, o)
            for s, o in zip(sessions, outcomes, strict=True)
            if isinstance(o, BaseException)
        ]
        if found is None and failed:
            server, err = failed[0]
            raise ToolError(
                f"{name} is not a tool of the MCP servers this worker reached; {server} "
                f"could not be listed: {err}",
                code="mcp_unavailable",
            )
        return found

    async def expand(self, entries: Sequence[str]) -> Expansion:
        """The tools an agent's ``mcp:SERVER[/tool]`` entries enable.

        A server is listed when it has not been yet, and again when an entry names a
        tool its listing lacks.

        Raises:
            McpUnavailable: A named server cannot be reached.
        """
        refs = [(entry, parse_ref(entry)) for entry in entries]
        unknown = [f"{e} (not an MCP tool name)" for e, ref in refs if ref is None]
        wanted = {r.server for _, r in refs if r is not None and r.server in self._sessions}
        for server in sorted(wanted):
            session = self._sessions[server]
            listed = {t.name for t in await session.list_tools()}
            missing = {r.tool for _, r in refs if r and r.server == server and r.tool}
            if not missing <= listed:
                await session.list_tools(refresh=True)
        tools: dict[str, McpTool] = {}
        by_tool = {(t.server, t.remote_name): t for t in self._current().values()}
        for entry, ref in refs:
            if ref is None:
                continue
            if ref.server not in self._sessions:
                known = ", ".join(self._sessions) or "none"
                unknown.append(f"{entry} (no MCP server {ref.server!r}; servers: {known})")
                continue
            session = self._sessions[ref.server]
            names = [ref.tool] if ref.tool else [t.name for t in session.tools]
            for remote in names:
                found = by_tool.get((ref.server, remote))
                if found is not None:
                    tools.setdefault(found.name, found)
                else:
                    unknown.append(f"{entry} ({_why_absent(session.tools, remote)})")
        sources = {n: f"{t.server}/{t.remote_name}" for n, t in tools.items()}
        return Expansion(tools=list(tools.values()), unknown=unknown, sources=sources)

    def _list_unlisted(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # asked outside the worker's loop: nothing to list with
            return
        for name, session in self._sessions.items():
            if session.listed or name in self._listing:
                continue
            self._listing[name] = loop.create_task(
                self._list_quietly(name), name=f"mcp-list:{name}"
            )

    async def _list_quietly(self, name: str) -> None:
        try:
            await self._sessions[name].list_tools()
        except ToolError as err:  # tried again at the next lookup, or by the next agent
            log.info("MCP server %s is still not available: %s", name, err)
        finally:
            self._listing.pop(name, None)

    def _current(self) -> dict[str, McpTool]:
        """The tools by offered name, rebuilt when a listing changed since last time."""
        seen = tuple(s.revision for s in self._sessions.values())
        if seen != self._seen:
            self._seen = seen
            previous = set(self._names.renamed)
            self._names = name_map(
                {n: [t.name for t in s.tools] for n, s in self._sessions.items()},
                self._taken,
                {n: s.config.prefix for n, s in self._sessions.items()},
            )
            for line in self._names.renamed:
                if line not in previous:
                    log.warning("MCP tool %s", line)
            self._tools = self._build_tools()
            for server in self._sessions:  # the name map, where operators look
                names = [n for n, t in self._tools.items() if t.server == server]
                if names:
                    log.info("MCP server %s offers: %s", server, ", ".join(names))
        return self._tools

    def _build_tools(self) -> dict[str, McpTool]:
        tools: dict[str, McpTool] = {}
        for server, session in self._sessions.items():
            for remote in session.tools:
                offered = self._names.of(server, remote.name)
                if offered is None:
                    continue
                schema, problem = _usable_schema(remote.input_schema)
                if problem is not None:
                    log.warning("MCP tool %s/%s not offered: %s", server, remote.name, problem)
                    continue
                tools[offered.name] = self._tool(session.config, offered, remote, schema)
        return tools

    def _tool(
        self,
        config: McpServerConfig,
        offered: Offered,
        remote: RemoteTool,
        schema: dict[str, Any],
    ) -> McpTool:
        approval, timeout, attempts = config.for_tool(remote.name)
        session = self._sessions[offered.server]

        async def call(args: McpArguments, ctx: ToolContext) -> str | ToolOutput:
            result = await session.call(remote.name, args.root, timeout)
            return await _read_result(result, ctx, offered)

        return McpTool(
            name=offered.name,
            description=remote.description,
            args_model=McpArguments,
            function=call,
            kind=ToolKind.ACTIVITY,
            timeout=timedelta(seconds=timeout + RECONNECT_SECONDS),
            max_attempts=attempts,
            approval=approval,
            server=offered.server,
            remote_name=remote.name,
            input_schema=schema,
        )


async def _read_result(result: CallToolResult, ctx: ToolContext, offered: Offered) -> str:
    """What the model reads of a call's result (see the module's table).

    Raises:
        ToolError: The server reported an error (``isError``), code ``mcp_error``.
    """
    parts = [await _read_block(block, ctx) for block in result.content]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = truncate("\n".join(parts), MAX_RESULT_BYTES)
    if result.is_error:
        where = f"{offered.server}/{offered.tool}"
        raise ToolError(f"{where} reported an error: {text or 'no message'}", code="mcp_error")
    return text or "(the tool returned no content)"


async def _read_block(block: ContentBlock, ctx: ToolContext) -> str:
    if block.type == "text":
        return block.text
    if block.type == "image":
        return await _attach_image(block.data, block.mime_type, ctx)
    if block.type == "audio":
        return f"[audio ({block.mime_type}, {_decoded_size(block.data):,} bytes) not shown]"
    if block.type == "resource_link":
        return f"[resource {block.uri}: {block.description or block.name}]"
    resource = block.resource
    text = getattr(resource, "text", None)
    if isinstance(text, str):
        return f"[resource {resource.uri}]\n{text}"
    return f"[resource {resource.uri} ({resource.mime_type or 'binary'}) not shown]"


async def _attach_image(data: str, mime: str, ctx: ToolContext) -> str:
    """An image for the model to see, as ``_read_image`` attaches one; else a summary."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return f"[image ({mime}) not shown: its data is not base64]"
    kind = sniff_image(raw)
    if kind is None or len(raw) > MAX_IMAGE_BYTES:
        why = "too large" if kind else "not a PNG, JPEG, GIF or WebP image"
        return f"[image ({mime}, {len(raw):,} bytes) not shown: {why}]"
    ref = await store_image(ctx.workspace, raw, kind[1])
    return f"image ({kind[0]}, {len(raw):,} bytes) attached\n{IMAGE_REF_PREFIX}{ref}"


def _decoded_size(data: str) -> int:
    return len(data) * 3 // 4


def _why_absent(tools: Collection[RemoteTool], remote: str) -> str:
    names = ", ".join(t.name for t in tools) or "none"
    if any(t.name == remote for t in tools):
        return f"{remote} is not offered; see the worker's log (its schema or its name)"
    return f"no tool {remote!r}; its tools: {names}"


def _usable_schema(schema: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The schema as sent to the model (an object with ``properties``), or the problem.

    A schema the model's provider would refuse must not be sent: one bad tool would
    fail every LLM call of the agents that enable it.
    """
    usable = dict(schema)
    if usable.get("type", "object") != "object":
        return usable, f"its arguments are not an object (type {usable.get('type')!r})"
    usable.setdefault("type", "object")
    usable.setdefault("properties", {})
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(usable).check_schema(usable)
    except SchemaError as err:
        return usable, f"its input schema is not valid JSON Schema: {err.message}"
    return usable, None


def _schema_errors(value: dict[str, JsonValue], schema: Mapping[str, Any]) -> list[str]:
    """Up to five ``at $.path: what is wrong`` lines; none when ``value`` matches."""
    # Imported on first use (jsonschema costs ~8 MiB; see worker.plugin).
    from jsonschema.validators import validator_for
    from referencing import Registry

    # An empty registry: a remote $ref is never fetched by a tool call.
    validator = validator_for(schema)(dict(schema), registry=Registry())
    errors = itertools.islice(validator.iter_errors(value), 5)
    return [f"at {e.json_path}: {e.message[:300]}" for e in errors]
