"""Waiting on a person from workflow code, never past the agent's own deadline.

Questions and approvals both wait on someone who may never come back; each has its
own deadline (or none), and the agent's deadline, if it has one, bounds them all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow


async def wait_within(
    condition: Callable[[], bool], seconds: float | None, deadline: datetime | None
) -> bool:
    """Wait for a condition, at most ``seconds``; False when the deadline passed.

    Args:
        condition: What ends the wait; checked after every activation.
        seconds: This wait's own limit; ``None`` waits as long as it takes.
        deadline: The agent's deadline, if any, which bounds every wait.
    """
    if deadline is not None:
        # At least a millisecond: a zero timeout would mean "no timeout" to the SDK.
        left = max((deadline - workflow.now()).total_seconds(), 0.001)
        seconds = min(seconds, left) if seconds else left
    try:
        await workflow.wait_condition(
            condition, timeout=timedelta(seconds=seconds) if seconds else None
        )
    except TimeoutError:
        return False
    return True
