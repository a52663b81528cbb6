"""Gauges of agents (and graphs) by status, computed from Temporal visibility.

A gauge that workflows move up and down drifts: a run that crashes, times out or is
terminated never moves it back. Visibility is the truth: the workflow keeps its
``DuragentStatus`` search attribute current, so a count query per status gives the
agents running, waiting for a reply and waiting for an approval on a task queue.
Every worker of the queue reports the same numbers; dashboards take their ``max``.

The age of a wait is the time since the waiting agent's last history event: the
workflow task that put it in the waiting state, unless a ``say`` message came since.
One ``GetWorkflowExecutionHistoryReverse`` call of one event per agent inspected, no
worker involved; agents are inspected oldest first and the search stops as soon as no
remaining agent can have waited longer than the longest wait found.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge
from prometheus_client.registry import CollectorRegistry
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client
from temporalio.service import RPCError

from duragent.workflows import search_attributes as search
from duragent.workflows.agent import WORKFLOW_NAME
from duragent.workflows.graph_models import GRAPH_WORKFLOW_NAME, GraphStatus
from duragent.workflows.models import AgentStatus

log = logging.getLogger("duragent.telemetry")

ACTIVE = (
    AgentStatus.RUNNING,
    AgentStatus.WAITING_USER,
    AgentStatus.WAITING_APPROVAL,
    AgentStatus.WAITING_PROVIDER,
)
GRAPH_ACTIVE = (GraphStatus.RUNNING, GraphStatus.WAITING_USER)
WAITING = (AgentStatus.WAITING_USER, AgentStatus.WAITING_APPROVAL, AgentStatus.WAITING_PROVIDER)
MAX_LISTED = 10_000
"""Waiting agents listed per refresh at most."""
MAX_INSPECTED = 200
"""History lookups per refresh at most; beyond, the oldest wait is a lower bound."""


@dataclass(frozen=True)
class _Waiting:
    workflow_id: str
    run_id: str | None
    status: str
    start_time: datetime


class AgentGauges:
    """``duragent_agents`` and ``duragent_agent_oldest_wait_seconds`` by task queue.

    Args:
        registry: Where the gauges are registered.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._agents = Gauge(
            "duragent_agents",
            "Agents not yet finished, by status (from Temporal visibility)",
            ["status", "task_queue"],
            registry=registry,
        )
        self._oldest_wait = Gauge(
            "duragent_agent_oldest_wait_seconds",
            "Longest time a waiting agent has been idle, by what it waits for",
            ["status", "task_queue"],
            registry=registry,
        )
        self._graphs = Gauge(
            "duragent_graphs",
            "Graph runs not yet finished, by status (from Temporal visibility)",
            ["status", "task_queue"],
            registry=registry,
        )
        self._errors = Counter(
            "duragent_visibility_errors",
            "Failed refreshes of the visibility gauges",
            registry=registry,
        )

    async def run(self, client: Client, task_queue: str, interval: float) -> None:
        """Refresh every ``interval`` seconds until cancelled."""
        while True:
            await self.refresh(client, task_queue)
            await asyncio.sleep(interval)  # the refresh period, not a wait for an event

    async def refresh(self, client: Client, task_queue: str) -> None:
        """Count the queue's agents by status and find the longest waits.

        A failure is counted and logged; the gauges keep their last values.
        """
        try:
            for status in ACTIVE:
                count = await client.count_workflows(_query(task_queue, f"= '{status.value}'"))
                self._agents.labels(status.value, task_queue).set(count.count)
            for graph_status in GRAPH_ACTIVE:
                query = _query(task_queue, f"= '{graph_status.value}'", GRAPH_WORKFLOW_NAME)
                count = await client.count_workflows(query)
                self._graphs.labels(graph_status.value, task_queue).set(count.count)
            for waiting, seconds in (await _oldest_waits(client, task_queue)).items():
                self._oldest_wait.labels(waiting, task_queue).set(seconds)
        except RPCError as err:
            self._errors.inc()
            log.warning("cannot refresh the agent gauges from visibility: %s", err.message)
        except Exception:
            # The loop must outlive a bad refresh: the next one may succeed.
            self._errors.inc()
            log.exception("cannot refresh the agent gauges from visibility")


def _query(task_queue: str, status_condition: str, workflow_type: str = WORKFLOW_NAME) -> str:
    return (
        f"WorkflowType = '{workflow_type}' AND ExecutionStatus = 'Running' "
        f"AND TaskQueue = '{_quoted(task_queue)}' AND {search.STATUS.name} {status_condition}"
    )


async def _oldest_waits(client: Client, task_queue: str) -> dict[str, float]:
    statuses = ", ".join(f"'{s.value}'" for s in WAITING)
    waiting: list[_Waiting] = []
    async for wf in client.list_workflows(_query(task_queue, f"IN ({statuses})"), limit=MAX_LISTED):
        status = wf.typed_search_attributes.get(search.STATUS) or ""
        waiting.append(_Waiting(wf.id, wf.run_id, status, wf.start_time))
    waiting.sort(key=lambda w: w.start_time)
    now = datetime.now(UTC)
    oldest = {s.value: 0.0 for s in WAITING}
    budget = MAX_INSPECTED
    for status in oldest:
        for w in (w for w in waiting if w.status == status):
            if budget == 0 or (now - w.start_time).total_seconds() <= oldest[status]:
                break  # a run cannot have waited longer than it has existed
            budget -= 1
            idle = (now - await _last_event_time(client, w)).total_seconds()
            oldest[status] = max(oldest[status], idle)
    return oldest


async def _last_event_time(client: Client, waiting: _Waiting) -> datetime:
    response = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(
                workflow_id=waiting.workflow_id, run_id=waiting.run_id or ""
            ),
            maximum_page_size=1,
        )
    )
    events = response.history.events
    return events[0].event_time.ToDatetime(UTC) if events else waiting.start_time


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
