"""How workflow code schedules activities and reads their failures.

Small and shared: the agent workflow, the outage rider and the workflows to come
schedule activities with the same options and report their failures the same way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from duragent.workflows import policy
    from duragent.workflows.models import ActivityPolicy

# Listing tools or checking arguments is a registry lookup on the worker: fast, and safe
# to retry at will.
REGISTRY_POLICY = ActivityPolicy(start_to_close_seconds=30, heartbeat_seconds=None)


class ActivityOptions(TypedDict):
    """The keyword options of ``workflow.execute_activity*`` duragent sets."""

    start_to_close_timeout: timedelta
    heartbeat_timeout: timedelta | None
    retry_policy: RetryPolicy
    cancellation_type: ActivityCancellationType


def options(p: ActivityPolicy) -> ActivityOptions:
    """Timeouts, retries and cancellation of one activity, from its policy."""
    heartbeat = timedelta(seconds=p.heartbeat_seconds) if p.heartbeat_seconds else None
    return {
        "start_to_close_timeout": timedelta(seconds=p.start_to_close_seconds),
        "heartbeat_timeout": heartbeat,
        "retry_policy": policy.retry_policy(p),
        # A cancelled run waits until its activities have really stopped (a tool's
        # subprocess killed, an LLM stream closed) before it reports Canceled.
        "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }


class LocalActivityOptions(TypedDict):
    """The keyword options of ``workflow.execute_local_activity*`` duragent sets."""

    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy
    cancellation_type: ActivityCancellationType


def local_options(p: ActivityPolicy) -> LocalActivityOptions:
    """Timeouts, retries and cancellation of one local activity, from its policy.

    A local activity runs inside the workflow task on the worker that runs the workflow:
    for lookups of that worker's own state, short and without heartbeats.
    """
    remote = options(p)
    return {
        "start_to_close_timeout": remote["start_to_close_timeout"],
        "retry_policy": remote["retry_policy"],
        "cancellation_type": remote["cancellation_type"],
    }


def error_type(err: ActivityError) -> str | None:
    """The ``ApplicationError.type`` an activity failed with, if it raised one."""
    return err.cause.type if isinstance(err.cause, ApplicationError) else None


def cause(err: ActivityError) -> str:
    """What the activity said went wrong (not the wrapper's "activity task failed")."""
    return str(err.cause or err)
