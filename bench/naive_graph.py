"""The naive design of a graph engine, for ``bench.graph_cost`` to measure duragent against.

Each step is one activity that takes the *whole* state and returns the whole new state
(the "state in, state out" node of checkpointing engines): nothing is passed by
reference, so every activity input and result in history carries everything the run
has produced so far. Its two processes are the benchmark's: a map over N items (each
item's activity gets the state with the results so far, and appends its own) and a loop
of N visits appending to a log. Not part of the product.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field, JsonValue
from temporalio import activity, workflow

NAIVE_WORKFLOW = "NaiveGraphBench"
STEP = timedelta(seconds=30)


class NaiveInput(BaseModel):
    """What to run: ``map`` over ``items`` items, or ``loop`` for ``items`` visits."""

    shape: str
    items: int
    concurrency: int = 50


class NaiveState(BaseModel):
    """The whole state, shipped in and out of every activity."""

    values: dict[str, JsonValue] = Field(default_factory=dict)
    item: int = 0


@activity.defn(name="naive.step")
async def naive_step(state: NaiveState) -> NaiveState:
    """One node: reads the whole state, returns it whole with its result appended."""
    log = list(state.values.get("log") or [])  # type: ignore[arg-type]
    log.append(state.item * state.item)
    return NaiveState(values={**state.values, "log": log, "count": len(log)}, item=state.item)


@workflow.defn(name=NAIVE_WORKFLOW, sandboxed=False)
class NaiveGraph:
    """A map or a loop, with the whole state through every activity."""

    @workflow.run
    async def run(self, input: NaiveInput) -> int:
        """Run the process; returns the log's length."""
        state: dict[str, Any] = {"log": [], "count": 0}
        if input.shape == "loop":
            for i in range(input.items):
                state = (await self._step(state, i)).values
            return int(state["count"])
        slots = asyncio.Semaphore(input.concurrency)

        async def one(i: int) -> None:
            nonlocal state
            async with slots:
                done = await self._step(state, i)
                log = done.values["log"]
                assert isinstance(log, list)
                # Merge this item's entry into whatever the state is now (others ran).
                state = {**state, "log": [*state["log"], log[-1]]}

        await asyncio.gather(*(one(i) for i in range(input.items)))
        return len(state["log"])

    async def _step(self, state: dict[str, Any], item: int) -> NaiveState:
        return await workflow.execute_activity(
            naive_step, NaiveState(values=state, item=item), start_to_close_timeout=STEP
        )
