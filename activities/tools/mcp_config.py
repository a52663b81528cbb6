"""How a worker reaches one MCP server (the ``[mcp.NAME]`` tables of ``duragent.toml``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class McpServerConfig(BaseModel):
    """One MCP server: a stdio command the worker starts, or a streamable HTTP URL."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: list[str] | None = Field(default=None, min_length=1)
    """Argv of a stdio server, started (and restarted) by the worker."""
    url: str | None = None
    """Streamable HTTP endpoint of a running server."""
