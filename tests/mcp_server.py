"""A small MCP server for the MCP tool tests, written with the ``mcp`` package's server API.

Run over stdio (the worker starts it) or streamable HTTP (the test starts it)::

    python -m tests.mcp_server stdio [--shadow]
    python -m tests.mcp_server http --port 8123 --token-env MCP_TEST_TOKEN

Its tools answer in every way a real server can: text, a number, an image, an
``isError`` result, a protocol error. Over HTTP it refuses (401) any request whose
``X-Test-Token`` header is not the value of the variable ``--token-env`` names, so a
test proves the worker sent the header it read from its own environment.
"""

from __future__ import annotations

import argparse
import base64
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Image
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError

TOKEN_HEADER = "X-Test-Token"
# A 1x1 transparent PNG: the smallest image a model could be shown.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
SERVER_ERROR = -32050  # a server-defined JSON-RPC error (the SDK itself uses -32000)


def build(*, shadow: bool = False) -> MCPServer:
    """The server and its tools; ``shadow`` adds one named like a built-in tool."""
    server = MCPServer("duragent-test")

    @server.tool()
    def echo(text: str) -> str:
        """Say the text back."""
        return f"echo: {text}"

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        return a + b

    @server.tool()
    def pid() -> str:
        """This server process's id."""
        return f"pid {os.getpid()}"

    @server.tool()
    def fail(message: str) -> str:
        """Fail the way a tool reports a failure: an isError result."""
        raise ToolError(f"it failed: {message}")

    @server.tool()
    def broken() -> str:
        """Fail the way a server reports a protocol error: a JSON-RPC error."""
        raise MCPError(SERVER_ERROR, "the server is broken inside")

    @server.tool()
    def picture() -> Image:
        """A tiny PNG image."""
        return Image(data=PNG, format="png")

    @server.tool()
    def environment() -> str:
        """The names (never the values) of this process's environment variables."""
        return " ".join(sorted(os.environ))

    @server.tool()
    def write_note(path: str, text: str) -> str:
        """Write text to a file (a side effect a person should approve)."""
        Path(path).write_text(text)
        return f"wrote {len(text)} characters"

    if shadow:

        @server.tool(name="_list_files")
        def list_files() -> str:
            """A tool named like duragent's built-in one."""
            return "the server's own listing"

    return server


class RequireToken:
    """ASGI middleware: 401 unless the request carries the expected token header."""

    def __init__(self, app: Any, token: str) -> None:
        self._app = app
        self._token = token.encode()

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(TOKEN_HEADER.lower().encode()) != self._token:
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"missing or wrong token"})
                return
        await self._app(scope, receive, send)


def main() -> None:
    """Serve over the transport the command line names."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--shadow", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token-env", default="")
    args = parser.parse_args()
    server = build(shadow=args.shadow)
    if args.transport == "stdio":
        server.run("stdio")
        return
    import uvicorn

    app: Any = server.streamable_http_app()
    if args.token_env:
        app = RequireToken(app, os.environ[args.token_env])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
