"""Keep an activity heartbeating while it awaits something that does not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity


@asynccontextmanager
async def heartbeating(every: float | None = None) -> AsyncIterator[None]:
    """Heartbeat while the block runs.

    Cancellation of an activity only reaches it through a heartbeat, so a long LLM call
    or tool must heartbeat even while it waits on a socket. The SDK throttles heartbeats
    to a fraction of the heartbeat timeout, so this costs little. The first beat waits
    like the others: the SDK sends a first heartbeat to the server at once (a write of
    the workflow's state there), and an attempt that ends sooner needs none, so short
    LLM and tool calls cost the server nothing for it.

    Args:
        every: Seconds between heartbeats; by default a third of the activity's
            heartbeat timeout (at most 5 s), so a live attempt is never taken for dead.
    """
    if every is None:
        timeout = activity.info().heartbeat_timeout
        every = min(5.0, timeout.total_seconds() / 3) if timeout else 5.0

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
