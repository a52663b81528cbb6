"""Memory: the prompt's size, and compacting the transcript when it grows too long.

Stage 1 stubs old tool results kept in artifacts; stage 2 summarises the middle of the
conversation. Pure and deterministic, like all of :mod:`workflows.policy` (which
re-exports them).
"""

from __future__ import annotations

from duragent.activities.models import Message, Role, SummarizeRequest
from duragent.activities.tools.control import COMPRESS_MEMORY, SUB_TASK_TOOLS
from duragent.workflows.models import HistoryPolicy, MemoryPolicy
from duragent.workflows.prompts import CONTINUE_HINT

CHARS_PER_TOKEN = 4  # a rough, provider-neutral estimate; the provider's count wins
SUMMARY_HEADER = "[Memory compacted: earlier conversation summarised]"


def estimate_tokens(transcript: list[Message], system: str = "") -> int:
    """Tokens of a prompt, estimated from its characters."""
    chars = len(system) + sum(m.prompt_chars for m in transcript)
    return chars // CHARS_PER_TOKEN + 1


def context_tokens(reported: int, transcript: list[Message], sent: int) -> int:
    """The next prompt's size in tokens.

    The provider's last count plus an estimate of what was added since
    (``transcript[sent:]``); the estimate alone when there is no count.
    """
    if reported <= 0:
        return estimate_tokens(transcript)
    return reported + sum(m.prompt_chars for m in transcript[sent:]) // CHARS_PER_TOKEN


# What a message's JSON costs besides its text (field names, ids, nulls), so the carried
# payload, not only its text, stays under the limit.
MESSAGE_OVERHEAD_CHARS = 200


def carry_too_large(transcript: list[Message], history: HistoryPolicy) -> bool:
    """True when the transcript is too long to carry into the next run as it is."""
    size = sum(
        MESSAGE_OVERHEAD_CHARS
        + len(m.content or "")
        + sum(len(c.name) + len(c.arguments) for c in m.tool_calls)
        for m in transcript
    )
    return size > history.max_carry_chars


def should_compact(tokens: int, memory: MemoryPolicy) -> bool:
    """True when the next prompt would pass the compaction threshold."""
    return tokens >= memory.compact_at * memory.context_window_tokens


def offered_tools(
    names: list[str], tokens: int, memory: MemoryPolicy, *, sub_agents: bool
) -> list[str]:
    """The tools offered this cycle.

    ``_compress_memory`` only when the context is close to the threshold, so the model
    is not tempted to compact early; the sub-task tools only to an agent that has
    sub-agents (sub-agents get none: one level of delegation keeps costs in sight).
    """
    near = tokens >= memory.offer_tool_at * memory.context_window_tokens
    return [
        n
        for n in names
        if (n != COMPRESS_MEMORY or near) and (n not in SUB_TASK_TOOLS or sub_agents)
    ]


def recent_start(transcript: list[Message], keep_turns: int) -> int:
    """Index where the last ``keep_turns`` assistant turns begin.

    A turn boundary, so a tool result never loses the call it answers.
    """
    starts = [i for i, m in enumerate(transcript) if m.role is Role.ASSISTANT]
    return starts[-keep_turns] if len(starts) >= keep_turns else 1


def stub_old_results(transcript: list[Message], keep_turns: int) -> tuple[list[Message], int]:
    """Stage 1: old tool results kept in artifacts leave the prompt; only stubs remain."""
    cut = recent_start(transcript, keep_turns)
    out, stubbed = [], 0
    for i, m in enumerate(transcript):
        if i < cut and m.artifact and not m.stubbed:
            m = m.model_copy(update={"stubbed": True})
            stubbed += 1
        out.append(m)
    return out, stubbed


def summary_split(
    transcript: list[Message], keep_turns: int
) -> tuple[list[Message], list[Message], list[Message]]:
    """Stage 2's cut: the first message (the task), the middle to summarise, the tail."""
    cut = max(1, recent_start(transcript, keep_turns))
    return transcript[:1], transcript[1:cut], transcript[cut:]


def summary_request(
    model: str,
    head: list[Message],
    middle: list[Message],
    stored_ref: str | None,
    stored_count: int,
) -> SummarizeRequest:
    """The summary stage's input.

    The middle by reference when the store holds all of it (a long conversation must not
    pass through history again), else inline.
    """
    start, end = len(head), len(head) + len(middle)
    if stored_ref is not None and end <= stored_count:
        return SummarizeRequest(model=model, transcript_ref=stored_ref, start=start, end=end)
    return SummarizeRequest(model=model, messages=middle)


def compacted(
    head: list[Message], middle: list[Message], tail: list[Message], summary: str
) -> list[Message]:
    """The transcript after stage 2.

    What the user wrote stays verbatim; the rest of the middle becomes one summary.
    """
    said = [
        m
        for m in middle
        if m.role is Role.USER
        and m.content != CONTINUE_HINT
        and not (m.content or "").startswith(SUMMARY_HEADER)
    ]
    note = Message(role=Role.USER, content=f"{SUMMARY_HEADER}\n\n{summary}")
    return [*head, *said, note, *tail]
