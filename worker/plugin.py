"""One plugin wires duragent into a client, a worker or a replayer.

The worker, the tests and the replayer all use it, so the data converter, the
workflows and the activities cannot drift apart between them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.machinery import ModuleSpec, SourceFileLoader
from pathlib import Path
from types import CodeType, ModuleType
from typing import TYPE_CHECKING, Any

from openai import AsyncOpenAI
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.plugin import SimplePlugin
from temporalio.worker import Interceptor, WorkerConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from duragent.activities.boundary import ActivityBoundary
from duragent.activities.llm import LLMActivities
from duragent.activities.llm_providers import Provider
from duragent.activities.memory import MemoryActivities
from duragent.activities.models import ToolKind
from duragent.activities.objectstore import ObjectBlobStore
from duragent.activities.providers import ModelFamilies, PriceTable
from duragent.activities.redact import Redactor
from duragent.activities.sticky import StickyReset
from duragent.activities.store import BlobStore, LocalDirectoryStore, TranscriptStore
from duragent.activities.tasks import TaskActivities, TaskRegistry, tasks_in
from duragent.activities.tools import (
    LocalWorkspace,
    S3Workspace,
    Tool,
    ToolRegistry,
    Workspace,
    default_tools,
)
from duragent.activities.tools.activity import ToolActivities
from duragent.activities.tools.background import BackgroundCommands
from duragent.activities.tools.mcp import McpServers
from duragent.activities.tools.sandbox import SandboxMode, ShellSandbox
from duragent.activities.tools.skills import Skills
from duragent.worker.agents import Agent, AgentDefinitions
from duragent.worker.settings import (
    PLACEHOLDER_API_KEY,
    LLMSettings,
    Settings,
    SettingsError,
    ShellSettings,
)
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.catalog import CatalogWorkflow
from duragent.workflows.graph import GraphWorkflow
from duragent.workflows.handler_guard import HandlerInputGuard

PLUGIN_NAME = "duragent"

# Modules the workflow sandbox imports once per worker instead of once per run. Each
# holds only constants, pure functions, pydantic models and classes whose instances
# belong to one run: no module-level mutable state and no I/O at import, so sharing
# them between runs cannot leak state or break determinism. (The sandbox's runtime
# checks still apply to the calls they make.) ``workflows.agent`` itself stays
# sandboxed, as the SDK advises for a workflow's own module. Re-importing these for
# every new run (building their pydantic models again, and compiling them again where
# no bytecode is cached) cost tens of milliseconds of worker CPU per agent.
PASSTHROUGH_MODULES = (
    "duragent.workflows._expr_check",
    "duragent.workflows._expr_eval",
    "duragent.workflows._expr_syntax",
    "duragent.workflows.activity_calls",
    "duragent.workflows.approvals",
    "duragent.workflows.budgets",
    "duragent.workflows.catalog",
    "duragent.workflows.compaction",
    "duragent.workflows.control_calls",
    "duragent.workflows.graph_expr",
    "duragent.workflows.graph_models",
    "duragent.workflows.graph_policy",
    "duragent.workflows.graph_spec",
    "duragent.workflows.graph_state",
    "duragent.workflows.graph_validate",
    "duragent.workflows.json_schema",
    "duragent.workflows.lifecycle",
    "duragent.workflows.models",
    "duragent.workflows.outage",
    "duragent.workflows.policy",
    "duragent.workflows.prompts",
    "duragent.workflows.questions",
    "duragent.workflows.search_attributes",
    "duragent.workflows.shell_host",
    "duragent.workflows.sub_agents",
    "duragent.workflows.telemetry",
    "duragent.workflows.tool_results",
    "duragent.workflows.typed_output",
    "duragent.workflows.waiting",
    # Third-party and pure, imported on first use by workflows.json_schema (a worker
    # whose agents and gates declare no schema never loads them).
    "jsonschema",
    "referencing",
)

if TYPE_CHECKING:
    from duragent.activities.tools.mirror import WorkspaceMirrors


def workflow_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox with duragent's pure modules passed through."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    return SandboxedWorkflowRunner(restrictions=restrictions)


class _SharedCodeLoader(SourceFileLoader):
    """A workflow module's loader that hands out one code object, compiled once."""

    def __init__(self, fullname: str, path: str, code: CodeType) -> None:
        super().__init__(fullname, path)
        self._code = code

    def get_code(self, fullname: str) -> CodeType:
        """The module's code, as compiled (or read from bytecode) at worker start."""
        if fullname != self.name:  # pragma: no cover - a loader serves one module
            raise ImportError(f"{self.name} loader asked for {fullname}", name=fullname)
        return self._code


class WorkflowCodeFinder(importlib.abc.MetaPathFinder):
    """Finds the workflows' own modules with their code compiled once per worker.

    The sandbox imports a workflow's module afresh for every new run, so that module
    level state is never shared between runs; the module body still runs per run, in
    the sandbox, with its restricted imports and checks. What need not be made again is
    the code object: reading (or, with ``PYTHONDONTWRITEBYTECODE=1`` and no bytecode
    cached, compiling: 23 ms) and unmarshalling ``workflows/agent.py`` for each run cost
    CPU, and each cached run held its own copy of the code, ~100 KiB. Code objects are
    immutable, so one copy serves every run.
    """

    def __init__(self) -> None:
        self._code: dict[str, tuple[str, CodeType]] = {}

    @classmethod
    def installed(cls) -> WorkflowCodeFinder:
        """The process's finder, put first on ``sys.meta_path`` on first use."""
        found = next((f for f in sys.meta_path if isinstance(f, cls)), None)
        if found is None:
            found = cls()
            sys.meta_path.insert(0, found)
        return found

    def share(self, module: str) -> None:
        """Compile ``module`` now (or read its bytecode) and serve that code from here on."""
        if module in self._code:
            return
        spec = importlib.util.find_spec(module)
        loader = spec.loader if spec is not None else None
        if spec is None or spec.origin is None or not isinstance(loader, SourceFileLoader):
            return  # not a source file (frozen, zipped): imported the ordinary way
        code = loader.get_code(module)
        if code is not None:
            self._code[module] = (spec.origin, code)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        """A spec with the shared code for a shared module; ``None`` for any other."""
        entry = self._code.get(fullname)
        if entry is None:
            return None
        origin, code = entry
        return importlib.util.spec_from_file_location(
            fullname, origin, loader=_SharedCodeLoader(fullname, origin, code)
        )


def share_workflow_code(workflows: Sequence[type] = (AgentWorkflow, GraphWorkflow)) -> None:
    """Compile the workflows' own modules once per worker (see :class:`WorkflowCodeFinder`)."""
    finder = WorkflowCodeFinder.installed()
    for workflow in workflows:
        finder.share(workflow.__module__)


HOST_QUEUE_MARK = "/host/"
"""What names a worker's own task queue: ``<task queue>/host/<worker identity>``."""


def host_queue_name(task_queue: str, identity: str) -> str:
    """The host queue of the worker ``identity`` (see :mod:`workflows.shell_host`)."""
    return f"{task_queue}{HOST_QUEUE_MARK}{identity}"


class DuragentPlugin(SimplePlugin):
    """Pydantic data converter, the agent workflow and the handler input guard.

    Put it on the client: workers made from that client inherit it, and a replayer takes
    the same plugin. Activities hold injected clients, so the worker passes them itself
    (see :func:`worker_activities`).
    """

    def __init__(self) -> None:
        super().__init__(
            PLUGIN_NAME,
            data_converter=pydantic_data_converter,
            workflows=[AgentWorkflow, GraphWorkflow, CatalogWorkflow],
            workflow_runner=workflow_runner(),
            # Malformed signal/update input is dropped or rejected, never a failed task.
            interceptors=[HandlerInputGuard()],
        )

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """Register the workflows, except on a host queue: it serves shell activities only."""
        config = super().configure_worker(config)
        if HOST_QUEUE_MARK in config.get("task_queue", ""):
            config["workflows"] = []
        return config


def build_openai_client(llm: LLMSettings) -> AsyncOpenAI:
    """The OpenAI-compatible client, without SDK retries: Temporal owns retries."""
    return AsyncOpenAI(
        base_url=llm.base_url,
        api_key=llm.api_key or PLACEHOLDER_API_KEY,
        max_retries=0,
        timeout=llm.timeout_seconds,
    )


@asynccontextmanager
async def mcp_servers(settings: Settings) -> AsyncIterator[McpServers | None]:
    """The worker's MCP servers, connected (``None`` when none are configured).

    Connected before the worker polls, so its first agents find their tools listed;
    closed after its last activity, which stops the stdio servers' processes.
    """
    if not settings.config.mcp:
        yield None
        return
    servers = McpServers(settings.config.mcp, settings.mcp_env)
    try:
        await servers.start()
        yield servers
    finally:
        await servers.close()


def build_provider_clients(settings: Settings) -> dict[str, Provider]:
    """One client per configured provider (``provider:model``), without SDK retries."""
    return {
        name: Provider(
            client=AsyncOpenAI(
                base_url=config.base_url,
                api_key=settings.provider_keys.get(name) or PLACEHOLDER_API_KEY,
                max_retries=0,
                timeout=config.timeout_seconds,
            ),
            options=config.options,
        )
        for name, config in settings.config.providers.items()
    }


def worker_interceptors(settings: Settings) -> list[Interceptor]:
    """The worker's own interceptors: every activity's failure bounded, secrets redacted.

    A retried heartbeating activity also steers its workflow's next task away from a
    dead worker's sticky queue (:mod:`activities.sticky`). Applied inside any the client
    brings (tracing), so those see the redacted outcome.
    """
    secrets = (settings.llm.api_key or "", *settings.secrets)
    return [ActivityBoundary(Redactor(secrets)), StickyReset()]


# Where bubblewrap is looked for besides PATH (a worker started with a trimmed PATH).
_BWRAP_PLACES = ("/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap")


def shell_sandbox(shell: ShellSettings) -> ShellSandbox:
    """The sandbox the settings ask for: bubblewrap when unset and the binary exists.

    Raises:
        SettingsError: ``DURAGENT_SHELL_SANDBOX=bwrap`` and no ``bwrap`` binary.
    """
    found = shutil.which("bwrap", path=shell.path) or next(
        (p for p in _BWRAP_PLACES if shutil.which(p)), None
    )
    mode = shell.sandbox or (SandboxMode.BWRAP if found else SandboxMode.NONE)
    if mode is SandboxMode.BWRAP and found is None:
        raise SettingsError(
            "DURAGENT_SHELL_SANDBOX=bwrap but no bwrap binary was found: install "
            "bubblewrap (apt-get install bubblewrap) or set DURAGENT_SHELL_SANDBOX=none"
        )
    return ShellSandbox(
        mode=mode,
        bwrap=found or "bwrap",
        network=shell.network,
        path=shell.path,
        lang=shell.lang,
        term=shell.term,
        passthrough=dict(shell.env),
    )


def blob_store(settings: Settings) -> BlobStore | None:
    """Where the worker keeps transcripts: ``DURAGENT_STORE``, else ``DURAGENT_STORE_DIR``.

    The object store's client is built here, once per worker; it connects lazily, on
    the first call.
    """
    if settings.object_store is not None:
        return ObjectBlobStore(settings.object_store)
    return LocalDirectoryStore(settings.store_dir) if settings.store_dir is not None else None


def agent_workspace(settings: Settings) -> Path | Workspace:
    """Where the file tools work: ``DURAGENT_WORKSPACE``'s object store, else its folder.

    The object store's client is built here, once per worker; it connects lazily, on
    the first call.
    """
    if settings.workspace_store is not None:
        return S3Workspace(settings.workspace_store)
    return settings.workspace


def worker_activities(
    *,
    client: AsyncOpenAI,
    workspace: Path | Workspace,
    tools: Sequence[Tool[Any]] | None = None,
    background: BackgroundCommands | None = None,
    store: Path | BlobStore | None = None,
    families: ModelFamilies | None = None,
    prices: PriceTable | None = None,
    mirrors: WorkspaceMirrors | None = None,
    host_queue: str | None = None,
    worker: str = "",
    tasks: Sequence[Callable[..., Any]] = (),
    agents: Sequence[Agent[Any]] = (),
    providers: Mapping[str, Provider] | None = None,
    mcp: McpServers | None = None,
) -> list[Callable[..., Any]]:
    """Build the activity objects once and return their activity methods.

    :func:`host_activities` picks, from what this returns, those the worker's host
    queue serves.

    Args:
        client: The OpenAI-compatible client (``max_retries=0``).
        workspace: The file tools' workspace: a folder (created when missing) or any
            backend (see :func:`agent_workspace`).
        tools: Tools to offer; the built-in set when ``None``.
        background: Where ``_bash(background=true)`` keeps its commands; without it
            background mode answers ``unsupported``.
        store: The transcript store: a directory (shared by the workers of a machine)
            or any ``BlobStore`` (see :func:`blob_store`); without it every LLM call
            carries its whole transcript.
        families: Model-family defaults (the built-in table when ``None``).
        prices: The price table for ``usage.cost_usd`` (the built-in one when ``None``).
        mirrors: Local copies of object-store workspaces, where shell commands run.
        host_queue: The worker's own task queue, where runs send their shell work.
        worker: Who the worker is (its identity), told to the runs it takes shell work for.
        tasks: Functions marked with ``activities.tasks.task`` that graphs' task nodes
            run (see :func:`load_modules`). The task activity is registered even
            without any, so a graph naming a task this worker lacks fails at once,
            saying which tasks it has.
        agents: Agent definitions the worker lists to clients (``duragent agents``);
            their tools must be among ``tools``.
        providers: Named model providers besides ``client`` (``provider:model``).
        mcp: The worker's MCP servers (see :func:`mcp_servers`): their tools join the
            registry under names that never take one of ``tools``'.
    """
    registry = ToolRegistry(default_tools() if tools is None else tools, source=mcp)
    if mcp is not None:
        mcp.reserve(registry.names)
    if isinstance(workspace, Path):
        workspace.mkdir(parents=True, exist_ok=True)
        workspace = LocalWorkspace(workspace)
    blobs = LocalDirectoryStore(store) if isinstance(store, Path) else store
    transcripts = TranscriptStore(blobs) if blobs is not None else None
    llm = LLMActivities(
        client,
        registry,
        transcripts=transcripts,
        workspace=workspace,
        families=families,
        prices=prices,
        providers=providers,
    )
    memory = MemoryActivities(client, transcripts=transcripts, families=families, prices=prices)
    tool_activities = ToolActivities(
        registry,
        workspace,
        background=background,
        skills=Skills(workspace),
        mirrors=mirrors,
        host_queue=host_queue,
        worker=worker,
        mcp=mcp,
    )
    task_activities = TaskActivities(TaskRegistry(tasks))
    definitions = AgentDefinitions(agents, worker=worker)
    return [
        definitions.list_agents,
        definitions.check_output,
        llm.chat,
        memory.summarize,
        task_activities.run_task,
        task_activities.list_tasks,
        tool_activities.describe_tools,
        tool_activities.run_tool,
        tool_activities.validate_arguments,
        tool_activities.cleanup,
        tool_activities.claim_host,
        tool_activities.watch_background,
    ]


# What a host queue serves: shell calls, and the watches of background commands.
_HOST_ACTIVITIES = ("run_tool", "watch_background")


def host_activities(activities: Sequence[Callable[..., Any]]) -> list[Callable[..., Any]]:
    """Of :func:`worker_activities`' result, those the worker's host queue serves.

    The same bound methods, so the host queue and the shared one share one set of
    background commands and local copies.
    """
    return [
        a
        for a in activities
        if isinstance(getattr(a, "__self__", None), ToolActivities)
        and getattr(a, "__name__", "") in _HOST_ACTIVITIES
    ]


# --- modules a worker loads (`duragent worker --load MODULE`) --------------------------


class ModuleLoadError(SettingsError):
    """A module of ``--load`` or ``DURAGENT_LOAD`` cannot be imported, or clashes."""


@dataclass(frozen=True)
class Loaded:
    """What the modules a worker loads add to it."""

    modules: tuple[ModuleType, ...] = ()
    tools: tuple[Tool[Any], ...] = ()
    """Tools made with ``activities.tools.tool`` found in the modules."""
    tasks: tuple[Callable[..., Any], ...] = ()
    """Functions marked with ``activities.tasks.task`` found in the modules."""
    agents: tuple[Agent[Any], ...] = ()
    """Agent definitions (``duragent.Agent``) found in the modules."""

    def all_tools(
        self, tools: Sequence[Tool[Any]] | None = None, extra: Sequence[Tool[Any]] = ()
    ) -> list[Tool[Any]] | None:
        """``tools`` (the built-in set when ``None``), then ``extra`` and the loaded ones.

        ``None`` when there is nothing to add to ``None`` (the worker's default), each
        tool once; two different tools of one name are refused by the registry.
        """
        added = [*extra, *self.tools]
        if not added:
            return None if tools is None else list(tools)
        base = default_tools() if tools is None else list(tools)
        out = list(base)
        for t in added:
            if not any(t is b for b in out):
                out.append(t)
        return out

    def summary(self) -> str:
        """One line for the worker's log: the modules and what each brought."""
        tasks = ", ".join(TaskRegistry(self.tasks).refs) or "none"
        tools = ", ".join(t.name for t in self.tools) or "none"
        agents = f"agents {', '.join(a.name for a in self.agents)}; " if self.agents else ""
        names = ", ".join(m.__name__ for m in self.modules)
        return f"loaded {names}: {agents}tasks {tasks}; tools {tools}"


def load_modules(names: Sequence[str]) -> Loaded:
    """Import the modules a worker is told to load, and find their tools and tasks.

    Importing runs each module's top-level code once per process (Python caches
    modules), so calling this again is cheap. The modules' tools join the built-in
    ones; their tasks are what ``duragent.run_task`` runs.

    Raises:
        ModuleLoadError: A module cannot be imported (named, with the reason on one
            line), a tool takes a built-in tool's name, or two tasks share a ref.
    """
    modules = tuple(_import(name) for name in dict.fromkeys(names))
    tools: dict[str, Tool[Any]] = {}
    built_in = {t.name for t in default_tools()}
    for module in modules:
        for value in vars(module).values():
            if not isinstance(value, Tool) or value.kind is not ToolKind.ACTIVITY:
                continue
            if any(value is t for t in default_tools()) or tools.get(value.name) is value:
                continue  # a built-in tool imported by the module, or one seen already
            if value.name in built_in or value.name in tools:
                raise ModuleLoadError(
                    f"module {module.__name__!r}: tool {value.name!r} has the name of "
                    "a built-in or another loaded tool; name it otherwise (@tool(name=...))"
                )
            tools[value.name] = value
    tasks = tasks_in(modules)
    try:
        TaskRegistry(tasks)
    except ValueError as err:
        raise ModuleLoadError(f"{', '.join(names)}: {err}") from None
    agents = {id(v): v for m in modules for v in vars(m).values() if isinstance(v, Agent)}
    return Loaded(
        modules=modules,
        tools=tuple(tools.values()),
        tasks=tuple(tasks),
        agents=tuple(agents.values()),
    )


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if name.endswith(".py") and (name == missing or name.startswith(f"{missing}.")):
            raise ModuleLoadError(
                f"cannot load module {name!r}: give a module's name, not its file's "
                f"({name.removesuffix('.py').replace('/', '.')!r})"
            ) from None
        if name == missing or name.startswith(f"{missing}."):
            raise ModuleLoadError(
                f"cannot load module {name!r}: no module named {missing!r} (run duragent "
                "from the folder that holds it, or add that folder to PYTHONPATH)"
            ) from None
        raise ModuleLoadError(
            f"cannot load module {name!r}: it imports {missing!r}, which is not installed"
        ) from None
    except Exception as err:  # its own code failed: say how, in one line
        first = (str(err).strip().splitlines() or [""])[0]
        raise ModuleLoadError(
            f"cannot load module {name!r}: {type(err).__name__}: {first}".rstrip(": ")
        ) from None
