"""One MCP server's connection: started once, held by a task, restarted when lost.

The ``mcp`` SDK is built on anyio task groups, whose scopes must be left by the task
that entered them. Activities run in tasks of their own, so the connection is held by
a task of its own too (:meth:`McpSession._hold`): it enters the SDK's ``Client`` and
waits; calls from any activity go through the connected client; closing sets the
task's stop event and awaits it, so the stdio server process is stopped in the task
that started it.

A stdio server that died (or an HTTP server that dropped its session) shows at the
next call as a closed connection: the session connects again once (which starts the
process anew and lists its tools again) and sends the call once more. A call that
fails after that goes back to the model as a tool error; the run goes on.

This module imports the ``mcp`` SDK (about 0.7 s and 35 MiB); a worker imports it only
when MCP servers are configured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult, Implementation

from duragent._version import __version__
from duragent.activities.errors import ToolError
from duragent.activities.tools.mcp_config import McpServerConfig

log = logging.getLogger("duragent.mcp")

CONNECT_SECONDS = 20.0
"""Longest a connection may take: a stdio server's start and handshake, or an HTTP
server's. It fits inside the 30 s the workflow gives the local activity that lists
tools, with room for the listing."""
LIST_SECONDS = 20.0
"""Longest one ``tools/list`` page may take."""
MAX_LIST_PAGES = 100
"""A server that pages forever cannot hang a listing."""
# The SDK's own defaults for streamable HTTP: a response stream may stay open long.
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
_CLIENT = Implementation(name="duragent", version=__version__)


class McpUnavailable(ToolError):
    """The server cannot be reached (or started), even after connecting again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="mcp_unavailable")


@dataclass(frozen=True)
class RemoteTool:
    """A tool as its server lists it."""

    name: str
    description: str
    input_schema: dict[str, Any]


class McpSession:
    """The worker's connection to one MCP server (see the module).

    Args:
        name: The server's name in the configuration.
        config: How to reach it.
        env: Values of the worker variables its configuration names.
    """

    def __init__(self, name: str, config: McpServerConfig, env: Mapping[str, str]) -> None:
        self.name = name
        self.config = config
        self._env = env
        self._client: Client | None = None
        self._generation = 0
        """Counts connections, so concurrent calls that all saw the same connection
        drop reconnect it once, not once each."""
        self._stop: asyncio.Event | None = None
        self._holder: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._tools: list[RemoteTool] | None = None
        self.revision = 0
        """Changes whenever the tool listing does; the worker's name map follows it."""

    @property
    def tools(self) -> list[RemoteTool]:
        """The cached listing (empty before the first connection)."""
        return list(self._tools or [])

    @property
    def listed(self) -> bool:
        """Whether the server's tools were ever listed."""
        return self._tools is not None

    async def list_tools(self, *, refresh: bool = False) -> list[RemoteTool]:
        """The server's tools: cached, listed again when ``refresh`` is set.

        Raises:
            McpUnavailable: The server cannot be reached or does not answer.
        """
        if self._tools is not None and not refresh:
            return list(self._tools)
        connecting = self._client is None  # a new connection lists the tools itself
        client, generation = await self._connected()
        if not connecting:
            try:
                await self._relist(client)
            except McpUnavailable:
                await self._reconnect(generation)  # which lists them again
        return self.tools

    async def call(self, tool: str, arguments: dict[str, Any], seconds: float) -> CallToolResult:
        """Call one tool; a lost connection is made again once and the call sent again.

        Raises:
            McpUnavailable: The server cannot be reached, even after connecting again.
            ToolError: The server answered with a protocol error (code
                ``mcp_protocol_error``), or did not answer within ``seconds``
                (``mcp_timeout``).
        """
        client, generation = await self._connected()
        try:
            return await self._send(client, tool, arguments, seconds)
        except McpUnavailable as err:
            log.warning("MCP server %s: %s; connecting again", self.name, err)
        client, _ = await self._reconnect(generation)
        return await self._send(client, tool, arguments, seconds)

    async def close(self) -> None:
        """Close the connection; a stdio server's process is stopped."""
        async with self._lock:
            await self._drop()

    async def _send(
        self, client: Client, tool: str, arguments: dict[str, Any], seconds: float
    ) -> CallToolResult:
        try:
            return await client.call_tool(tool, arguments, read_timeout_seconds=seconds)
        except MCPError as err:
            if _connection_lost(err):
                raise McpUnavailable(f"the connection to {self.name} closed") from None
            if err.code == REQUEST_TIMEOUT:
                raise ToolError(
                    f"{self.name} did not answer within {seconds:g} s", code="mcp_timeout"
                ) from None
            raise ToolError(
                f"{self.name} answered with an error ({err.code}): {err.message}",
                code="mcp_protocol_error",
            ) from None
        except (OSError, RuntimeError, ExceptionGroup) as err:  # the transport broke
            raise McpUnavailable(f"the connection to {self.name} broke: {_leaf(err)}") from None

    async def _connected(self) -> tuple[Client, int]:
        async with self._lock:
            if self._client is None:
                await self._connect()
            assert self._client is not None
            return self._client, self._generation

    async def _reconnect(self, seen: int) -> tuple[Client, int]:
        """Connect again, unless another call did so since connection ``seen``."""
        async with self._lock:
            if self._generation == seen or self._client is None:
                await self._drop()
                await self._connect()
            assert self._client is not None
            return self._client, self._generation

    async def _connect(self) -> None:
        """Start the holding task, wait for its connection, list the tools."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Client] = loop.create_future()
        stop = asyncio.Event()
        holder = asyncio.create_task(self._hold(ready, stop), name=f"mcp:{self.name}")
        try:
            client = await asyncio.wait_for(asyncio.shield(ready), CONNECT_SECONDS)
        except BaseException as err:  # a timeout, a failure, or the caller's cancel
            stop.set()
            holder.cancel()  # a start that hangs must not outlive the attempt
            await asyncio.gather(holder, return_exceptions=True)
            if isinstance(err, TimeoutError):
                raise McpUnavailable(
                    f"{self.name} did not connect within {CONNECT_SECONDS:g} s"
                ) from None
            if isinstance(err, Exception):
                raise McpUnavailable(f"cannot connect to {self.name}: {_leaf(err)}") from None
            raise
        self._client, self._stop, self._holder = client, stop, holder
        self._generation += 1
        try:
            await self._relist(client)
        except McpUnavailable:
            await self._drop()
            raise
        log.info(
            "MCP server %s connected (%s); %d tools", self.name, self._where(), len(self.tools)
        )

    async def _hold(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """Enter the SDK's client, hand it over, wait for the stop; in this one task."""
        try:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(self._client_of(stack))
                ready.set_result(client)
                await stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as err:  # the connection's end, however it ended
            if not ready.done():
                ready.set_exception(err)
            else:  # closing a connection that had already dropped: nothing to do about it
                log.debug("MCP server %s: closed with %s", self.name, _leaf(err))

    def _client_of(self, stack: AsyncExitStack) -> Client:
        config = self.config
        if config.command is not None:
            program, *args = config.command
            params = StdioServerParameters(
                command=program,
                args=args,
                # Only the variables the configuration names (the SDK adds PATH, HOME,
                # USER, LOGNAME, SHELL and TERM): the worker's secrets stay with it.
                env={n: self._env[n] for n in config.env if n in self._env},
                cwd=config.cwd,
            )
            return Client(
                params, cache=None, client_info=_CLIENT, read_timeout_seconds=LIST_SECONDS
            )
        assert config.url is not None
        headers = {h: self._env[v] for h, v in config.headers_env.items() if v in self._env}
        http = httpx2.AsyncClient(headers=headers, timeout=_HTTP_TIMEOUT)
        stack.push_async_callback(http.aclose)
        transport = streamable_http_client(config.url, http_client=http)
        return Client(transport, cache=None, client_info=_CLIENT, read_timeout_seconds=LIST_SECONDS)

    async def _relist(self, client: Client) -> None:
        tools: list[RemoteTool] = []
        cursor: str | None = None
        try:
            for _ in range(MAX_LIST_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools += [
                    RemoteTool(
                        name=t.name,
                        description=t.description or t.title or t.name,
                        input_schema=dict(t.input_schema),
                    )
                    for t in page.tools
                ]
                cursor = page.next_cursor
                if cursor is None:
                    break
        except MCPError as err:
            raise McpUnavailable(f"{self.name} could not list its tools: {err.message}") from None
        except (OSError, RuntimeError, ExceptionGroup) as err:
            raise McpUnavailable(f"the connection to {self.name} broke: {_leaf(err)}") from None
        if tools != self._tools:
            self._tools = tools
            self.revision += 1

    async def _drop(self) -> None:
        """Let go of the connection (the holding task closes it); never raises."""
        stop, holder = self._stop, self._holder
        self._client, self._stop, self._holder = None, None, None
        if stop is not None and holder is not None:
            stop.set()
            await asyncio.gather(holder, return_exceptions=True)

    def _where(self) -> str:
        if self.config.command is not None:
            return f"stdio: {self.config.command[0]}"
        return f"HTTP: {self.config.url}"


def _connection_lost(err: MCPError) -> bool:
    """The SDK's own "connection closed", not a server's error that reuses its code.

    JSON-RPC leaves -32000 to servers too; the SDK's message tells them apart.
    """
    return err.code == CONNECTION_CLOSED and err.message == "Connection closed"


def _leaf(err: BaseException) -> str:
    """The first real exception in an anyio exception group, as one line."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return (str(err) or type(err).__name__).splitlines()[0]
