"""The worker's configuration file: named model providers and MCP servers.

``DURAGENT_CONFIG`` names a TOML file (default: ``duragent.toml`` in the working
directory, when there is one). Secrets never appear in it: a provider's key and an
MCP server's headers name the *environment variables* that hold them, read by the
worker at start. For example::

    # duragent.toml
    [providers.ollama]
    base_url = "http://localhost:11434/v1"       # an agent's model "ollama:llama3.1"

    [providers.openai]
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"
    options = {temperature = 0.2}

    [mcp.files]                                   # tools enabled as "mcp:files"
    command = ["python", "-m", "my_mcp_server"]
    env = ["FILES_TOKEN"]                         # variables passed to it, by name

    [mcp.github]                                  # a streamable HTTP server
    url = "https://mcp.example.com/github"
    headers_env = {Authorization = "GITHUB_MCP_AUTH"}
    approval = "always"

(see :mod:`~duragent.activities.tools.mcp_config` for every field of an MCP table)

Each table is checked when the worker starts; a mistake is one clear line
(:class:`~duragent.worker.settings.SettingsError`), never a failed agent later.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from duragent.activities.llm_providers import ProviderConfig
from duragent.activities.tools.mcp_config import SERVER_NAME, McpServerConfig

DEFAULT_CONFIG = "duragent.toml"


class ConfigFile(BaseModel):
    """What ``duragent.toml`` holds; every table is optional."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    """Named OpenAI-compatible endpoints; an agent picks one with ``provider:model``."""
    mcp: dict[str, McpServerConfig] = Field(default_factory=dict)
    """Named MCP servers whose tools agents enable with ``mcp:SERVER``."""

    @field_validator("mcp")
    @classmethod
    def _server_names(cls, value: dict[str, McpServerConfig]) -> dict[str, McpServerConfig]:
        for name in value:
            if not SERVER_NAME.fullmatch(name):
                raise ValueError(
                    f"server name {name!r} must be 1-32 of letters, digits, '_' and '-' "
                    "(it becomes part of tool names)"
                )
        return value


def config_path(env: Mapping[str, str], cwd: Path | None = None) -> Path | None:
    """The file to read: ``DURAGENT_CONFIG``, else ``./duragent.toml`` when it exists."""
    named = env.get("DURAGENT_CONFIG", "").strip()
    if named:
        return Path(named)
    default = (cwd or Path.cwd()) / DEFAULT_CONFIG
    return default if default.is_file() else None


def load_config_file(path: Path | None) -> ConfigFile:
    """Read and check the file; no file is an empty configuration.

    Raises:
        ValueError: The file is missing (when named), is not TOML, or a table is wrong;
            the message names the file and the field.
    """
    if path is None:
        return ConfigFile()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not TOML: {err}") from None
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        # pydantic words a validator's own message "Value error, ..."; the message is ours.
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{path}: {where}: {message}") from None
