"""Publishing an LLM call's streamed text as live ``token`` events, in batches.

The LLM activity hands each delta to a :class:`TokenPublisher`; text is gathered for
``batch_seconds`` and sent to the calling workflow's stream as one ``token`` event (one
signal: about 1 KB of history per batch, however many tokens it holds). Each later
batch of the call waits half as long again, up to :data:`MAX_BATCH_SECONDS` (or
:data:`GROWTH_LIMIT` first intervals, when that is shorter): the first words show at
once, and a long answer costs a batch a second, not four (1,000 tokens at 50 a second:
about 20 batches, 22 KB of history, against 80 and 55 KB at a fixed 0.25 s). Each event names
its cycle, the activity's id (``call``) and its attempt, so a reader keeps only the
newest attempt's text of a call: a retried call streams its text again from the start.

Publishing never fails the call: a batch that cannot be sent (the workflow has closed,
Temporal is unreachable) is logged and the rest of the call's text is not published.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from temporalio import activity
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.service import RPCError

from duragent.activities.events import TOPIC, TokenEvent
from duragent.activities.models import TokenStream

FINAL_FLUSH_SECONDS = 5.0
"""How long the last batch may take to send before the call's result goes back without
it: the answer matters more than its preview."""
RETRY_SECONDS = 30.0
"""How long a batch is retried (the workflow drops a publisher's state 5 min after)."""
MAX_BATCH_SECONDS = 1.0
"""The longest a batch grows to (unless the agent's own interval is longer)."""
GROWTH_LIMIT = 8
"""Nor longer than this many first intervals: a short first interval keeps text live."""
BATCH_GROWTH = 1.5
"""Each batch of a call gathers this much longer than the one before."""


class TokenPublisher:
    """Gathers one LLM attempt's text deltas and publishes them in batches.

    Use as ``async with TokenPublisher(request.events) as tokens: tokens.add(text)``.
    With ``None`` (the workflow asked for no events), it does nothing.

    Args:
        stream: The workflow's request: its cycle and batch interval.
    """

    def __init__(self, stream: TokenStream | None) -> None:
        self._stream = stream
        self._client: WorkflowStreamClient | None = None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._seq = 0
        self._agent_id = ""
        self._call = ""
        self._attempt = 1

    async def __aenter__(self) -> Self:
        if self._stream is None:
            return self
        info = activity.info()
        try:
            self._client = WorkflowStreamClient.from_within_activity(
                max_retry_duration=timedelta(seconds=RETRY_SECONDS)
            )
        except RuntimeError as err:  # no client (a test's bare activity environment)
            activity.logger.warning("token events not published: %s", err)
            return self
        self._agent_id = info.workflow_id or ""
        self._call, self._attempt = info.activity_id, info.attempt
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if isinstance(error, asyncio.CancelledError):
            return  # the call was cancelled: nothing more to show
        # The rest before the result: a reader sees the whole text before the turn.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._send(), FINAL_FLUSH_SECONDS)

    def add(self, text: str = "", reasoning: str = "") -> None:
        """Take one delta of content and/or reasoning."""
        if self._client is None or not (text or reasoning):
            return
        if text:
            self._text.append(text)
        if reasoning:
            self._reasoning.append(reasoning)
        self._ready.set()

    async def _run(self) -> None:
        """Each batch: wait for a first delta, gather for the interval, send."""
        assert self._stream is not None
        first = self._stream.batch_seconds
        # One knob: a shorter first interval also caps the growth lower (0.05 s: 0.4 s).
        longest = max(first, min(MAX_BATCH_SECONDS, GROWTH_LIMIT * first))
        while self._client is not None:
            await self._ready.wait()
            await asyncio.sleep(min(first * BATCH_GROWTH**self._seq, longest))
            await self._send()

    async def _send(self) -> None:
        self._ready.clear()
        if self._client is None or not (self._text or self._reasoning):
            return
        assert self._stream is not None
        event = TokenEvent(
            agent_id=self._agent_id,
            at=datetime.now(UTC),
            cycle=self._stream.cycle,
            call=self._call,
            attempt=self._attempt,
            seq=self._seq,
            text="".join(self._text),
            reasoning="".join(self._reasoning),
        )
        self._text, self._reasoning = [], []
        self._seq += 1
        self._client.topic(TOPIC).publish(event)
        try:
            await self._client.flush()
        except (RPCError, TimeoutError) as err:
            # A closed workflow or a lost server: the call goes on without a preview.
            activity.logger.warning("token events not published any more: %s", err)
            self._client = None
