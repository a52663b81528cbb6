"""Size bounds on everything that enters an agent's workflow state.

Temporal refuses any payload over 2 MB (and warns at 512 KB), ends a run whose history
passes 50 MB, and keeps an activity's last failure under 4 KB. An input of any size
must not be able to fail a workflow task or end an agent, so each way in has a bound
well under those limits, checked where the input enters:

==========================  ===========  ===============================================
input                       bound        over it
==========================  ===========  ===============================================
``say`` message             32 KiB       signal dropped, logged, counted in ``status``
steering inbox (unread)     128 KiB      signal dropped the same way
``reply`` answer            32 KiB       update rejected by its validator (signal: dropped)
``decide`` message          8 KiB        update rejected
``decide`` edited args      256 KiB      update rejected
model's text / reasoning    256 KiB      truncated by the LLM activity, with a note
one tool call's arguments   256 KiB      the call is refused; the model is told why
all of one turn's args      512 KiB      the calls past it are refused the same way
tool result (error text)    16 KiB       truncated (large output goes to artifacts)
a graph task's result       256 KiB      the task fails, not retried; the error says so
==========================  ===========  ===============================================

Sizes are UTF-8 bytes, not characters: a payload is bytes. Everything here is pure,
so the workflow uses it too.
"""

from __future__ import annotations

from duragent.activities.models import Message, ToolCall

KIB = 1024

MAX_SAY_BYTES = 32 * KIB
MAX_INBOX_BYTES = 128 * KIB
MAX_REPLY_BYTES = 32 * KIB
MAX_DECISION_MESSAGE_BYTES = 8 * KIB
MAX_EDITED_ARGUMENTS_BYTES = 256 * KIB
MAX_TEXT_BYTES = 256 * KIB
"""The model's content or reasoning in one turn."""
MAX_ARGUMENTS_BYTES = 256 * KIB
"""One tool call's arguments: enough for a large file written in one call."""
MAX_TURN_ARGUMENTS_BYTES = 512 * KIB
MAX_ERROR_BYTES = 16 * KIB
"""A tool's error message (results over ``large_result_chars`` go to artifacts)."""
MAX_TASK_RESULT_BYTES = 256 * KIB
"""A graph task function's return value, as compact JSON: it enters the graph's state
(write a file or an object and return its name for more)."""


def size(text: str) -> int:
    """Bytes ``text`` takes in a payload (UTF-8)."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def too_large(what: str, nbytes: int, limit: int) -> str:
    """The one-line reason given when an input is over its bound."""
    return f"{what} is {nbytes:,} bytes, over the limit of {limit:,}"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes, head and tail kept, with a note between.

    Args:
        text: Any text.
        limit: Bytes the result may take (at least a few hundred, for the note).

    Returns:
        ``text`` itself when it fits.
    """
    total = size(text)
    if total <= limit:
        return text
    note = f"\n[... {total - limit:,} bytes cut: over the {limit:,}-byte limit ...]\n"
    keep = max(limit - size(note), 0)
    raw = text.encode("utf-8", errors="surrogatepass")
    head = raw[: keep * 3 // 4].decode("utf-8", errors="ignore")
    tail = raw[len(raw) - keep // 4 :].decode("utf-8", errors="ignore") if keep // 4 else ""
    return head + note + tail


def bound_turn(message: Message) -> Message:
    """The model's turn with its text truncated and oversize tool calls refused.

    A turn is the LLM activity's result: over Temporal's payload limit it could not be
    recorded at all, and the run would fail on a model's whim.
    """
    budget = MAX_TURN_ARGUMENTS_BYTES
    calls: list[ToolCall] = []
    for call in message.tool_calls:
        nbytes = size(call.arguments)
        limit = min(MAX_ARGUMENTS_BYTES, budget)
        if nbytes > limit:
            reason = too_large(f"the arguments of {call.name}", nbytes, limit)
            calls.append(call.model_copy(update={"arguments": "{}", "refused": reason}))
            continue
        budget -= nbytes
        calls.append(call)
    content = truncate(message.content, MAX_TEXT_BYTES) if message.content else message.content
    reasoning = truncate(message.reasoning, MAX_TEXT_BYTES) if message.reasoning else None
    if (content, reasoning, calls) == (message.content, message.reasoning, message.tool_calls):
        return message
    update = {"content": content, "reasoning": reasoning, "tool_calls": calls}
    return message.model_copy(update=update)
