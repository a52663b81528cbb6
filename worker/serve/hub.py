"""One reader of a run's events per ``duragent serve``, however many browsers follow it.

Each subscriber of :func:`worker.events.subscribe` polls the run's stream (a query a
worker answers, 20 a second while events come). A hundred people watching one agent
would be a hundred pollers; through the hub they are one: a :class:`_Channel` per run
reads the stream once and keeps its recent events, and every subscriber reads its own
position in that buffer. A subscriber that asks for an older offset than the buffer
holds (a late resume) gets a channel of its own. Channels end with their stream (the
run's ``finished`` event) or when their last subscriber leaves.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Final

from pydantic import JsonValue

Event = dict[str, JsonValue]
Upstream = Callable[[str, int], AsyncIterator[Event]]
"""Opens a run's stream: ``(workflow id, first offset) -> events`` (``events.subscribe``)."""

MAX_BUFFER: Final = 20_000
"""Events a channel keeps; a subscriber that falls further behind is cut off (it resumes
with ``Last-Event-ID`` on a channel of its own)."""

log = logging.getLogger("duragent.serve")


class Lagged(Exception):
    """The subscriber fell behind the events its channel keeps."""


class _Channel:
    """One upstream reader of one run, and the events it read."""

    def __init__(self, workflow_id: str, start: int, upstream: Upstream) -> None:
        self.workflow_id = workflow_id
        self.first = start
        """The oldest offset a subscriber can read here."""
        self.offsets: list[int] = []
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.done = False
        self.subscribers = 0
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._pump(upstream(workflow_id, start)))

    def covers(self, offset: int) -> bool:
        """Whether a subscriber from ``offset`` can read everything it needs here."""
        return not self.done and offset >= self.first

    async def _pump(self, events: AsyncIterator[Event]) -> None:
        try:
            async for event in events:
                offset = event.get("offset")
                async with self._changed:
                    self.offsets.append(offset if isinstance(offset, int) else self._next())
                    self.events.append(event)
                    if len(self.events) > MAX_BUFFER:
                        self._trim()
                    self._changed.notify_all()
        except Exception as err:  # the subscribers report it; the server goes on
            self.error = err
        finally:
            async with self._changed:
                self.done = True
                self._changed.notify_all()

    def _next(self) -> int:
        return self.offsets[-1] + 1 if self.offsets else self.first

    def _trim(self) -> None:
        half = len(self.events) // 2
        del self.offsets[:half], self.events[:half]
        self.first = self.offsets[0]

    async def read(self, offset: int, wait: float) -> list[Event] | None:
        """Events from ``offset`` on; ``[]`` after ``wait`` s without any, ``None`` at the end.

        Raises:
            Lagged: Events from ``offset`` were already dropped from the buffer.
            Exception: What ended the upstream reader, once every event before it is read.
        """
        async with self._changed:
            if offset < self.first:
                raise Lagged(f"offset {offset} is older than {self.first}")
            start = bisect.bisect_left(self.offsets, offset)
            if start == len(self.events) and not self.done:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
                start = bisect.bisect_left(self.offsets, offset)
            if start < len(self.events):
                return self.events[start:]
            if self.done:
                if self.error is not None:
                    raise self.error
                return None
            return []

    async def close(self) -> None:
        """Stop reading upstream."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Hub:
    """The channels of one server, by workflow id.

    Args:
        upstream: Opens a run's stream (``events.subscribe`` bound to a client).
    """

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self._channels: dict[str, _Channel] = {}

    @property
    def readers(self) -> int:
        """Upstream readers open now (shared channels only), for tests and benchmarks."""
        return len(self._channels)

    async def follow(
        self, workflow_id: str, offset: int, *, keepalive: float
    ) -> AsyncIterator[list[Event]]:
        """Batches of a run's events from ``offset`` on; ``[]`` every ``keepalive`` s of quiet.

        Ends after the stream's last event.

        Raises:
            Lagged: The subscriber fell too far behind (it may resume from its offset).
            Exception: What ended the stream (no such run, no stream, Temporal unreachable).
        """
        channel = self._channel(workflow_id, offset)
        channel.subscribers += 1
        try:
            while True:
                batch = await channel.read(offset, keepalive)
                if batch is None:
                    return
                if batch:
                    last = batch[-1].get("offset")
                    offset = last + 1 if isinstance(last, int) else offset + len(batch)
                yield batch
        finally:
            channel.subscribers -= 1
            await self._leave(channel)

    def _channel(self, workflow_id: str, offset: int) -> _Channel:
        shared = self._channels.get(workflow_id)
        if shared is not None and shared.covers(offset):
            return shared
        channel = _Channel(workflow_id, offset, self._upstream)
        if shared is None or shared.done:
            self._channels[workflow_id] = channel
        return channel

    async def _leave(self, channel: _Channel) -> None:
        # An ended channel leaves the registry at once (a new subscriber reads the run
        # afresh); a live one when its last subscriber goes.
        if self._channels.get(channel.workflow_id) is channel and (
            channel.subscribers == 0 or channel.done
        ):
            del self._channels[channel.workflow_id]
        if channel.subscribers == 0:
            await channel.close()

    async def close(self) -> None:
        """Stop every shared channel (the server is shutting down)."""
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
