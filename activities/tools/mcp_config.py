"""How a worker reaches one MCP server (the ``[mcp.NAME]`` tables of ``duragent.toml``).

A server is a stdio ``command`` the worker starts (and restarts), or a streamable
HTTP ``url``. Secrets never appear in the file: ``env`` and ``headers_env`` name the
worker's environment variables, whose values the worker reads at start::

    [mcp.github]
    url = "https://mcp.example.com/github"
    headers_env = {Authorization = "GITHUB_MCP_AUTH"}     # header -> variable NAME
    approval = "always"                                   # every call waits for a person
    tools = {list_issues = {approval = "never", timeout_seconds = 20}}

    [mcp.files]
    command = ["python", "-m", "my_mcp_server", "--root", "/srv/data"]
    env = ["DATA_TOKEN"]                                  # passed to the server, by name
    cwd = "/srv/data"
    timeout_seconds = 30
    retry = 2
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from duragent.activities.models import ApprovalMode

__all__ = ["SERVER_NAME", "McpServerConfig", "McpToolConfig", "variable_values"]

SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
"""A server's name: it goes into tool names (``SERVER__tool``) the model sees, whose
alphabet is ``[a-zA-Z0-9_-]``, and into ``mcp:SERVER/tool``."""
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an HTTP token (RFC 9110)
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

Approval = Literal["never", "always"]


class McpToolConfig(BaseModel):
    """Overrides for one tool of a server (``tools = {NAME = {...}}``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approval: Approval | None = None
    """``always``: each call waits for a person's decision; the server's when unset."""
    timeout_seconds: float | None = Field(default=None, gt=0, le=86_400)
    """Longest one call may take; the server's when unset."""
    retry: int | None = Field(default=None, ge=1, le=100)
    """Attempts of a call that did not answer (a timeout, a lost worker)."""


class McpServerConfig(BaseModel):
    """One MCP server: a stdio command the worker starts, or a streamable HTTP URL."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: list[str] | None = Field(default=None, min_length=1)
    """Argv of a stdio server, started (and restarted) by the worker."""
    env: list[str] = Field(default_factory=list)
    """Names of worker variables passed to a stdio server. Nothing else of the worker's
    environment reaches it, apart from the MCP SDK's harmless baseline (``PATH``,
    ``HOME``, ``USER``, ``LOGNAME``, ``SHELL``, ``TERM``)."""
    cwd: str | None = None
    """Working directory of a stdio server; the worker's when unset."""
    url: str | None = None
    """Streamable HTTP endpoint of a running server."""
    headers_env: dict[str, str] = Field(default_factory=dict)
    """HTTP headers sent to a ``url`` server: header name -> the NAME of the worker
    variable holding its value (read at start; the value is never written anywhere)."""
    timeout_seconds: float = Field(default=60.0, gt=0, le=86_400)
    """Longest one call may take before the model hears it timed out."""
    retry: int = Field(default=1, ge=1, le=100)
    """Attempts of a call that did not answer. One by default: a tool call is an
    external side effect, and the model can decide to call again; raise it for
    idempotent tools. An answer (even an error) is never retried."""
    approval: Approval = "never"
    """``always``: every call waits for a person's decision, as a dangerous tool does."""
    tools: dict[str, McpToolConfig] = Field(default_factory=dict)
    """Per-tool overrides of ``approval``, ``timeout_seconds`` and ``retry``."""
    prefix: str | None = None
    """Put before a tool's name when it collides with another tool (default
    ``SERVER__``), e.g. ``gh_`` offers a colliding ``search`` as ``gh_search``."""

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                "give exactly one of command (argv of a stdio server) or url "
                "(a streamable HTTP server)"
            )
        if self.url is not None and (self.env or self.cwd is not None):
            raise ValueError("env and cwd are for a stdio command; a url server has headers_env")
        if self.command is not None and self.headers_env:
            raise ValueError("headers_env is for a url server; a stdio command has env")
        return self

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value[0].strip():
            raise ValueError("the program (its first item) is empty")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value

    @field_validator("env")
    @classmethod
    def _variables(cls, value: list[str]) -> list[str]:
        for name in value:
            _check_variable(name)
        return value

    @field_validator("headers_env")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for header, variable in value.items():
            if not _HEADER.fullmatch(header):
                raise ValueError(f"{header!r} is not an HTTP header name")
            _check_variable(variable)
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not _PREFIX.fullmatch(value):
            raise ValueError(f"must be 1-32 of letters, digits, '_' and '-', got {value!r}")
        return value

    def for_tool(self, tool: str) -> tuple[ApprovalMode, float, int]:
        """The approval mode, timeout (seconds) and attempts of one of its tools."""
        own = self.tools.get(tool, McpToolConfig())
        approval = own.approval or self.approval
        return (
            ApprovalMode(approval),
            own.timeout_seconds or self.timeout_seconds,
            own.retry or self.retry,
        )


def variable_values(
    servers: Mapping[str, McpServerConfig], env: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The values of the variables the servers name, read once from the worker's env.

    Args:
        servers: The ``[mcp.NAME]`` tables.
        env: The worker's environment.

    Returns:
        ``(values, problems)``: a variable's value by its name (an ``env`` name that is
        unset is simply not passed), and one line per header variable that is unset,
        e.g. ``mcp.github.headers_env.Authorization: GITHUB_MCP_AUTH is not set in the
        worker's environment``.
    """
    values: dict[str, str] = {}
    problems: list[str] = []
    for name, server in servers.items():
        for variable in server.env:
            if variable in env:
                values[variable] = env[variable]
        for header, variable in server.headers_env.items():
            if variable in env:
                values[variable] = env[variable]
            else:
                problems.append(
                    f"mcp.{name}.headers_env.{header}: {variable} is not set in the "
                    "worker's environment"
                )
    return values, problems


def _check_variable(name: str) -> None:
    if not _VARIABLE.fullmatch(name):
        raise ValueError(
            f"{name!r} is not an environment variable name; name the variable that holds "
            "the value, never the value itself"
        )
