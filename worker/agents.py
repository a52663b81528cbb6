"""Agents defined in code: :class:`Agent`, and the catalog workers keep of them.

An :class:`Agent` is a definition, like Pydantic AI's ``Agent`` or the OpenAI Agents
SDK's: a name, a model, instructions, the tool functions themselves, sub-agents, an
optional typed output and the run policies. It is plain data on both sides:

- a worker given the definition (``duragent.Worker(client, agents=[...])``, or
  ``duragent worker --load MODULE`` finding it in the module) registers its tools and
  answers the catalog (``duragent agents``; see :mod:`duragent.workflows.catalog`);
- a client turns it into the :class:`~duragent.workflows.models.AgentInput` a run
  starts with (:meth:`Agent.input`), so the run's history holds everything it was
  started with, and replays the same whatever definitions change later.

A client that has the definition in its code starts it directly
(:meth:`Agent.start`); one that only knows the name asks a worker for it
(:func:`agent_spec`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, cast

from pydantic import BaseModel, JsonValue, ValidationError
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from typing_extensions import TypeVar

from duragent.activities.limits import MAX_ERROR_BYTES, truncate
from duragent.activities.models import ModelOptions, ToolKind
from duragent.activities.tools.control import TASK_FINISH, control_tools
from duragent.activities.tools.registry import Tool
from duragent.workflows.catalog import (
    CHECK_OUTPUT,
    LIST_AGENTS,
    AgentCatalog,
    AgentSpec,
    CatalogRequest,
    CatalogWorkflow,
    OutputCheck,
    OutputCheckRequest,
)
from duragent.workflows.models import (
    AgentInput,
    ApprovalPolicy,
    AskPolicy,
    HistoryPolicy,
    LLMPolicy,
    MemoryPolicy,
    SubAgentSpec,
)

OutputT = TypeVar("OutputT", default=str)

DEFAULT_MODEL = "gpt-4o-mini"
CONTROL_TOOLS: tuple[str, ...] = tuple(t.name for t in control_tools())
"""Offered to every defined agent: ``_task_finish``, ``_ask_user``, ``_todo_write``."""
# Sub-agents are asked for through these (offered to an agent that has sub-agents).
_SUB_TASK_TOOLS = ("_create_sub_task", "_batch_sub_tasks")
# A lookup is a one-step workflow on an idle worker: well under a second. Past this
# the queue's workers are busy or gone, which the caller is told.
_LOOKUP_TIMEOUT = timedelta(seconds=30)


class AgentNotFound(LookupError):
    """No worker of the queue has an agent definition of that name."""


@dataclass(frozen=True, kw_only=True)
class Agent(Generic[OutputT]):
    """An agent definition: what runs of it start with.

    Example::

        class Report(BaseModel):
            city: str
            temperature_c: float

        @duragent.tool
        async def weather(city: str) -> str:
            '''Current temperature in a city, in Celsius.'''
            return "21.5"

        reporter = duragent.Agent(
            name="reporter", model="gpt-4o-mini", tools=[weather], output_type=Report,
            instructions="Report the weather of the city you are given.",
        )

    Every field but ``name`` has a default; the policies are those of
    :class:`~duragent.workflows.models.AgentInput`, documented there.
    """

    name: str
    """Unique on a task queue; how clients and ``duragent run --agent`` pick it."""
    model: str = DEFAULT_MODEL
    """``provider:model`` (a provider of the worker's ``duragent.toml``) or a model of
    the worker's default provider."""
    instructions: str | None = None
    """The system prompt's agent part; a default one when ``None``."""
    description: str = ""
    """What it is for: shown by ``duragent agents``, and to a parent agent when it is a
    sub-agent."""
    tools: Sequence[Tool[Any] | str] = ()
    """Tool functions made with ``@duragent.tool``, and tool names: built-in ones
    (``_bash``, ``_read_file``, ...) and MCP servers' (``mcp:SERVER``,
    ``mcp:SERVER/tool``). The control tools are always added."""
    sub_agents: Sequence[Agent[Any]] = ()
    """Agents it may hand tasks to (a child workflow each); their tools are registered
    with it."""
    output_type: type[OutputT] | None = None
    """A pydantic model the run must finish with (``_task_finish(output=...)``); the
    handle's ``result()`` returns it validated. ``None``: the answer is text."""
    max_cycles: int = 50
    approval: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    ask: AskPolicy = field(default_factory=AskPolicy)
    memory: MemoryPolicy = field(default_factory=MemoryPolicy)
    history: HistoryPolicy = field(default_factory=HistoryPolicy)
    llm_policy: LLMPolicy = field(default_factory=LLMPolicy)
    model_options: ModelOptions | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_duration: timedelta | None = None
    max_concurrent_sub_tasks: int = 4
    stream: bool = True

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("an agent needs a name")
        for item in self.tools:
            if not isinstance(item, Tool | str):
                raise TypeError(
                    f"agent {self.name!r}: {item!r} is not a tool; decorate the function "
                    "with @duragent.tool, or name a built-in tool as a string"
                )
        if self.output_type is not None and not (
            isinstance(self.output_type, type) and issubclass(self.output_type, BaseModel)
        ):
            raise TypeError(f"agent {self.name!r}: output_type must be a pydantic model class")

    @property
    def tool_names(self) -> list[str]:
        """What the agent is offered, control tools first, in order, once each."""
        names = [*CONTROL_TOOLS, *(t if isinstance(t, str) else t.name for t in self.tools)]
        if self.sub_agents:
            names.extend(_SUB_TASK_TOOLS)
        return list(dict.fromkeys(names))

    def functions(self) -> list[Tool[Any]]:
        """The tool functions a worker must register for it (its sub-agents' too)."""
        found = [t for t in self.tools if isinstance(t, Tool) and t.kind is ToolKind.ACTIVITY]
        for sub in self.sub_agents:
            found.extend(sub.functions())
        return _unique_tools(found)

    def input(self, task: str, **overrides: Any) -> AgentInput:
        """The input a run of this agent starts with.

        Args:
            task: What to do: the first user message.
            **overrides: Any :class:`AgentInput` field (``model``, ``owner``,
                ``max_cycles``, ``workspace``, ...), over the definition's.

        Raises:
            TypeError: An override names no field of ``AgentInput``.
            pydantic.ValidationError: An override has a wrong value.
        """
        return spec_input(self.spec(), task, **overrides)

    def spec(self, *, worker: str = "") -> AgentSpec:
        """The definition as data: what the catalog lists and clients start from."""
        schema = (
            cast(dict[str, JsonValue], _model(self.output_type).model_json_schema())
            if self.output_type is not None
            else None
        )
        base = AgentInput(
            task="",
            model=self.model,
            system_prompt=self.instructions,
            tools=self.tool_names,
            max_cycles=self.max_cycles,
            llm_policy=self.llm_policy,
            stream=self.stream,
            model_options=self.model_options,
            ask=self.ask,
            approval=self.approval,
            memory=self.memory,
            history=self.history,
            sub_agents={s.name: s.as_sub_agent() for s in self.sub_agents},
            max_concurrent_sub_tasks=self.max_concurrent_sub_tasks,
            max_tokens=self.max_tokens,
            max_cost_usd=self.max_cost_usd,
            max_duration=self.max_duration,
            output_schema=schema,
            agent=self.name,
        )
        return AgentSpec(
            name=self.name,
            description=self.description,
            input=base,
            output_type=self.output_type.__name__ if self.output_type is not None else None,
            tools=self.tool_names,
            sub_agents=[s.name for s in self.sub_agents],
            worker=worker,
        )

    def as_sub_agent(self) -> SubAgentSpec:
        """How a parent agent offers this one."""
        return SubAgentSpec(
            description=self.description,
            model=self.model,
            system_prompt=self.instructions,
            tools=self.tool_names,
            max_cycles=self.max_cycles,
            model_options=self.model_options,
        )

    def output(self, value: JsonValue) -> OutputT:
        """A finished run's output as the definition's type.

        Raises:
            pydantic.ValidationError: It does not validate (the run validated it against
                the type's JSON Schema; a model's own validators run only here).
        """
        if self.output_type is None:
            raise TypeError(f"agent {self.name!r} has no output_type")
        return cast(OutputT, _model(self.output_type).model_validate(value))


def _model(output_type: type[Any]) -> type[BaseModel]:
    return cast(type[BaseModel], output_type)


def spec_input(spec: AgentSpec, task: str, **overrides: Any) -> AgentInput:
    """A definition's input with the task and the caller's overrides.

    Raises:
        TypeError: An override names no field of ``AgentInput``.
        pydantic.ValidationError: An override has a wrong value.
    """
    unknown = sorted(set(overrides) - set(AgentInput.model_fields))
    if unknown:
        raise TypeError(f"no such agent setting: {', '.join(unknown)}")
    data = spec.input.model_dump(exclude_unset=False)
    data.update(task=task, **{k: v for k, v in overrides.items() if v is not None})
    return AgentInput.model_validate(data)


def _unique_tools(tools: Iterable[Tool[Any]]) -> list[Tool[Any]]:
    """Each tool once; two different tools of one name are refused."""
    seen: dict[str, Tool[Any]] = {}
    for t in tools:
        other = seen.setdefault(t.name, t)
        if other is not t:
            raise ValueError(f"two different tools are named {t.name!r}; rename one")
    return list(seen.values())


def agent_tools(agents: Iterable[Agent[Any]]) -> list[Tool[Any]]:
    """The tool functions of all the agents, each once (for the worker's registry)."""
    return _unique_tools(t for a in agents for t in a.functions())


class AgentDefinitions:
    """A worker's agent definitions, and the activity that lists them.

    Args:
        agents: The definitions; names must be unique.
        worker: The worker's identity, told to those who ask.

    Raises:
        ValueError: Two definitions share a name.
    """

    def __init__(self, agents: Iterable[Agent[Any]] = (), *, worker: str = "") -> None:
        self._agents: dict[str, Agent[Any]] = {}
        for agent in agents:
            other = self._agents.setdefault(agent.name, agent)
            if other is not agent:
                raise ValueError(f"two agent definitions are named {agent.name!r}")
        self._worker = worker

    @property
    def names(self) -> list[str]:
        """The definitions' names, in registration order."""
        return list(self._agents)

    def get(self, name: str) -> Agent[Any] | None:
        """The definition of that name, or ``None``."""
        return self._agents.get(name)

    @activity.defn(name=LIST_AGENTS)
    async def list_agents(self, request: CatalogRequest) -> AgentCatalog:
        """The definitions this worker has (the one named, when a name is given)."""
        chosen = [
            a for a in self._agents.values() if request.name is None or a.name == request.name
        ]
        return AgentCatalog(agents=[a.spec(worker=self._worker) for a in chosen])

    @activity.defn(name=CHECK_OUTPUT)
    async def check_output(self, request: OutputCheckRequest) -> OutputCheck:
        """Validate a finished run's output with its definition's output type."""
        agent = self._agents.get(request.agent)
        if agent is None or agent.output_type is None:
            return OutputCheck()
        try:
            _model(agent.output_type).model_validate(request.output)
        except ValidationError as err:
            return OutputCheck(error=_output_refused(agent.output_type, err))
        return OutputCheck()


def _output_refused(output_type: type[Any], err: ValidationError) -> str:
    """Pydantic's errors, each at its place in the output, as the model reads them."""
    kind = output_type.__name__
    problems = "\n".join(
        f"- {'.'.join(str(p) for p in e['loc']) or '(output)'}: {e['msg']}" for e in err.errors()
    )
    return truncate(
        f"the output is not a valid {kind}:\n{problems}\nNothing was finished. Call "
        f"{TASK_FINISH} again with a corrected `output`.",
        MAX_ERROR_BYTES,
    )


async def agent_catalog(client: Client, task_queue: str, name: str | None = None) -> AgentCatalog:
    """Ask a worker of ``task_queue`` for its agent definitions.

    Raises:
        TimeoutError: No worker answered within 30 s.
    """
    try:
        return await client.execute_workflow(
            CatalogWorkflow.run,
            CatalogRequest(name=name),
            id=f"duragent-catalog-{uuid.uuid4().hex[:12]}",
            task_queue=task_queue,
            execution_timeout=_LOOKUP_TIMEOUT,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary="agent definitions lookup",
        )
    except WorkflowFailureError as err:
        raise TimeoutError(
            f"no worker of task queue {task_queue!r} listed its agent definitions "
            f"within {_LOOKUP_TIMEOUT.seconds} s ({err.cause})"
        ) from err


async def agent_spec(client: Client, task_queue: str, name: str) -> AgentSpec:
    """The definition ``name`` as a worker of ``task_queue`` has it.

    Raises:
        AgentNotFound: The worker that answered has no definition of that name.
        TimeoutError: No worker answered.
    """
    catalog = await agent_catalog(client, task_queue, name)
    spec = catalog.get(name)
    if spec is None:
        raise AgentNotFound(
            f"no agent named {name!r} on task queue {task_queue!r} "
            "(`duragent agents` lists the definitions its workers have)"
        )
    return spec


__all__ = [
    "CONTROL_TOOLS",
    "Agent",
    "AgentDefinitions",
    "AgentNotFound",
    "AgentSpec",
    "agent_catalog",
    "agent_spec",
    "agent_tools",
    "spec_input",
]
