"""After a retried attempt, the workflow's next task goes where a live worker takes it.

A worker keeps the workflows it runs in its cache and asks the server to send their
next workflow tasks to its own *sticky* queue. When that worker dies (SIGKILL, lost
node, OOM), each of its workflows waits for its heartbeating activity to time out,
retries it on another worker, and then offers the workflow task that follows to the
dead worker's sticky queue, where it sits for the sticky schedule-to-start timeout
(10 s, the SDK's default, see ``worker.main``) before any other worker may take
it. A retried attempt of a heartbeating activity is the sign that this may have
happened, so it asks the server to reset the workflow's sticky queue
(``ResetStickyTaskQueue``) while it runs: the next workflow task goes to the normal
queue and a live worker takes it at once.

When the worker that had the workflow cached is alive after all (the previous attempt
failed on a 5xx), the reset costs that worker one replay of the workflow's history: a
fair price on a path that is already a retry. The reset is best effort: when it fails,
the task waits out the sticky timeout as before.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

logger = logging.getLogger(__name__)

RESET_TIMEOUT_SECONDS = 2.0
"""How long the activity's completion waits for the reset before going on without it."""


class StickyReset(Interceptor):
    """Resets the workflow's sticky queue when a heartbeating activity is retried."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap every activity of the worker."""
        return _StickyResetInbound(next)


class _StickyResetInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        retried = info.attempt > 1 and info.heartbeat_timeout is not None and not info.is_local
        if not retried or info.workflow_id is None:
            return await self.next.execute_activity(input)
        # Sent while the attempt runs, so it costs the attempt nothing; awaited before
        # the outcome goes back, since the completion is what schedules the task.
        reset = asyncio.create_task(_reset(info))
        try:
            result = await self.next.execute_activity(input)
        except asyncio.CancelledError:
            reset.cancel()
            raise
        except BaseException:
            await reset  # a last attempt's failure schedules a workflow task too
            raise
        await reset
        return result


async def _reset(info: activity.Info) -> None:
    try:
        await activity.client().workflow_service.reset_sticky_task_queue(
            ResetStickyTaskQueueRequest(
                namespace=info.namespace,
                execution=WorkflowExecution(
                    workflow_id=info.workflow_id or "", run_id=info.workflow_run_id or ""
                ),
            ),
            timeout=timedelta(seconds=RESET_TIMEOUT_SECONDS),
        )
    except Exception as err:  # best effort: the sticky timeout still applies
        logger.info("sticky queue of %s not reset: %s", info.workflow_id, err)
