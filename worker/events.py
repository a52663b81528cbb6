"""Reading the live events of an agent or a graph: what ``watch`` and ``serve`` call.

A subscriber reads the workflow stream of one agent or graph (see
:mod:`duragent.activities.events` for the event schema) from an offset on. The stream
lives in the workflow, so it survives worker restarts, and the reader follows
continue-as-new to the next run by itself.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from pydantic import JsonValue
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.workflow_streams import PollInput, PollResult, WorkflowStreamClient

from duragent.activities.events import EVENT_TYPES, TOPIC

__all__ = ["EVENT_TYPES", "subscribe"]

_POLL = "__temporal_workflow_stream_poll"
"""The stream's poll query (and update), named by the stream library."""

POLL_COOLDOWN = timedelta(milliseconds=50)
"""Pause between two reads when the reader is caught up: each read is a round trip to
the worker, and a person does not see 50 ms."""


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
    ``finished`` event (or at once past the end when ``follow`` is false).

    Args:
        client: A client with duragent's data converter.
        workflow_id: The agent's or graph's id.
        from_offset: The first offset to return (0: from the start). An offset the
            stream no longer keeps resumes at the oldest one it keeps.
        follow: Wait for new events; false returns what is there now.

    Yields:
        Each event's JSON object, in stream order.
    """
    if not follow:
        async for event in _read_now(client, workflow_id, from_offset):
            yield event
        return
    stream = WorkflowStreamClient.create(client, workflow_id)
    async for item in stream.subscribe(TOPIC, from_offset, poll_cooldown=POLL_COOLDOWN):
        event = _event(item.data, item.offset)
        yield event
        if event.get("type") == "finished":
            return


async def _read_now(
    client: Client, workflow_id: str, offset: int
) -> AsyncIterator[dict[str, JsonValue]]:
    """What the stream holds now, read by queries (nothing is written to history)."""
    handle = client.get_workflow_handle(workflow_id)
    converter = client.data_converter.payload_converter
    while True:
        result = await handle.query(
            _POLL, PollInput(topics=[TOPIC], from_offset=offset), result_type=PollResult
        )
        for item in result.items:
            payload = Payload()
            payload.ParseFromString(base64.b64decode(item.data))
            yield _event(converter.from_payload(payload), item.offset)
        offset = result.next_offset
        if not result.more_ready:
            return


def _event(data: Any, offset: int) -> dict[str, JsonValue]:
    event: dict[str, JsonValue] = dict(data)
    event["offset"] = offset
    return event
