"""Where one run of an agent begins and ends, in workflow code.

A run settles its workspace folder and learns its tools as it starts, hands its state
to the next run when its history grows too long (continue-as-new), and releases what
it held on workers when it is cancelled. The cycle between those points is the
workflow's own.
"""

from __future__ import annotations

from typing import NoReturn

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from duragent.activities.models import (
        CleanupRequest,
        CleanupResult,
        DescribeToolsRequest,
        DescribeToolsResult,
    )
    from duragent.activities.tools.activity import ToolActivities
    from duragent.workflows import activity_calls as calls
    from duragent.workflows import policy
    from duragent.workflows.models import ActivityPolicy, AgentInput, CarryState, HistoryPolicy

# New runs work in a folder of their own (or a named one); runs started before it keep
# the whole workspace root. Decided once, at the start; continue-as-new carries it.
WORKSPACE_PATCH = "per-agent-workspace"
# New runs list their tools through a local activity: run by the worker that runs the
# workflow task, its result a marker in that task, so the first LLM call is scheduled
# without a server round trip (and three fewer history events). Runs started before it
# replay their scheduled ``describe_tools`` activity.
LOCAL_TOOLS_PATCH = "describe-tools-locally"
# Cleanup after a cancel releases what the run held; it must not hang the cancel.
CLEANUP_POLICY = ActivityPolicy(start_to_close_seconds=60, heartbeat_seconds=None, max_attempts=3)


def decide_workspace(input: AgentInput) -> str | None:
    """The agent's workspace folder: named, its own, its parent's, or (old runs) the root."""
    if input.carry is not None or input.parent is not None:
        # Decided already: by the run that continued as new, or by the parent.
        return input.workspace
    if not workflow.patched(WORKSPACE_PATCH):
        return None  # started before per-agent workspaces: the whole root, as then
    return input.workspace or policy.own_workspace(workflow.info().workflow_id)


async def describe_tools(enabled: list[str] | None) -> DescribeToolsResult:
    """The tools (and skills) the worker has of those the run enables."""
    request = DescribeToolsRequest(enabled=enabled)
    if workflow.patched(LOCAL_TOOLS_PATCH):
        return await workflow.execute_local_activity_method(
            ToolActivities.describe_tools, request, **calls.local_options(calls.REGISTRY_POLICY)
        )
    return await workflow.execute_activity_method(
        ToolActivities.describe_tools, request, **calls.options(calls.REGISTRY_POLICY)
    )


def history_full(limits: HistoryPolicy) -> bool:
    """Whether this run should hand over to a new one (the server suggests it, or limits)."""
    info = workflow.info()
    return (
        info.is_continue_as_new_suggested()
        or info.get_current_history_length() >= limits.max_events
        or info.get_current_history_size() >= limits.max_bytes
    )


def hand_over(input: AgentInput, carry: CarryState, workspace: str | None) -> NoReturn:
    """Continue as new with the carried state; the run ends here."""
    workflow.logger.info("continuing as new after %d cycles", carry.cycles)
    # The folder decided at the start rides along: the next run must not decide again.
    update = {"carry": carry, "workspace": workspace}
    workflow.continue_as_new(input.model_copy(update=update))


async def release_after_cancel(reason: str) -> CleanupResult:
    """Release what the cancelled run held on the workers (background commands, …)."""
    return await workflow.execute_activity_method(
        ToolActivities.cleanup,
        CleanupRequest(workflow_id=workflow.info().workflow_id, reason=reason),
        **calls.options(CLEANUP_POLICY),
    )
