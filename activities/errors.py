"""Errors, and how each one maps to Temporal's retry posture.

The tree::

    DuragentError                 base of everything duragent raises on purpose
    ├── ToolError                 a tool could not do what was asked; the model is told
    │                             (status ``error`` with a code), nothing is retried
    └── TaskError                 a graph's task function failed; not retried unless it
                                  says ``retryable=True`` (``ApplicationError`` of type
                                  ``TaskFailed``, see ``TaskErrorType``)

The workflow fails a run with ``ApplicationError(type="AgentFailed")`` carrying the
activity's own message (e.g. a bad API key), so Temporal shows the run as Failed with
a reason a person can act on.

Errors from the LLM provider never escape an activity as themselves: they become a
``temporalio.exceptions.ApplicationError`` whose ``type`` is one of the
``LLMErrorType`` values, retryable or not, with ``next_retry_delay`` taken from the
provider's ``Retry-After``. That mapping is written once, in
:func:`llm_error_to_application_error`:

====================================  ==============  ============================
provider answer                       retried?        type
====================================  ==============  ============================
connection error, timeout              yes             ``LLMConnectionError``
408, 409, 5xx                          yes             ``LLMServerError``
429                                    yes, after      ``LLMRateLimited``
                                       Retry-After
400 context length exceeded            no (compact)    ``LLMContextLengthExceeded``
401, 403                               no              ``LLMAuthenticationError``
other 4xx (400, 404, 422, ...)         no              ``LLMBadRequest``
====================================  ==============  ============================

The object store (:mod:`activities.objectstore`) maps its failures the same way, in
:func:`object_store_error_to_application_error`; a missing object is no failure but
``StoreMiss``, which its callers handle:

====================================  ==============  ============================
object store answer                   retried?        type
====================================  ==============  ============================
connection error, timeout, 5xx         yes             ``ObjectStoreUnavailable``
408, 409, 429                          yes             ``ObjectStoreUnavailable``
401, 403 (credentials, policy)         no              ``ObjectStoreDenied``
no such bucket, other 4xx, bad config  no              ``ObjectStoreMisconfigured``
====================================  ==============  ============================

The provider's own text is kept in the message, bounded (``MAX_DETAIL_CHARS``). On
its way out of the worker every activity failure then passes the activity boundary
(:mod:`activities.boundary`): the causes' text is folded into the message, the cause
chain and all but the last stack frames are dropped, so the failure fits the server's
few-kilobyte limit, and the worker's secrets are redacted (a provider that quotes the
key does not put it into history).
"""

from __future__ import annotations

import email.utils
import re
import time
from datetime import timedelta
from enum import StrEnum

import openai
from temporalio.exceptions import ApplicationError

# Retry-After beyond this is not honoured as is: a provider asking for an hour's pause
# would park the activity longer than any sane schedule-to-close; Temporal's own backoff
# takes over instead.
MAX_RETRY_AFTER = timedelta(minutes=5)

RETRYABLE_STATUS = frozenset({408, 409, 429})

# A provider's error text says what went wrong in its first sentences; an HTML error
# page from a proxy would otherwise fill the failure.
MAX_DETAIL_CHARS = 500

# What an S3 error answer says, in obstore's text of it.
_STATUS = re.compile(r"status code: (\d{3}[A-Za-z ]*)")
_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")
_S3_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


class DuragentError(Exception):
    """Base class of the errors duragent raises on purpose."""


class ToolError(DuragentError):
    """A tool failed in a way the model should hear about and can act on.

    Raise it from a tool function: the call ends with status ``error``, the message
    goes back to the model as the tool's result, and the activity is not retried.
    """

    def __init__(self, message: str, *, code: str = "tool_error") -> None:
        super().__init__(message)
        self.code = code
        """Short machine-readable code, e.g. ``not_found`` or ``path_escape``."""


class TaskError(DuragentError):
    """A task function failed in a way another attempt would not fix.

    Raise it from a function registered with ``activities.tasks.task``: the task node
    fails at once (or goes to its ``on_error`` edge) with this message. Any other
    exception is retried by Temporal up to the node's ``max_attempts``.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        """True when another attempt may succeed: the node's retry policy applies."""


class TaskErrorType(StrEnum):
    """``ApplicationError.type`` values of the task activity; only ``FAILED`` may retry."""

    UNKNOWN = "TaskNotFound"
    """No function of that ref on the worker (start it with ``--load MODULE``)."""
    BAD_ARGUMENTS = "TaskBadArguments"
    """The arguments do not fit the function's parameters."""
    FAILED = "TaskFailed"
    """The function raised ``TaskError`` (retried only when it said ``retryable``)."""
    NOT_JSON = "TaskResultNotJSON"
    TOO_LARGE = "TaskResultTooLarge"


class LLMErrorType(StrEnum):
    """``ApplicationError.type`` values for LLM failures."""

    CONNECTION = "LLMConnectionError"
    SERVER = "LLMServerError"
    RATE_LIMITED = "LLMRateLimited"
    CONTEXT_LENGTH = "LLMContextLengthExceeded"
    AUTHENTICATION = "LLMAuthenticationError"
    BAD_REQUEST = "LLMBadRequest"
    BAD_RESPONSE = "LLMBadResponse"
    TRANSCRIPT_NOT_FOUND = "TranscriptNotFound"
    """The stored transcript a request builds on is missing (another machine's store,
    or a cleaned one): the workflow resends the transcript whole."""


class StoreErrorType(StrEnum):
    """``ApplicationError.type`` values for object store failures."""

    UNAVAILABLE = "ObjectStoreUnavailable"
    DENIED = "ObjectStoreDenied"
    MISCONFIGURED = "ObjectStoreMisconfigured"


def llm_error_to_application_error(err: openai.OpenAIError) -> ApplicationError:
    """Translate an ``openai`` exception into Temporal's retry posture.

    Args:
        err: What the ``openai`` client raised.

    Returns:
        An ``ApplicationError`` to raise from the activity.
    """
    if isinstance(err, openai.APIConnectionError):
        return _retryable(LLMErrorType.CONNECTION, f"cannot reach the LLM endpoint: {err}")
    if not isinstance(err, openai.APIStatusError):
        return _retryable(LLMErrorType.BAD_RESPONSE, f"unexpected LLM client error: {err}")
    status = err.status_code
    detail = _provider_message(err)
    if status == 429:
        return _retryable(
            LLMErrorType.RATE_LIMITED,
            f"LLM rate limited (429): {detail}",
            delay=retry_after(err.response.headers),
        )
    if status in RETRYABLE_STATUS or status >= 500:
        return _retryable(
            LLMErrorType.SERVER,
            f"LLM server error ({status}): {detail}",
            delay=retry_after(err.response.headers),
        )
    if _is_context_length(err):
        return _fatal(LLMErrorType.CONTEXT_LENGTH, f"context too long for the model: {detail}")
    if status in (401, 403):
        return _fatal(
            LLMErrorType.AUTHENTICATION,
            f"LLM authentication failed ({status}): {detail}. "
            "Check OPENAI_API_KEY in the worker's environment.",
        )
    return _fatal(
        LLMErrorType.BAD_REQUEST,
        f"LLM rejected the request ({status}): {detail}. "
        "Check the model name (--model / DURAGENT_MODEL) and OPENAI_BASE_URL.",
    )


def retry_after(headers: object) -> timedelta | None:
    """Read ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    Args:
        headers: A mapping of response headers (case-insensitive, as httpx gives).

    Returns:
        The delay asked for, capped at ``MAX_RETRY_AFTER``; ``None`` when absent or
        unreadable.
    """
    get = getattr(headers, "get", None)
    if get is None:
        return None
    delay = _seconds(get("retry-after-ms"), scale=0.001) or _seconds(get("retry-after"))
    if delay is None:
        return None
    return min(timedelta(seconds=delay), MAX_RETRY_AFTER)


def _seconds(value: object, *, scale: float = 1.0) -> float | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        seconds = float(value) * scale
    except ValueError:
        if scale != 1.0:
            return None
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None  # a header we cannot read is no reason to fail the retry
        seconds = parsed.timestamp() - time.time()
    return seconds if seconds > 0 else None


def _provider_message(err: openai.APIStatusError) -> str:
    text = err.message
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            text = str(inner["message"])
    if len(text) > MAX_DETAIL_CHARS:
        return f"{text[:MAX_DETAIL_CHARS]} [... {len(text) - MAX_DETAIL_CHARS:,} characters]"
    return text


def _is_context_length(err: openai.APIStatusError) -> bool:
    if err.code == "context_length_exceeded":
        return True
    text = _provider_message(err).lower()
    return "context length" in text or "context_length" in text


def _retryable(
    kind: LLMErrorType, message: str, *, delay: timedelta | None = None
) -> ApplicationError:
    return ApplicationError(message, type=kind.value, next_retry_delay=delay)


def _fatal(kind: LLMErrorType, message: str) -> ApplicationError:
    return ApplicationError(message, type=kind.value, non_retryable=True)


def object_store_error_to_application_error(
    err: Exception, what: str, *, secrets: tuple[str, ...] = ()
) -> ApplicationError:
    """Translate an object store client's exception into Temporal's retry posture.

    A missing object is not handled here: the blob store raises ``StoreMiss`` for it.
    obstore reports 5xx answers and connection failures alike as ``GenericError``, with
    the status in its text; both are worth another attempt. A 4xx in that text (a LIST
    with wrong keys, or of a bucket that is not there) is not.

    Args:
        err: What the ``obstore`` client raised.
        what: What was being done, e.g. ``cannot store s3://bucket/prefix/<ref>``.
        secrets: The store's credentials, cut out of the message: the boundary redacts
            the worker's secrets too, but this error may be logged before it.

    Returns:
        An ``ApplicationError`` to raise from the activity.
    """
    detail = _store_detail(str(err).strip() or type(err).__name__)
    for secret in secrets:
        detail = detail.replace(secret, "[redacted]")
    # obstore gives some answers no exception of their own (a LIST's, for one): their
    # HTTP status is then only in the text of a GenericError.
    # Imported here: a worker with no object store never loads the client (~7 MiB).
    import obstore.exceptions

    status = _status_in(err) if isinstance(err, obstore.exceptions.GenericError) else None
    if status in (401, 403) or isinstance(
        err, obstore.exceptions.PermissionDeniedError | obstore.exceptions.UnauthenticatedError
    ):
        return ApplicationError(
            f"{what}: access denied: {detail}. Check AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY in the worker's environment, and the bucket's policy.",
            type=StoreErrorType.DENIED.value,
            non_retryable=True,
        )
    if status is not None and 400 <= status < 500 and status not in RETRYABLE_STATUS:
        return ApplicationError(
            f"{what}: the object store refused the request: {detail}",
            type=StoreErrorType.MISCONFIGURED.value,
            non_retryable=True,
        )
    if isinstance(err, obstore.exceptions.GenericError | TimeoutError | ConnectionError):
        return _retryable_store(f"{what}: the object store failed: {detail}")
    if isinstance(err, FileNotFoundError):  # a write that finds no bucket
        return ApplicationError(
            f"{what}: no such bucket: {detail}. Create it, or fix DURAGENT_STORE and "
            "AWS_ENDPOINT_URL.",
            type=StoreErrorType.MISCONFIGURED.value,
            non_retryable=True,
        )
    if isinstance(err, obstore.exceptions.BaseError | ValueError):
        return ApplicationError(
            f"{what}: {detail}", type=StoreErrorType.MISCONFIGURED.value, non_retryable=True
        )
    # Anything else (an error we do not know) gets Temporal's default posture: retried.
    return _retryable_store(f"{what}: {type(err).__name__}: {detail}")


def _status_in(err: Exception) -> int | None:
    """The HTTP status an error's text reports (``... status code: 403 Forbidden``)."""
    found = _STATUS.search(str(err))
    return int(found.group(1)[:3]) if found else None


def _store_detail(text: str) -> str:
    """The server's status and S3 error code and message, when the text holds them.

    obstore's text repeats the key three times and ends with the whole XML error body;
    the status line and ``<Code>``/``<Message>`` say it all.
    """
    text = text.split("\n\nDebug source:", 1)[0].strip()  # the Rust error's dump
    status = _STATUS.search(text)
    code = _S3_CODE.search(text)
    if status and code:
        message = _S3_MESSAGE.search(text)
        text = f"{status.group(1)}, {code.group(1)}" + (
            f": {message.group(1).strip().rstrip('.')}" if message else ""
        )
    if len(text) > MAX_DETAIL_CHARS:
        return f"{text[:MAX_DETAIL_CHARS]} [... {len(text) - MAX_DETAIL_CHARS:,} characters]"
    return text


def _retryable_store(message: str) -> ApplicationError:
    return ApplicationError(message, type=StoreErrorType.UNAVAILABLE.value)
