"""Connecting to Temporal and starting agents: what the CLI and user code call."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from opentelemetry import trace
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

from worker.plugin import DuragentPlugin
from worker.telemetry import Telemetry, agent_span
from workflows import search_attributes as search
from workflows.agent import WORKFLOW_NAME, AgentWorkflow
from workflows.models import AgentInput, AgentResult

DEFAULT_ADDRESS = "localhost:7233"


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
        TemporalUnavailable: Nothing answers at the address.
    """
    config = ClientConfig.load_client_connect_config(override_env_vars=dict(env))
    config.setdefault("target_host", DEFAULT_ADDRESS)
    plugins = [plugin or DuragentPlugin(), *(telemetry.plugins() if telemetry else [])]
    runtime = telemetry.runtime if telemetry else None
    try:
        return await Client.connect(**config, plugins=plugins, runtime=runtime)
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
        try:
            return await _start(client, input, task_queue, agent_id, attributes)
        except RPCError as err:
            if (
                err.status is not RPCStatusCode.INVALID_ARGUMENT
                or "search attribute" not in err.message.lower()
            ):
                raise
        await ensure_search_attributes(client)
        return await _start(client, input, task_queue, agent_id, attributes)


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


def is_not_found(err: BaseException) -> bool:
    """True when an RPC error says the workflow does not exist."""
    return isinstance(err, RPCError) and err.status is RPCStatusCode.NOT_FOUND


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


__all__ = ["WORKFLOW_NAME", "TemporalUnavailable", "agent_handle", "connect", "start_agent"]
