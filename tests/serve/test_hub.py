"""The event hub of ``duragent serve``: one upstream reader per run, however many follow.

Pure logic: the upstream is a plain async generator standing for a run's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from duragent.worker.serve import hub as hub_module
from duragent.worker.serve.hub import Event, Hub, Lagged


class Stream:
    """A run's stream: events appended by the test, read by the hub's upstream readers."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.readers = 0
        self.changed = asyncio.Event()
        self.ended = False

    def publish(self, count: int = 1, *, last: bool = False) -> None:
        for _ in range(count):
            self.events.append({"type": "token", "offset": len(self.events), "text": "x"})
        if last:
            self.events.append({"type": "finished", "offset": len(self.events)})
            self.ended = True
        self.changed.set()

    async def read(self, workflow_id: str, offset: int) -> AsyncIterator[Event]:
        self.readers += 1
        while True:
            while offset < len(self.events):
                yield self.events[offset]
                offset += 1
            if self.ended:
                return
            self.changed.clear()
            await self.changed.wait()


async def collect(hub: Hub, offset: int, until: int) -> list[int]:
    """Offsets a subscriber from ``offset`` reads, up to ``until`` (or the end)."""
    seen: list[int] = []
    async with contextlib.aclosing(hub.follow("agent-1", offset, keepalive=5)) as batches:
        async for batch in batches:
            seen += [int(str(e["offset"])) for e in batch]
            if seen and seen[-1] >= until:
                break
    return seen


async def test_subscribers_of_one_run_share_one_upstream_reader() -> None:
    stream = Stream()
    hub = Hub(stream.read)
    stream.publish(3)
    readers = [asyncio.create_task(collect(hub, 0, until=9)) for _ in range(5)]
    late = asyncio.create_task(collect(hub, 2, until=9))
    await asyncio.sleep(0)  # not a wait for anything: lets the subscribers start
    stream.publish(7)
    assert [await r for r in readers] == [list(range(10))] * 5
    assert await late == list(range(2, 10))
    assert stream.readers == 1
    assert hub.readers == 0  # the last subscriber gone, the reader stops


async def test_a_finished_stream_ends_every_subscriber_and_leaves_the_hub() -> None:
    stream = Stream()
    hub = Hub(stream.read)
    stream.publish(2, last=True)
    assert await collect(hub, 0, until=99) == [0, 1, 2]
    assert await collect(hub, 1, until=99) == [1, 2]  # a new reader: the old one ended
    assert stream.readers == 2 and hub.readers == 0


async def test_an_older_offset_than_the_buffer_gets_a_reader_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub_module, "MAX_BUFFER", 10)
    stream = Stream()
    hub = Hub(stream.read)
    stream.publish(5)
    first = hub.follow("agent-1", 0, keepalive=5)
    assert len(await anext(first)) == 5
    stream.publish(20)  # the shared buffer drops its oldest half, twice
    tail = await collect(hub, 20, until=24)
    assert tail == [20, 21, 22, 23, 24]
    assert await collect(hub, 0, until=24) == list(range(25))  # resumed from the start
    assert stream.readers == 2
    with pytest.raises(Lagged):  # the first subscriber fell behind the buffer
        await anext(first)
    await first.aclose()


async def test_quiet_streams_yield_keepalives_and_upstream_errors_reach_subscribers() -> None:
    async def failing(workflow_id: str, offset: int) -> AsyncIterator[Event]:
        yield {"type": "status", "offset": 0}
        await asyncio.sleep(0.2)  # a quiet stream, then a failure
        raise RuntimeError("Temporal went away")

    hub = Hub(failing)
    batches: list[list[Event]] = []
    with pytest.raises(RuntimeError, match="went away"):
        async for batch in hub.follow("agent-1", 0, keepalive=0.05):
            batches.append(batch)
    assert batches[0] == [{"type": "status", "offset": 0}]
    assert [] in batches[1:]  # keep-alive ticks while nothing came


async def test_waiting_subscribers_do_not_wake_each_other() -> None:
    async def quiet(workflow_id: str, offset: int) -> AsyncIterator[Event]:
        yield {"type": "status", "offset": 0}
        await asyncio.sleep(0.3)  # a quiet stream while twenty subscribers wait
        yield {"type": "finished", "offset": 1}

    hub = Hub(quiet)

    async def follow() -> list[list[Event]]:
        return [batch async for batch in hub.follow("agent-1", 0, keepalive=0.05)]

    followed = await asyncio.gather(*(follow() for _ in range(20)))
    for batches in followed:
        assert [e["offset"] for batch in batches for e in batch] == [0, 1]
        # A keep-alive per 50 ms of quiet, not one each time another subscriber moves.
        assert batches.count([]) <= 8, len(batches)
