"""Reading the live events of an agent or a graph: what ``watch`` and ``serve`` call.

A subscriber reads the workflow stream of one agent or graph (the event schema is
:mod:`duragent.activities.events`) from an offset on. The stream lives in the workflow,
so it survives worker restarts, and offsets go on across continue-as-new: reading by
the workflow id always reaches the newest run.

Reads are the stream's **query**, repeated (every 50 ms while events come, backing off
to 0.5 s while none do), not its long-poll **update**: an update is written to the
workflow's history with its whole answer, so every reader would add every event to
history again (``bench/stream_history.py`` measures both). A query costs the worker a
little CPU and history nothing.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from pydantic import JsonValue
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.contrib.workflow_streams import PollInput, PollResult
from temporalio.service import RPCError, RPCStatusCode

from duragent.activities.events import EVENT_TYPES, TOPIC

__all__ = ["EVENT_TYPES", "NoStream", "subscribe"]

POLL = "__temporal_workflow_stream_poll"
"""The stream's poll query, named by the stream library."""
ACTIVE_PAUSE = 0.05
"""Seconds between reads while events come (a person does not see 50 ms)."""
IDLE_PAUSE = 0.5
"""Seconds between reads at most while none come: each read is a query a worker answers."""
CLOSED_CHECK = 1.0
"""Seconds without events after which the reader asks Temporal whether the run ended."""
QUERY_TIMEOUT = timedelta(seconds=30)
"""How long one read may wait for a worker (after a worker died, Temporal first tries its
sticky queue, then another worker)."""
RETRY_PAUSE = 1.0
"""Seconds before reading again after a read failed (no worker, a run just starting)."""


_CLOSED = frozenset(
    {
        WorkflowExecutionStatus.COMPLETED,
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.CANCELED,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TIMED_OUT,
    }
)


class NoStream(LookupError):
    """The run publishes no events: it started before live events existed."""


async def subscribe(
    client: Client,
    workflow_id: str,
    *,
    from_offset: int = 0,
    follow: bool = True,
) -> AsyncIterator[dict[str, JsonValue]]:
    """Events of an agent or graph from ``from_offset`` on, each its JSON object.

    Each object has ``type`` (one of :data:`EVENT_TYPES`), ``offset`` and ``agent_id``
    or ``graph_id``. The iterator follows continue-as-new, and ends after the
    ``finished`` event (or at once past the end when ``follow`` is false). A run that
    closed without one (terminated, timed out) ends the iterator once its events are read.

    Args:
        client: A client with duragent's data converter.
        workflow_id: The agent's or graph's id.
        from_offset: The first offset to return (0: from the start). Offsets older than
            the stream keeps (it carries its newest events across continue-as-new)
            resume at the oldest it keeps: the first offset returned is then larger.
        follow: Wait for new events; false returns what is there now.

    Yields:
        Each event's JSON object, in stream order.

    Raises:
        temporalio.service.RPCError: No workflow has this id (status ``NOT_FOUND``), or,
            without ``follow``, Temporal or the worker could not answer.
        NoStream: The run publishes no events.
        ValueError: ``from_offset`` is negative.
    """
    if from_offset < 0:
        raise ValueError(f"from_offset must not be negative, got {from_offset}")
    handle = client.get_workflow_handle(workflow_id)
    offset = from_offset
    pause = ACTIVE_PAUSE
    idle = 0.0
    while True:
        result = await _read(handle, offset, retry=follow)
        if result is None:  # a failed read, to be tried again
            await asyncio.sleep(RETRY_PAUSE)
            continue
        for item in result.items:
            event = _event(client, item.data, item.offset)
            yield event
            if event.get("type") == "finished":
                return
        offset = result.next_offset
        if result.more_ready:
            continue
        if not follow:
            return
        if result.items:
            pause, idle = ACTIVE_PAUSE, 0.0
        else:
            idle += pause
            if idle >= CLOSED_CHECK:
                idle = 0.0
                if await _closed(handle):
                    async for event in subscribe(
                        client, workflow_id, from_offset=offset, follow=False
                    ):
                        yield event
                    return
            pause = min(pause * 2, IDLE_PAUSE)
        await asyncio.sleep(pause)


async def _read(handle: WorkflowHandle[Any, Any], offset: int, *, retry: bool) -> PollResult | None:
    """One read of the stream; ``None`` when it failed and is worth retrying."""
    try:
        result: PollResult = await handle.query(
            POLL,
            PollInput(topics=[TOPIC], from_offset=offset),
            result_type=PollResult,
            rpc_timeout=QUERY_TIMEOUT,
        )
    except WorkflowQueryFailedError as err:
        if POLL in err.message:  # "unknown queryType": a run without a stream
            raise NoStream(
                f"{handle.id} publishes no events (it started before live events)"
            ) from None
        raise
    except RPCError as err:
        if not retry or err.status is RPCStatusCode.NOT_FOUND:
            raise
        return None
    return result


async def _closed(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the newest run of the workflow has closed (a last read follows)."""
    return (await handle.describe()).status in _CLOSED


def _event(client: Client, data: str, offset: int) -> dict[str, JsonValue]:
    payload = Payload()
    payload.ParseFromString(base64.b64decode(data))
    decoded = client.data_converter.payload_converter.from_payload(payload)
    event: dict[str, JsonValue] = dict(decoded) if isinstance(decoded, dict) else {}
    event["offset"] = offset
    return event
