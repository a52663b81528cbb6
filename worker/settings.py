"""Process settings, read from the environment once, in the entry point.

Nothing below the entry point reads ``os.environ``: settings are passed down.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from activities.providers import ModelFamilies, PriceTable

DEFAULT_TASK_QUEUE = "duragent"
DEFAULT_MODEL = "gpt-4o-mini"
# Local OpenAI-compatible servers (vLLM, Ollama, LiteLLM) accept any key; the openai
# client insists on one, so a placeholder stands in when none is configured.
PLACEHOLDER_API_KEY = "not-needed"


class SettingsError(ValueError):
    """A setting has a value that cannot work; the message says which and why."""


@dataclass(frozen=True)
class LLMSettings:
    """Where the worker sends LLM calls."""

    base_url: str | None = None
    """``OPENAI_BASE_URL``; ``None`` means OpenAI itself."""
    api_key: str | None = field(default=None, repr=False)
    """``OPENAI_API_KEY``; lives only in the worker's memory, never in history or logs."""
    timeout_seconds: float = 600.0
    """HTTP timeout of one request; the activity's start-to-close bounds it too."""

    @property
    def configured(self) -> bool:
        """True when there is somewhere to send requests."""
        return bool(self.base_url or self.api_key)


@dataclass(frozen=True)
class Settings:
    """Everything a duragent process needs to know about its environment."""

    task_queue: str = DEFAULT_TASK_QUEUE
    """``DURAGENT_TASK_QUEUE``: the queue workers poll and agents are started on."""
    workspace: Path = Path("workspace")
    """``DURAGENT_WORKSPACE``: the folder the file tools work in."""
    model: str = DEFAULT_MODEL
    """``DURAGENT_MODEL``: the default model of new agents."""
    llm: LLMSettings = LLMSettings()
    owner: str | None = None
    """``DURAGENT_OWNER`` (else ``USER``): recorded on the agents this process starts."""
    store_dir: Path | None = None
    """``DURAGENT_STORE_DIR``: the transcript store, shared by the workers of a machine
    (default ``~/.cache/duragent/store``)."""
    max_cached_workflows: int = 1000
    """``DURAGENT_MAX_CACHED_WORKFLOWS``: agents kept in worker memory between tasks; a
    waiting agent beyond it is evicted and resumed later by replay."""
    model_families: ModelFamilies = field(default_factory=ModelFamilies, repr=False)
    """``DURAGENT_MODEL_FAMILIES``: a JSON/YAML file of family rules applied after the
    built-in ones (see :mod:`activities.providers`)."""
    prices: PriceTable = field(default_factory=PriceTable, repr=False)
    """``DURAGENT_PRICES``: a JSON/YAML file of prices tried before the built-in ones."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read settings from an environment mapping (``os.environ`` in entry points)."""
        task_queue = env.get("DURAGENT_TASK_QUEUE", DEFAULT_TASK_QUEUE).strip()
        if not task_queue:
            raise SettingsError("DURAGENT_TASK_QUEUE is empty")
        return cls(
            task_queue=task_queue,
            workspace=Path(env.get("DURAGENT_WORKSPACE") or "workspace"),
            model=env.get("DURAGENT_MODEL") or DEFAULT_MODEL,
            llm=LLMSettings(
                base_url=env.get("OPENAI_BASE_URL") or None,
                api_key=env.get("OPENAI_API_KEY") or None,
            ),
            owner=env.get("DURAGENT_OWNER") or env.get("USER") or None,
            max_cached_workflows=_int(env, "DURAGENT_MAX_CACHED_WORKFLOWS", 1000, minimum=0),
            store_dir=Path(env.get("DURAGENT_STORE_DIR") or _cache_dir(env) / "store"),
            model_families=_table(env, "DURAGENT_MODEL_FAMILIES", ModelFamilies.load),
            prices=_table(env, "DURAGENT_PRICES", PriceTable.load),
        )


_T = TypeVar("_T")


def _table(env: Mapping[str, str], name: str, load: Callable[[str | None], _T]) -> _T:
    path = env.get(name, "").strip() or None
    try:
        return load(path)
    except ValueError as err:
        raise SettingsError(f"{name}: {err}") from None


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {text!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _cache_dir(env: Mapping[str, str]) -> Path:
    if env.get("DURAGENT_CACHE_DIR"):
        return Path(env["DURAGENT_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "duragent"
