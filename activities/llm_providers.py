"""Named model providers: one worker, several OpenAI-compatible endpoints.

An agent's model is ``provider:model`` (``ollama:llama3.1``, ``openai:gpt-4o-mini``)
when ``provider`` is a name the worker's configuration declares (see
:mod:`duragent.worker.config_file`); any other name, colons and all
(``llama3.1:8b``), goes to the default provider (``OPENAI_BASE_URL``) as it is. Keys
are named by environment variable and read by the worker at start, so only the
provider's *name* is ever in a workflow's history.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field, field_validator

from duragent.activities.models import ModelOptions

__all__ = ["Provider", "ProviderConfig", "ProviderModel", "split_model"]

PROVIDER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class ProviderConfig(BaseModel):
    """One ``[providers.NAME]`` table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(min_length=1)
    """The OpenAI-compatible endpoint, e.g. ``http://localhost:11434/v1``."""
    api_key_env: str | None = None
    """The environment variable holding the key (never the key itself); unset for
    servers that take any key (Ollama, vLLM)."""
    options: ModelOptions = ModelOptions()
    """Default model options of this provider's models: they override the model-family
    table's (:mod:`activities.providers`), and the agent's own override them."""
    timeout_seconds: float = Field(600.0, gt=0)
    """HTTP timeout of one request."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(
                f"must name an environment variable (e.g. OPENAI_API_KEY), got {value!r}; "
                "the key itself never goes in the file"
            )
        return value


@dataclass(frozen=True)
class ProviderModel:
    """A model name split into the provider that serves it and the name sent to it."""

    provider: str | None
    """The configured provider; ``None`` is the worker's default one."""
    model: str


@dataclass(frozen=True)
class Provider:
    """A configured provider as the LLM activity uses it: its client and defaults."""

    client: AsyncOpenAI
    """Built by the worker with ``max_retries=0`` (Temporal owns retries)."""
    options: ModelOptions = field(default_factory=ModelOptions)
    """The provider's default model options."""


def split_model(model: str, providers: Mapping[str, object]) -> ProviderModel:
    """``ollama:llama3.1`` → (``ollama``, ``llama3.1``) when ``ollama`` is configured."""
    prefix, sep, rest = model.partition(":")
    if sep and rest and prefix in providers:
        return ProviderModel(prefix, rest)
    return ProviderModel(None, model)
