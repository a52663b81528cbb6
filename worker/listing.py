"""Listing agents and graphs from Temporal visibility: no run is queried, no worker needed.

``duragent ls``, ``duragent graph ls`` and ``GET /api/v1/agents|graphs`` list the latest
run of each agent or graph, filtered by status and owner (duragent's search attributes).
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowExecution

from duragent.worker.client import shown_status
from duragent.workflows import search_attributes as search
from duragent.workflows.agent import WORKFLOW_NAME
from duragent.workflows.graph_models import GRAPH_WORKFLOW_NAME, GraphStatus
from duragent.workflows.models import AgentStatus

EXECUTION_FILTER = {
    "terminated": "ExecutionStatus = 'Terminated'",
    "timed_out": "ExecutionStatus = 'TimedOut'",
    "cancelled": f"({search.STATUS.name} = 'cancelled' OR ExecutionStatus = 'Canceled')",
    "failed": f"({search.STATUS.name} = 'failed' OR ExecutionStatus = 'Failed')",
}
"""``ls --status`` values a run closed by Temporal can have without recording them."""
GRAPH_FINAL = frozenset({GraphStatus.COMPLETED, GraphStatus.FAILED, GraphStatus.CANCELLED})


def agents_query(status: str | None, owner: str | None) -> str:
    """The visibility query of ``ls``: one row per agent (its latest run).

    A continued-as-new run is not listed (its successor is); a status an agent records
    while it runs (``running``, ``waiting_*``) only matches open runs, because a run that
    Temporal closed (terminated, timed out) keeps the last one it recorded.
    """
    query = f"WorkflowType = '{WORKFLOW_NAME}' AND ExecutionStatus != 'ContinuedAsNew'"
    if status in EXECUTION_FILTER:
        query += f" AND {EXECUTION_FILTER[status]}"
    elif status is not None:
        query += f" AND {search.STATUS.name} = '{status}'"
        if not AgentStatus(status).is_final:
            query += " AND ExecutionStatus = 'Running'"
    return query + owner_filter(owner)


def owner_filter(owner: str | None) -> str:
    """The visibility clause that keeps one owner's runs (none without an owner)."""
    if not owner:
        return ""
    escaped = owner.replace("\\", "\\\\").replace("'", "\\'")
    return f" AND {search.OWNER.name} = '{escaped}'"


async def list_agents(
    client: Client, status: str | None, owner: str | None, limit: int
) -> list[dict[str, Any]]:
    """Agents from Temporal visibility (no agent is queried), newest first."""
    rows = []
    async for wf in client.list_workflows(agents_query(status, owner), limit=limit):
        rows.append(listed_row(wf, model=wf.typed_search_attributes.get(search.MODEL) or ""))
    return rows


def listed_row(wf: WorkflowExecution, **extra: Any) -> dict[str, Any]:
    """One run of a listing: id, status, owner, times, run and queue, and ``extra``."""
    attrs = wf.typed_search_attributes
    return {
        "id": wf.id,
        "status": shown_status(wf.status, attrs.get(search.STATUS)),
        **extra,
        "owner": attrs.get(search.OWNER),
        "started": wf.start_time.isoformat(timespec="seconds"),
        "closed": wf.close_time.isoformat(timespec="seconds") if wf.close_time else None,
        "run_id": wf.run_id,
        "task_queue": wf.task_queue,
    }


def graphs_query(status: str | None, owner: str | None) -> str:
    """The visibility query of ``graph ls``: one row per graph (its latest run)."""
    query = f"WorkflowType = '{GRAPH_WORKFLOW_NAME}' AND ExecutionStatus != 'ContinuedAsNew'"
    if status in EXECUTION_FILTER:
        query += f" AND {EXECUTION_FILTER[status]}"
    elif status is not None:
        query += f" AND {search.STATUS.name} = '{status}'"
        if GraphStatus(status) not in GRAPH_FINAL:
            query += " AND ExecutionStatus = 'Running'"
    return query + owner_filter(owner)


async def list_graphs(
    client: Client, status: str | None, owner: str | None, limit: int
) -> list[dict[str, Any]]:
    """Graph runs from Temporal visibility (no graph is queried), newest first."""
    rows = []
    async for wf in client.list_workflows(graphs_query(status, owner), limit=limit):
        memo = await wf.memo()
        rows.append(listed_row(wf, graph=memo.get("graph", "")))
    return rows
