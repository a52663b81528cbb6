"""Process settings, read from the environment once, in the entry point.

Nothing below the entry point reads ``os.environ``: settings are passed down.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from duragent.activities.objectstore import ObjectStoreConfig
from duragent.activities.providers import ModelFamilies, PriceTable
from duragent.activities.redact import secrets_in_environment
from duragent.activities.tools.mcp_config import variable_values
from duragent.activities.tools.sandbox import DEFAULT_LANG, DEFAULT_TERM, SANDBOX_PATH, SandboxMode
from duragent.worker.cli_args import split_module_names
from duragent.worker.config_file import ConfigFile, config_path, load_config_file

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
class ShellSettings:
    """How ``_bash`` and background commands run (see :mod:`activities.tools.sandbox`)."""

    sandbox: SandboxMode | None = None
    """``DURAGENT_SHELL_SANDBOX`` (``bwrap`` or ``none``); unset means bubblewrap
    wherever the ``bwrap`` binary is found, and no sandbox (with a warning) elsewhere."""
    network: bool = True
    """``DURAGENT_SHELL_NETWORK`` (``0`` to cut it off): whether sandboxed commands may
    use the network. On by default: installing packages and fetching sources are
    common work; a deployment that runs untrusted tasks turns it off."""
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """``DURAGENT_SHELL_ENV=NAME1,NAME2``: worker variables passed to commands, besides
    ``PATH``, ``HOME`` (the workspace), ``LANG`` and ``TERM``; nothing else is."""
    path: str = SANDBOX_PATH
    """The worker's ``PATH``, for commands run without the sandbox."""
    lang: str = DEFAULT_LANG
    term: str = DEFAULT_TERM

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ShellSettings:
        """Read the ``DURAGENT_SHELL_*`` variables."""
        mode = env.get("DURAGENT_SHELL_SANDBOX", "").strip().lower()
        if mode and mode not in {m.value for m in SandboxMode}:
            raise SettingsError(f"DURAGENT_SHELL_SANDBOX must be bwrap or none, got {mode!r}")
        network = env.get("DURAGENT_SHELL_NETWORK", "1").strip().lower()
        if network not in {"0", "1", "true", "false", "yes", "no", "on", "off"}:
            raise SettingsError(f"DURAGENT_SHELL_NETWORK must be 0 or 1, got {network!r}")
        return cls(
            sandbox=SandboxMode(mode) if mode else None,
            network=network in {"1", "true", "yes", "on"},
            env={name: env[name] for name in _names(env, "DURAGENT_SHELL_ENV") if name in env},
            path=env.get("PATH") or SANDBOX_PATH,
            lang=env.get("LANG") or DEFAULT_LANG,
            term=env.get("TERM") or DEFAULT_TERM,
        )


@dataclass(frozen=True)
class Settings:
    """Everything a duragent process needs to know about its environment."""

    task_queue: str = DEFAULT_TASK_QUEUE
    """``DURAGENT_TASK_QUEUE``: the queue workers poll and agents are started on."""
    workspace: Path = Path("workspace")
    """``DURAGENT_WORKSPACE`` (a path): the folder the file tools work in, on this
    machine or a shared POSIX volume."""
    workspace_store: ObjectStoreConfig | None = None
    """``DURAGENT_WORKSPACE=s3://bucket/prefix``: the file tools' workspace in an
    S3-compatible object store, the same for every worker of a cluster (endpoint,
    region and keys from the standard ``AWS_*`` variables); when set, ``workspace`` is
    not used. Shell commands need a real directory and are refused there."""
    model: str = DEFAULT_MODEL
    """``DURAGENT_MODEL``: the default model of new agents."""
    llm: LLMSettings = LLMSettings()
    owner: str | None = None
    """``DURAGENT_OWNER`` (else ``USER``): recorded on the agents this process starts."""
    store_dir: Path | None = None
    """``DURAGENT_STORE_DIR``: the transcript store, shared by the workers of a machine
    (default ``~/.cache/duragent/store``)."""
    object_store: ObjectStoreConfig | None = None
    """``DURAGENT_STORE=s3://bucket/prefix``: the transcript store in an S3-compatible
    object store, shared by every worker of a cluster (endpoint, region and keys from
    the standard ``AWS_*`` variables); when set, it is used instead of ``store_dir``."""
    max_cached_workflows: int = 1000
    """``DURAGENT_MAX_CACHED_WORKFLOWS``: agents kept in worker memory between tasks; a
    waiting agent beyond it is evicted and resumed later by replay."""
    model_families: ModelFamilies = field(default_factory=ModelFamilies, repr=False)
    """``DURAGENT_MODEL_FAMILIES``: a JSON/YAML file of family rules applied after the
    built-in ones (see :mod:`activities.providers`)."""
    prices: PriceTable = field(default_factory=PriceTable, repr=False)
    """``DURAGENT_PRICES``: a JSON/YAML file of prices tried before the built-in ones."""
    shell: ShellSettings = ShellSettings()
    """How shell commands run: the sandbox, its network and environment."""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Values redacted from everything that leaves the worker (failures, results):
    secret-looking variables of its environment, URL passwords, and the names listed
    in ``DURAGENT_SECRET_ENV``. The LLM key is always added."""
    load: tuple[str, ...] = ()
    """``DURAGENT_LOAD=mypkg.tasks,mypkg.tools`` (or ``duragent worker --load``): modules
    a worker imports at start; the tools (``activities.tools.tool``) and graph tasks
    (``activities.tasks.task``) defined in them join its built-in ones."""
    config: ConfigFile = field(default_factory=ConfigFile)
    """``DURAGENT_CONFIG`` (default ``./duragent.toml`` when present): named model
    providers and MCP servers (see :mod:`worker.config_file`)."""
    mcp_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Values of the worker variables the MCP servers name (their ``env`` and
    ``headers_env``), read once at start; nothing else of the environment reaches them."""
    provider_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The configured providers' API keys, read from the variables their
    ``api_key_env`` names: in the worker's memory only, redacted like the LLM key."""

    @property
    def llm_configured(self) -> bool:
        """True when LLM calls have somewhere to go: the default provider or named ones."""
        return self.llm.configured or bool(self.config.providers)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read settings from an environment mapping (``os.environ`` in entry points)."""
        task_queue = env.get("DURAGENT_TASK_QUEUE", DEFAULT_TASK_QUEUE).strip()
        if not task_queue:
            raise SettingsError("DURAGENT_TASK_QUEUE is empty")
        object_store = _object_store(env)
        workspace, workspace_store = _workspace(env)
        config = _config(env)
        mcp_env, headers = _mcp_env(config, env)
        keys = _provider_keys(config, env)
        return cls(
            task_queue=task_queue,
            workspace=workspace,
            workspace_store=workspace_store,
            model=env.get("DURAGENT_MODEL") or DEFAULT_MODEL,
            llm=LLMSettings(
                base_url=env.get("OPENAI_BASE_URL") or None,
                api_key=env.get("OPENAI_API_KEY") or None,
            ),
            owner=env.get("DURAGENT_OWNER") or env.get("USER") or None,
            max_cached_workflows=_int(env, "DURAGENT_MAX_CACHED_WORKFLOWS", 1000, minimum=0),
            store_dir=Path(env.get("DURAGENT_STORE_DIR") or _cache_dir(env) / "store"),
            object_store=object_store,
            model_families=_table(env, "DURAGENT_MODEL_FAMILIES", ModelFamilies.load),
            prices=_table(env, "DURAGENT_PRICES", PriceTable.load),
            shell=ShellSettings.from_env(env),
            secrets=(
                *secrets_in_environment(env, _names(env, "DURAGENT_SECRET_ENV")),
                *(object_store.secrets if object_store else ()),
                *(workspace_store.secrets if workspace_store else ()),
                *headers,
                *keys.values(),
            ),
            load=_modules(env, "DURAGENT_LOAD"),
            config=config,
            mcp_env=mcp_env,
            provider_keys=keys,
        )


_T = TypeVar("_T")


def _table(env: Mapping[str, str], name: str, load: Callable[[str | None], _T]) -> _T:
    path = env.get(name, "").strip() or None
    try:
        return load(path)
    except ValueError as err:
        raise SettingsError(f"{name}: {err}") from None


def _config(env: Mapping[str, str]) -> ConfigFile:
    try:
        return load_config_file(config_path(env))
    except ValueError as err:
        raise SettingsError(f"DURAGENT_CONFIG: {err}") from None


def _mcp_env(config: ConfigFile, env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The MCP servers' variables, and the header values among them (always secrets)."""
    values, problems = variable_values(config.mcp, env)
    if problems:
        raise SettingsError(f"DURAGENT_CONFIG: {problems[0]}")
    headers = [values[v] for s in config.mcp.values() for v in s.headers_env.values()]
    return values, headers


def _provider_keys(config: ConfigFile, env: Mapping[str, str]) -> dict[str, str]:
    """Each provider's key from the variable it names; a named but unset one is an error."""
    keys: dict[str, str] = {}
    for name, provider in config.providers.items():
        if provider.api_key_env is None:
            continue
        key = env.get(provider.api_key_env, "").strip()
        if not key:
            raise SettingsError(
                f"provider {name!r}: {provider.api_key_env} is not set "
                "(its api_key_env names it in DURAGENT_CONFIG)"
            )
        keys[name] = key
    return keys


def _object_store(env: Mapping[str, str]) -> ObjectStoreConfig | None:
    url = env.get("DURAGENT_STORE", "").strip()
    if not url:
        return None
    if "://" not in url:  # a path: the directory store has its own variable
        raise SettingsError(
            f"DURAGENT_STORE must be s3://bucket/prefix, got {url!r} "
            "(a local directory is DURAGENT_STORE_DIR)"
        )
    try:
        return ObjectStoreConfig.from_url(url, env)
    except ValueError as err:
        raise SettingsError(f"DURAGENT_STORE: {err}") from None


def _workspace(env: Mapping[str, str]) -> tuple[Path, ObjectStoreConfig | None]:
    """``DURAGENT_WORKSPACE``: a folder, or (any ``scheme://``) an object store."""
    value = env.get("DURAGENT_WORKSPACE", "").strip()
    if "://" not in value:
        return Path(value or "workspace"), None
    try:
        return Path("workspace"), ObjectStoreConfig.from_url(value, env)
    except ValueError as err:
        raise SettingsError(
            f"DURAGENT_WORKSPACE: {err} (a local workspace is a folder path)"
        ) from None


def _modules(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    value = env.get(name, "").strip()
    if not value:
        return ()
    try:
        return split_module_names(value)
    except ValueError as err:
        raise SettingsError(f"{name}: {err}") from None


def _names(env: Mapping[str, str], name: str) -> list[str]:
    return [n.strip() for n in env.get(name, "").split(",") if n.strip()]


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
