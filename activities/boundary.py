"""The activity boundary: what a failure or a result may carry out of the worker.

Every activity's outcome crosses it on its way to Temporal, so two rules hold for all
of them, not only the LLM call:

- **A failure fits, and says what failed.** The server keeps an activity's last
  failure (shown in ``describe()`` while it retries, and in the failed event) only up
  to a few kilobytes; beyond that it stores "Failure exceeds size limit." instead,
  and the cause is lost. An ``openai`` connection error with its chain of causes and
  stack traces is about 6 KB. So the failure is rebuilt as one ``ApplicationError``:
  its own message and the messages of its causes, bounded, folded into one line of
  text (``... (cause: ConnectError: All connection attempts failed)``), no cause
  chain, and only the last frames of the stack. Type, retryability, the
  ``Retry-After`` delay and details are kept, so retry policies and the workflow see
  what they saw before.
- **No known secret leaves.** The failure's text and the result are run through the
  worker's :class:`~activities.redact.Redactor`.

Cancellation passes through untouched: the SDK must see it as it is.
"""

from __future__ import annotations

import traceback
from types import TracebackType
from typing import Any

from pydantic import BaseModel
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from duragent.activities.redact import Redactor

MAX_MESSAGE_CHARS = 1_200
"""The whole message, causes included; the server's limit is on the whole failure."""
MAX_CAUSE_CHARS = 300
"""Each cause's own text: the innermost ones (``Connection refused``) are short."""
MAX_CAUSES = 4
MAX_STACK_CHARS = 1_500
"""The stack trace keeps its last frames (where it failed) within this."""


class ActivityBoundary(Interceptor):
    """Bounds and redacts what every activity returns or raises.

    Args:
        redactor: The worker's secrets; nothing is redacted when ``None``.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._redactor = redactor or Redactor()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap every activity of the worker."""
        return _BoundaryInbound(next, self._redactor)


class _BoundaryInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, redactor: Redactor) -> None:
        super().__init__(next)
        self._redactor = redactor

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            result = await self.next.execute_activity(input)
        except CancelledError:
            raise
        except Exception as err:
            # ``from None``: the cause chain is what made failures too big; its text
            # is in the message now.
            raise bounded_failure(err, self._redactor) from None
        if not self._redactor:
            return result
        if isinstance(result, BaseModel):
            return self._redactor.redact_model(result)
        if isinstance(result, str):
            return self._redactor.redact(result)
        return result


def bounded_failure(err: Exception, redactor: Redactor | None = None) -> ApplicationError:
    """One ``ApplicationError`` that says what failed, within the server's limits.

    Args:
        err: What the activity raised.
        redactor: Secrets to replace in the message.

    Returns:
        An error with the same type, retry posture and details, its causes' text in
        its message, no ``__cause__``, and a stack of the last frames only.
    """
    text = (redactor or Redactor()).redact(describe(err))
    message = _clip(text, MAX_MESSAGE_CHARS)
    if isinstance(err, ApplicationError):
        bounded = ApplicationError(
            message,
            *err.details,
            type=err.type,
            non_retryable=err.non_retryable,
            next_retry_delay=err.next_retry_delay,
            category=err.category,
        )
    else:
        # The type a retry policy's non-retryable list names, as the SDK would set it.
        bounded = ApplicationError(message, type=type(err).__name__)
    return bounded.with_traceback(_last_frames(err.__traceback__, MAX_STACK_CHARS))


def describe(err: BaseException) -> str:
    """The error's message followed by its causes' (``__cause__``, else ``__context__``)."""
    message = _message(err) or type(err).__name__
    causes: list[str] = []
    seen = [message]
    cause = _cause_of(err)
    while cause is not None and len(causes) < MAX_CAUSES:
        text = _clip(_message(cause), MAX_CAUSE_CHARS)
        if not any(text in s for s in seen):  # wrappers often repeat their cause's text
            seen.append(text)
            causes.append(f"{type(cause).__name__}: {text}" if text else type(cause).__name__)
        cause = _cause_of(cause)
    return f"{message} (cause: {'; '.join(causes)})" if causes else message


def _message(err: BaseException) -> str:
    if isinstance(err, ApplicationError):
        return err.message
    return str(err).strip()


def _cause_of(err: BaseException) -> BaseException | None:
    if err.__cause__ is not None:
        return err.__cause__
    return None if err.__suppress_context__ else err.__context__


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    omitted = len(text) - limit
    return f"{text[:limit]} [... {omitted:,} characters left out]"


def _last_frames(tb: TracebackType | None, limit: int) -> TracebackType | None:
    """The tail of a traceback whose formatted text fits in ``limit`` characters."""
    frames: list[TracebackType] = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    sizes = [len("".join(traceback.format_tb(frame, limit=1))) for frame in frames]
    total = 0
    keep = len(frames)
    while keep > 0 and total + sizes[keep - 1] <= limit:
        total += sizes[keep - 1]
        keep -= 1
    return frames[keep] if keep < len(frames) else None
