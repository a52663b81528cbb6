"""Memory compaction's LLM stage: a structured summary of the older conversation.

The deterministic stage (stubbing old large tool results) happens in the workflow; this
activity runs only when that was not enough. The workflow keeps the first messages, the
most recent turns and every message the user wrote, verbatim; the model summarises the
rest under fixed headings, so nothing the agent decided or learned is silently lost.
"""

from __future__ import annotations

import openai
from openai import AsyncOpenAI
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duragent.activities.errors import LLMErrorType, llm_error_to_application_error
from duragent.activities.heartbeat import heartbeating
from duragent.activities.models import Message, Role, SummarizeRequest, SummarizeResult, TokenUsage
from duragent.activities.providers import ModelFamilies, PriceTable
from duragent.activities.store import StoreMiss, TranscriptStore

SUMMARY_SYSTEM = (
    "You compact the memory of an autonomous agent. Summarise the conversation below so "
    "that the agent can continue its task without it. Write these sections, each as "
    "short bullet points, keeping names, paths, numbers and exact error messages:\n"
    "## Decisions\n## Constraints and preferences\n## Files touched\n"
    "## Errors and fixes\n## Current state\n## Next steps\n"
    "Do not invent anything that is not in the conversation."
)
# A rendered message longer than this is cut in the summary's input: the summary is
# about what happened, and the full text stays in the workspace artifacts.
MAX_MESSAGE_CHARS = 4_000


class MemoryActivities:
    """Compaction with an injected OpenAI-compatible client (``max_retries=0``).

    Args:
        client: The OpenAI-compatible client.
        transcripts: Where the conversations referenced by requests are kept.
        families: Per-family defaults, applied as for the agent's own calls.
        prices: What tokens cost, for ``usage.cost_usd``.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        transcripts: TranscriptStore | None = None,
        families: ModelFamilies | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self._client = client
        self._transcripts = transcripts
        self._families = families or ModelFamilies()
        self._prices = prices or PriceTable()

    async def _messages(self, request: SummarizeRequest) -> list[Message]:
        if request.transcript_ref is None:
            return request.messages
        if self._transcripts is None:
            raise _not_found(request.transcript_ref)
        try:
            messages = await self._transcripts.load(request.transcript_ref)
        except StoreMiss:
            raise _not_found(request.transcript_ref) from None
        return messages[request.start : request.end]

    @activity.defn(name="duragent.summarize")
    async def summarize(self, request: SummarizeRequest) -> SummarizeResult:
        """Ask the model for a structured summary of the messages."""
        # One heartbeat timer for the whole attempt: the store's reads are I/O too.
        async with heartbeating():
            return await self._summarize(request)

    async def _summarize(self, request: SummarizeRequest) -> SummarizeResult:
        messages = await self._messages(request)
        conversation = "\n\n".join(render(m) for m in messages)
        model = self._families.resolve(request.model, request.options)
        try:
            response = await self._client.chat.completions.create(
                **model.request_fields(),
                messages=[
                    {"role": "system", "content": SUMMARY_SYSTEM},
                    {"role": "user", "content": conversation},
                ],
            )
        except openai.OpenAIError as err:
            raise llm_error_to_application_error(err) from err
        usage = response.usage
        text = response.choices[0].message.content if response.choices else None
        tokens_in = usage.prompt_tokens if usage else 0
        tokens_out = usage.completion_tokens if usage else 0
        return SummarizeResult(
            summary=(text or "").strip() or "(the model returned an empty summary)",
            usage=TokenUsage(
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=self._prices.cost([model.name, response.model], tokens_in, tokens_out),
            ),
            attempt=activity.info().attempt,
        )


def _not_found(ref: str) -> ApplicationError:
    # The workflow holds the messages and sends them inline instead.
    return ApplicationError(
        f"transcript {ref} is not in the store",
        type=LLMErrorType.TRANSCRIPT_NOT_FOUND,
        non_retryable=True,
    )


def render(message: Message) -> str:
    """One message as plain text for the summariser."""
    who = f"tool {message.name}" if message.role is Role.TOOL else message.role.value
    body = message.content or ""
    if len(body) > MAX_MESSAGE_CHARS:
        body = body[:MAX_MESSAGE_CHARS] + f"… [{len(body) - MAX_MESSAGE_CHARS} more characters]"
    calls = "".join(f"\n  calls {c.name}({c.arguments})" for c in message.tool_calls)
    return f"[{who}] {body}{calls}"
