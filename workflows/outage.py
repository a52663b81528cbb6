"""Riding out an LLM provider's outage, in workflow code.

A provider that answers 503 for a minute, or rate-limits for ten, is routine for a
long-running agent; it must cost time, not the agent. The LLM activity retries quickly
on its own (Temporal's retry policy, ``Retry-After`` honoured). When an activity gives
up on a *retryable* error (its attempts ran out, or it timed out), this helper takes
over: the agent shows ``waiting_provider``, sleeps on a durable timer and tries again,
until ``llm_policy.max_retry_duration`` has passed since the outage began. Then the run
fails with the provider's last error, or (``on_exhausted: wait``) waits for an
operator's ``retry`` update. Errors that retrying cannot fix (a bad key, a bad request)
pass straight through.

Waiting costs no worker resources (a timer), adds a handful of history events per
round, and cancellation reaches it like any other wait.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import NoReturn, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from duragent.workflows import activity_calls as calls
    from duragent.workflows.models import LLMPolicy, OnRetriesExhausted, ProviderOutage

T = TypeVar("T")

# Older runs failed on the first activity that gave up; replaying their histories must
# not grow timers there.
PATCH_ID = "provider-outage-retries"
# The longest pause a provider's Retry-After may ask between rounds.
MAX_RETRY_AFTER = timedelta(minutes=5)
# Activities that gave up on these retry states were failing on something transient.
TRANSIENT = frozenset({RetryState.MAXIMUM_ATTEMPTS_REACHED, RetryState.TIMEOUT})


def is_transient(err: ActivityError) -> bool:
    """Whether the activity gave up on errors that a later try may not meet."""
    return err.retry_state in TRANSIENT


class OutageRider:
    """Runs LLM activities and rides out the provider's outages (see the module doc).

    Args:
        policy: The agent's LLM policy.
        on_change: Called with the outage view when an outage begins or changes, and
            with ``None`` when it ends; the agent sets its status from it.
        fail: Ends the run with a message and an error type.
    """

    def __init__(
        self,
        policy: LLMPolicy,
        on_change: Callable[[ProviderOutage | None], None],
        fail: Callable[[str, str], NoReturn],
    ) -> None:
        self._policy = policy
        self._on_change = on_change
        self._fail = fail
        self._outage: ProviderOutage | None = None
        self._retry_requested = False

    @property
    def outage(self) -> ProviderOutage | None:
        """The outage being ridden out, if any."""
        return self._outage

    @property
    def awaiting_operator(self) -> bool:
        """True while retries ran out and only an operator's ``retry`` goes on."""
        return self._outage is not None and self._outage.next_retry_at is None

    def request_retry(self) -> None:
        """An operator's ``retry``: try the call again now."""
        self._retry_requested = True

    async def call(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` (one activity execution) until it succeeds or must fail."""
        while True:
            try:
                result = await attempt()
            except ActivityError as err:
                if not is_transient(err) or not workflow.patched(PATCH_ID):
                    raise
                await self._wait_after(err)
                continue
            if self._outage is not None:
                workflow.logger.info(
                    "LLM provider answers again after %d rounds", self._outage.rounds
                )
                self._outage = None
                self._on_change(None)
            return result

    async def _wait_after(self, err: ActivityError) -> None:
        now = workflow.now()
        cause = calls.cause(err)
        if self._outage is None:
            self._outage = ProviderOutage(since=now, last_error=cause)
        else:
            self._outage = self._outage.model_copy(
                update={"rounds": self._outage.rounds + 1, "last_error": cause}
            )
        left = self._outage.since + self._policy.max_retry_duration - now
        if left <= timedelta(0):
            await self._exhausted()
            return
        delay = min(self._delay(err), left)
        self._outage = self._outage.model_copy(update={"next_retry_at": now + delay})
        self._on_change(self._outage)
        workflow.logger.warning("LLM provider failing (%s); next try in %s", cause, delay)
        await workflow.sleep(delay)

    def _delay(self, err: ActivityError) -> timedelta:
        delay = timedelta(seconds=self._policy.maximum_interval_seconds)
        asked = err.cause.next_retry_delay if isinstance(err.cause, ApplicationError) else None
        if asked is not None:
            delay = max(delay, min(asked, MAX_RETRY_AFTER))
        return delay

    async def _exhausted(self) -> None:
        assert self._outage is not None
        waited = _duration(self._outage.since, workflow.now())
        message = (
            f"the LLM provider kept failing for {waited} ({self._outage.rounds} rounds of "
            f"retries): {self._outage.last_error}"
        )
        if self._policy.on_exhausted is OnRetriesExhausted.FAIL:
            self._fail(message, "ProviderUnavailable")
        self._outage = self._outage.model_copy(update={"next_retry_at": None})
        self._on_change(self._outage)
        workflow.logger.warning("%s; waiting for an operator's retry", message)
        self._retry_requested = False
        await workflow.wait_condition(lambda: self._retry_requested)
        self._retry_requested = False
        # A fresh window: the operator judged the provider worth another try.
        self._outage = self._outage.model_copy(update={"since": workflow.now()})


def _duration(start: datetime, end: datetime) -> str:
    seconds = int((end - start).total_seconds())
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {seconds:02d}s" if hours else f"{minutes}m {seconds:02d}s"
