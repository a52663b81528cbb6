"""Connecting to Temporal and starting agents: what the CLI and user code call."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import TypeVar

from opentelemetry import trace
from temporalio.api.enums.v1 import DescribeTaskQueueMode, IndexedValueType, TaskQueueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

from duragent.worker.plugin import DuragentPlugin
from duragent.worker.telemetry import Telemetry, agent_span
from duragent.workflows import search_attributes as search
from duragent.workflows.agent import WORKFLOW_NAME, AgentWorkflow
from duragent.workflows.models import AgentInput, AgentResult, AgentStatus

_T = TypeVar("_T")

DEFAULT_ADDRESS = "localhost:7233"
CLOSED_STATUS = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued_as_new",
}
"""How an agent whose run was closed by Temporal itself is shown."""


class TemporalUnavailable(ConnectionError):
    """No Temporal server answered at the configured address."""


async def connect(
    env: Mapping[str, str],
    *,
    plugin: DuragentPlugin | None = None,
    telemetry: Telemetry | None = None,
) -> Client:
    """Connect with Temporal's standard environment configuration.

    ``TEMPORAL_ADDRESS`` (default ``localhost:7233``), ``TEMPORAL_NAMESPACE``, API key,
    TLS and profiles are read by the SDK's ``temporalio.envconfig``, so duragent connects
    exactly as the ``temporal`` CLI does.

    With ``telemetry``, the client carries its plugins (the SDK's OpenTelemetry plugin and
    duragent's interceptor) and its runtime (whose metrics the worker serves), and the
    workers made from the client inherit both.

    Raises:
        TemporalUnavailable: Nothing answers at the address, or it is no address.
    """
    try:
        config = ClientConfig.load_client_connect_config(override_env_vars=dict(env))
    except (OSError, ValueError, RuntimeError) as err:
        raise TemporalUnavailable(
            f"cannot read Temporal's client configuration: {_first_line(err)}"
        ) from err
    config.setdefault("target_host", DEFAULT_ADDRESS)
    if "://" in config["target_host"]:
        raise TemporalUnavailable(
            f"TEMPORAL_ADDRESS {config['target_host']!r} is not a Temporal address (a URL); "
            f"expected host:port, e.g. {DEFAULT_ADDRESS}"
        )
    plugins = [plugin or DuragentPlugin(), *(telemetry.plugins() if telemetry else [])]
    runtime = telemetry.runtime if telemetry else None
    try:
        return await Client.connect(**config, plugins=plugins, runtime=runtime)
    except ValueError as err:  # the address does not parse
        raise TemporalUnavailable(
            f"TEMPORAL_ADDRESS {config['target_host']!r} is not a Temporal address "
            f"({_first_line(err)}); expected host:port, e.g. {DEFAULT_ADDRESS}"
        ) from err
    except RuntimeError as err:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {config['target_host']} ({_first_line(err)}); "
            "start one with `duragent server` or set TEMPORAL_ADDRESS"
        ) from err


def new_agent_id() -> str:
    """A fresh agent id (also the workflow id)."""
    return f"agent-{uuid.uuid4().hex[:12]}"


async def start_agent(
    client: Client, input: AgentInput, *, task_queue: str, agent_id: str | None = None
) -> WorkflowHandle[AgentWorkflow, AgentResult]:
    """Start an agent; starting again with the id of a running agent returns that agent.

    The agent starts with its search attributes (status, model, owner), registering
    them first on a server that does not know them yet.

    Raises:
        temporalio.exceptions.WorkflowAlreadyStartedError: An agent with this id already
            ran to its end; ids are not reused, so its result stays readable.
    """
    attributes = search.at_start(input.model, input.owner)
    agent_id = agent_id or new_agent_id()
    # The trace of the agent starts here: the start request carries this span's context
    # to every run, cycle and activity of the agent.
    telemetry = Telemetry.of(client)
    tracer = telemetry.tracer() if telemetry else trace.NoOpTracer()
    content = telemetry.settings.tracing.capture_content if telemetry else False
    with agent_span(tracer, agent_id, input, task_queue=task_queue, content=content):
        return await start_registering(
            client, lambda: _start(client, input, task_queue, agent_id, attributes)
        )


async def start_registering(client: Client, start: Callable[[], Awaitable[_T]]) -> _T:
    """Start a run with duragent's search attributes; register them first if need be.

    A server that does not know the attributes refuses the start: they are registered
    and the run started again.
    """
    try:
        return await start()
    except RPCError as err:
        if (
            err.status is not RPCStatusCode.INVALID_ARGUMENT
            or "search attribute" not in err.message.lower()
        ):
            raise
    await ensure_search_attributes(client)
    return await start()


async def _start(
    client: Client,
    input: AgentInput,
    task_queue: str,
    agent_id: str,
    attributes: TypedSearchAttributes,
) -> WorkflowHandle[AgentWorkflow, AgentResult]:
    return await client.start_workflow(
        AgentWorkflow.run,
        input,
        id=agent_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=input.task[:200],
        search_attributes=attributes,
    )


async def ensure_search_attributes(client: Client) -> None:
    """Register duragent's search attributes on the client's namespace when missing."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in search.ALL
        if key.name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )


def agent_handle(client: Client, agent_id: str) -> WorkflowHandle[AgentWorkflow, AgentResult]:
    """Handle of an existing agent, typed for its result."""
    return client.get_workflow_handle_for(AgentWorkflow.run, agent_id)


def shown_status(execution: WorkflowExecutionStatus | None, recorded: str | None) -> str:
    """An agent's status for people: what the agent recorded, unless Temporal closed it.

    A run that was terminated or timed out never updated its own status (its search
    attribute and its ``status`` query still say, e.g., ``waiting_user``): then the
    execution's status is the truth.

    Args:
        execution: The run's execution status (``None``: unknown).
        recorded: The status the agent recorded (search attribute or query).
    """
    if execution is None or execution is WorkflowExecutionStatus.RUNNING:
        return recorded or "running"
    try:
        if recorded is not None and AgentStatus(recorded).is_final:
            return recorded
    except ValueError:
        pass
    return CLOSED_STATUS.get(execution, execution.name.lower())


async def workflow_pollers(client: Client, task_queue: str) -> int:
    """How many workers polled ``task_queue`` for workflow tasks recently.

    Temporal lists a poller for a few minutes after its last poll, so a worker that
    just died may still count; none means no worker has been there lately. Asked in
    the enhanced mode, which gathers every partition's pollers: the plain one lists the
    root partition's alone, where a worker of a queue with many may not have polled.
    """
    workflow = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            api_mode=DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
            task_queue_types=[workflow],
            report_pollers=True,
        ),
        timeout=timedelta(seconds=10),
    )
    unversioned = response.versions_info.get("")
    if unversioned is None or workflow not in unversioned.types_info:
        return 0
    return len(unversioned.types_info[workflow].pollers)


def is_not_found(err: BaseException) -> bool:
    """True when an RPC error says the workflow does not exist."""
    return isinstance(err, RPCError) and err.status is RPCStatusCode.NOT_FOUND


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


__all__ = [
    "WORKFLOW_NAME",
    "TemporalUnavailable",
    "agent_handle",
    "connect",
    "shown_status",
    "start_agent",
    "workflow_pollers",
]
