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
import itertools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Final

from pydantic import JsonValue

Event = dict[str, JsonValue]
Upstream = Callable[[str, int], AsyncIterator[Event]]
"""Opens a run's stream: ``(workflow id, first offset) -> events`` (``events.subscribe``)."""

MAX_BUFFER: Final = 20_000
"""Events a channel keeps for its subscribers; one that falls further behind others is
cut off (it resumes with ``Last-Event-ID`` on a channel of its own)."""

log = logging.getLogger("duragent.serve")


class Lagged(Exception):
    """The subscriber fell behind the events its channel keeps."""


class _Channel:
    """One upstream reader of one run, the events it read, and where each subscriber is.

    The buffer keeps what some subscriber has still to read, at most ``MAX_BUFFER``
    events. When it is full, the slowest of several subscribers is cut off (it resumes
    on a channel of its own); a channel's only subscriber is waited for instead, so a
    resume from far back reads at its own pace.
    """

    def __init__(self, workflow_id: str, start: int, upstream: Upstream) -> None:
        self.workflow_id = workflow_id
        self.first = start
        """The oldest offset a new subscriber can start at here."""
        self.offsets: list[int] = []
        self.events: list[Event] = []
        self.positions: dict[int, int] = {}
        """The next offset each subscriber reads, by its key."""
        self.error: BaseException | None = None
        self.done = False
        self._keys = itertools.count()
        lock = asyncio.Lock()
        self._arrived = asyncio.Condition(lock)
        """Subscribers wait here for new events (or the end)."""
        self._freed = asyncio.Condition(lock)
        """The pump waits here for room in a full buffer."""
        self._full = False
        self._task = asyncio.create_task(self._pump(upstream(workflow_id, start)))

    def covers(self, offset: int) -> bool:
        """Whether a subscriber from ``offset`` can read everything it needs here."""
        return not self.done and offset >= self.first

    def join(self, offset: int) -> int:
        """A new subscriber from ``offset``; returns its key."""
        key = next(self._keys)
        self.positions[key] = offset
        return key

    def leave(self, key: int) -> None:
        """The subscriber ``key`` is gone."""
        self.positions.pop(key, None)

    async def _pump(self, events: AsyncIterator[Event]) -> None:
        try:
            async for event in events:
                offset = event.get("offset")
                async with self._arrived:
                    await self._room()
                    self.offsets.append(offset if isinstance(offset, int) else self._next())
                    self.events.append(event)
                    self._arrived.notify_all()
        except Exception as err:  # the subscribers report it; the server goes on
            self.error = err
        finally:
            async with self._arrived:
                self.done = True
                self._arrived.notify_all()

    def _next(self) -> int:
        return self.offsets[-1] + 1 if self.offsets else self.first

    async def _room(self) -> None:
        """Wait (holding the lock) until the buffer has room for one more event."""
        while True:
            low = min(self.positions.values(), default=self._next())
            read = bisect.bisect_left(self.offsets, low)  # events every subscriber has read
            del self.offsets[:read], self.events[:read]
            self.first = self.offsets[0] if self.offsets else max(self.first, low)
            if len(self.events) < MAX_BUFFER:
                return
            if len(self.positions) > 1:
                slowest = min(self.positions, key=lambda key: self.positions[key])
                del self.positions[slowest]  # it reads Lagged next, and resumes elsewhere
                self._arrived.notify_all()
                continue
            self._full = True
            await self._freed.wait()
            self._full = False

    async def read(self, key: int, wait: float) -> list[Event] | None:
        """The subscriber's next events; ``[]`` after ``wait`` s without any, ``None`` at the end.

        Raises:
            Lagged: The subscriber was cut off: it fell behind a full buffer.
            Exception: What ended the upstream reader, once every event before it is read.
        """
        async with self._arrived:
            if self._full:  # a new or moving subscriber changes what the pump may drop
                self._freed.notify_all()
            try:
                await asyncio.wait_for(self._arrived.wait_for(lambda: self._ready(key)), wait)
            except TimeoutError:
                return []
            if key not in self.positions:
                raise Lagged(f"a subscriber of {self.workflow_id} fell behind")
            start = bisect.bisect_left(self.offsets, self.positions[key])
            if start < len(self.events):
                batch = self.events[start:]
                self.positions[key] = self.offsets[-1] + 1
                if self._full:
                    self._freed.notify_all()
                return batch
            if self.error is not None:
                raise self.error
            return None

    def _ready(self, key: int) -> bool:
        """Whether the subscriber has something to read: events, the end, or its cut."""
        if key not in self.positions or self.done:
            return True
        return bisect.bisect_left(self.offsets, self.positions[key]) < len(self.events)

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
    ) -> AsyncGenerator[list[Event], None]:
        """Batches of a run's events from ``offset`` on; ``[]`` every ``keepalive`` s of quiet.

        Ends after the stream's last event. Close it (``contextlib.aclosing``) when
        leaving early: the subscriber then leaves its channel at once.

        Raises:
            Lagged: The subscriber fell too far behind (it may resume from its offset).
            Exception: What ended the stream (no such run, no stream, Temporal unreachable).
        """
        channel = self._channel(workflow_id, offset)
        key = channel.join(offset)
        try:
            while True:
                batch = await channel.read(key, keepalive)
                if batch is None:
                    return
                yield batch
        finally:
            channel.leave(key)
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
        alone = not channel.positions
        if self._channels.get(channel.workflow_id) is channel and (alone or channel.done):
            del self._channels[channel.workflow_id]
        if alone:
            await channel.close()

    async def close(self) -> None:
        """Stop every shared channel (the server is shutting down)."""
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
