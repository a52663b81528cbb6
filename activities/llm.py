"""The LLM activity: one Chat Completions call through the real ``openai`` client.

The client is built by the worker with ``max_retries=0``: Temporal owns retries, so
every attempt shows in history with its error, and a 429's ``Retry-After`` becomes the
activity's ``next_retry_delay`` (see :mod:`activities.errors`).

The request body goes out through ``client.post("/chat/completions", ...)``, the
client's own request path (auth, headers, timeouts, errors, SSE parsing, the same
response types), but without the ``chat.completions.create`` transform: that walks
every message against its TypedDict on each call, a cost that grows with the
transcript (27 ms at 201 messages), for messages that are already in wire shape here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletion
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duragent.activities.errors import (
    LLMErrorType,
    ToolError,
    llm_error_to_application_error,
)
from duragent.activities.heartbeat import heartbeating
from duragent.activities.limits import bound_turn
from duragent.activities.llm_providers import Provider, split_model
from duragent.activities.models import (
    LLMRequest,
    LLMResult,
    Message,
    ModelOptions,
    Role,
    TokenUsage,
    ToolCall,
)
from duragent.activities.providers import ModelFamilies, PriceTable, ResolvedModel, merge_options
from duragent.activities.store import StoreMiss, TranscriptStore
from duragent.activities.tokens import TokenPublisher
from duragent.activities.tools.control import TASK_FINISH, typed_finish_tool
from duragent.activities.tools.image import image_data_url, image_refs
from duragent.activities.tools.registry import ToolRegistry
from duragent.activities.tools.workspace import Workspace

_PATH = "/chat/completions"
# What ``chat.completions.create`` asks of the client besides the body: bearer auth.
_OPTIONS: openai.RequestOptions = {"security": {"bearer_auth": True}}


class LLMActivities:
    """LLM calls with an injected OpenAI-compatible client (built once per worker).

    Args:
        client: The OpenAI-compatible client, with ``max_retries=0``.
        registry: Tools, whose schemas are sent by name.
        transcripts: Where conversations are kept between calls; without it every
            request must carry its whole transcript.
        workspace: Where large tool outputs and images referenced by the transcript live.
        families: Per-family defaults and flags (name suffixes, extra body, reasoning);
            the built-in table when ``None``.
        prices: What tokens cost, for ``usage.cost_usd``; the built-in table when ``None``.
        providers: Named providers besides the default one (``client``): an agent's model
            ``NAME:model`` goes to ``providers[NAME]`` (see :mod:`activities.llm_providers`).
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        registry: ToolRegistry,
        *,
        transcripts: TranscriptStore | None = None,
        workspace: Workspace | None = None,
        families: ModelFamilies | None = None,
        prices: PriceTable | None = None,
        providers: Mapping[str, Provider] | None = None,
    ) -> None:
        clients = [client, *(p.client for p in (providers or {}).values())]
        if any(c.max_retries != 0 for c in clients):
            raise ValueError("build the OpenAI client with max_retries=0: Temporal retries")
        self._client = client
        self._providers = dict(providers or {})
        self._registry = registry
        self._transcripts = transcripts
        self._workspace = workspace
        self._families = families or ModelFamilies()
        self._prices = prices or PriceTable()

    @activity.defn(name="duragent.llm_chat")
    async def chat(self, request: LLMRequest) -> LLMResult:
        """Rebuild the prompt, send it, return the assistant's turn with token usage."""
        # One heartbeat timer for the whole attempt, not one per chunk: cheaper per chunk,
        # a cancel still reaches a call that waits on a silent socket, and the store's
        # reads and writes (an object store's round trips on a cold cache) are covered too,
        # so a slow step never passes for a dead worker (5 s timeout).
        async with heartbeating():
            return await self._chat(request)

    async def _chat(self, request: LLMRequest) -> LLMResult:
        transcript = await self._transcript(request)
        client, name, options = self._provider(request)
        model = self._families.resolve(name, options, temperature=request.temperature)
        body = await self._body(request, model, transcript)
        try:
            if request.stream:
                result = await self._stream(client, body, TokenPublisher(request.events))
            else:
                result = await self._complete(client, body)
        except openai.OpenAIError as err:
            raise llm_error_to_application_error(err) from err
        # Bounded before it is stored or returned: an oversize turn could not be recorded.
        result.message = bound_turn(result.message)
        usage = result.usage
        cost = self._prices.cost(
            [model.name, result.model], usage.input_tokens, usage.output_tokens
        )
        result.usage = usage.model_copy(update={"cost_usd": cost})
        result.attempt = activity.info().attempt
        if self._transcripts is not None and request.system is not None:
            result.transcript_ref = await self._transcripts.append(
                request.base_ref, [*request.messages, result.message]
            )
        return result

    def _provider(self, request: LLMRequest) -> tuple[AsyncOpenAI, str, ModelOptions | None]:
        """The client that serves the request's model, the name it knows, the options.

        A named provider's default options come first; the agent's own override them.
        """
        split = split_model(request.model, self._providers)
        if split.provider is None:
            return self._client, split.model, request.options
        provider = self._providers[split.provider]
        options = merge_options(provider.options, request.options)
        return provider.client, split.model, options

    async def _transcript(self, request: LLMRequest) -> list[Message]:
        if request.base_ref is None:
            return list(request.messages)
        if self._transcripts is None:
            raise _transcript_not_found("this worker keeps no transcripts")
        try:
            return [*(await self._transcripts.load(request.base_ref)), *request.messages]
        except StoreMiss:
            raise _transcript_not_found(
                f"transcript {request.base_ref} is not in the store"
            ) from None

    async def _body(
        self, request: LLMRequest, model: ResolvedModel, transcript: list[Message]
    ) -> dict[str, Any]:
        system = [Message(role=Role.SYSTEM, content=request.system)] if request.system else []
        reasoning = model.send_reasoning
        workspace = self._scope(request.workspace)
        messages = [await self._wire(m, reasoning, workspace) for m in (*system, *transcript)]
        messages.extend(await self._fresh_images(transcript, workspace))
        body = model.request_fields()
        # ``create`` sends extra_body merged over the other fields (one level, theirs win).
        extra = body.pop("extra_body", None) or {}
        body["messages"] = messages
        tools = self._registry.schemas(request.tool_names)
        if request.finish_output_schema is not None:
            tools = [
                typed_finish_tool(t, request.finish_output_schema)
                if t["function"]["name"] == TASK_FINISH
                else t
                for t in tools
            ]
        if tools:
            body["tools"] = tools
        body.update(extra)
        return body

    def _scope(self, folder: str | None) -> Workspace | None:
        """The agent's folder of the workspace (where its tools wrote), or the root."""
        if self._workspace is None or folder is None:
            return self._workspace
        try:
            return self._workspace.scoped(folder)
        except ToolError as err:  # checked where it entered; an old or forged request
            activity.logger.warning("workspace %r refused: %s", folder, err)
            return None

    async def _wire(
        self, message: Message, send_reasoning: bool, workspace: Workspace | None
    ) -> dict[str, Any]:
        """A message in wire shape, with a large result read back from its artifact."""
        if message.artifact and not message.stubbed and workspace is not None:
            try:
                full = await workspace.read_text(message.artifact)
            except ToolError:
                activity.logger.warning("artifact %s is gone; sending its stub", message.artifact)
            else:
                message = message.model_copy(update={"content": full})
        return to_openai_message(message, send_reasoning=send_reasoning)

    async def _fresh_images(
        self, transcript: list[Message], workspace: Workspace | None
    ) -> list[dict[str, Any]]:
        """Images that tools of the last turn attached, as a user message of image parts.

        Chat Completions only takes images in user messages; they are sent to the next
        call only, and history keeps the ``image-ref:`` line, never the pixels.
        """
        last_turn = next(
            (i for i in range(len(transcript) - 1, -1, -1) if transcript[i].role is Role.ASSISTANT),
            -1,
        )
        parts: list[dict[str, Any]] = []
        for message in transcript[last_turn + 1 :]:
            if message.role is not Role.TOOL or workspace is None:
                continue
            for ref in image_refs(message.content or ""):
                try:
                    url = await image_data_url(workspace, ref)
                except ToolError as err:
                    activity.logger.warning("image %s not sent: %s", ref, err)
                    continue
                parts.append({"type": "image_url", "image_url": {"url": url}})
        if not parts:
            return []
        intro = {"type": "text", "text": "Images attached by the tools above:"}
        return [{"role": "user", "content": [intro, *parts]}]

    async def _complete(self, client: AsyncOpenAI, body: dict[str, Any]) -> LLMResult:
        response = await client.post(_PATH, cast_to=ChatCompletion, body=body, options=_OPTIONS)
        if not response.choices:
            raise ApplicationError("LLM returned no choices", type=LLMErrorType.BAD_RESPONSE)
        choice = response.choices[0]
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "{}")
            for c in choice.message.tool_calls or []
            if c.type == "function"
        ]
        message = Message(
            role=Role.ASSISTANT,
            content=choice.message.content,
            tool_calls=calls,
            reasoning=_reasoning_of(choice.message.model_extra) or None,
        )
        usage = response.usage
        return LLMResult(
            message=message,
            usage=TokenUsage(
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
            ),
            finish_reason=choice.finish_reason,
            model=response.model,
        )

    async def _stream(
        self, client: AsyncOpenAI, body: dict[str, Any], tokens: TokenPublisher
    ) -> LLMResult:
        acc = StreamAccumulator()
        stream = await client.post(
            _PATH,
            cast_to=ChatCompletion,
            body={**body, "stream": True, "stream_options": {"include_usage": True}},
            options=_OPTIONS,
            stream=True,
            # Chunks stay the decoded JSON: building a ``ChatCompletionChunk`` model for
            # each of them was the larger part of a streamed call's worker CPU.
            stream_cls=AsyncStream[object],
        )
        async with stream, tokens:
            async for chunk in stream:
                text, reasoning = len(acc.content), len(acc.reasoning)
                acc.add(chunk)
                tokens.add("".join(acc.content[text:]), "".join(acc.reasoning[reasoning:]))
        return acc.result()


def _reasoning_of(extra: dict[str, Any] | None) -> str:
    """Reasoning text of a message or delta, or ``""``.

    Servers call it ``reasoning_content`` (DeepSeek, vLLM, Qwen, GLM) or ``reasoning``
    (OpenRouter, Ollama); neither is in the openai types, so it is an extra field.
    """
    if not extra:
        return ""
    text = extra.get("reasoning_content") or extra.get("reasoning")
    return text if isinstance(text, str) else ""


@dataclass
class _CallSlot:
    id: str
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAccumulator:
    """Assembles streamed ``chat.completion.chunk`` deltas into one assistant turn.

    The openai package has its own (``ChatCompletionStreamState``), but as of openai
    3.52 it raises on tool-call fragments without an ``index``, appends a ``name`` that
    a server repeats in every delta, and re-validates the whole snapshot on each chunk
    (about 100 us a chunk against well under 1 us here). So this one follows the same
    rules for the normal shape, plus what real servers send:

    - a fragment with an ``index`` belongs to that call, unless it brings a new ``id``
      (some servers reuse index 0 for every call): then a new call starts;
    - a fragment without an ``index`` continues the last call, unless it brings a new
      ``id``, or, with no id, a new name after the last call already had arguments;
    - a ``name`` equal to the call's name so far is a repeat, not a fragment;
    - ``reasoning_content`` (or ``reasoning``) deltas are kept apart from the content.
    """

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[_CallSlot] = field(default_factory=list)
    finish_reason: str | None = None
    model: str = ""
    usage: TokenUsage = field(default_factory=TokenUsage)
    _by_index: dict[int, _CallSlot] = field(default_factory=dict)

    def add(self, chunk: Any) -> None:
        """Take one chunk: the decoded JSON of one ``data:`` line of the stream.

        Raises:
            ApplicationError: The chunk is not shaped like a ``chat.completion.chunk``
                (retryable: a server's glitch, not the agent's fault).
        """
        try:
            self._add(chunk)
        except (AttributeError, TypeError, ValueError) as err:
            raise ApplicationError(
                f"LLM stream sent a malformed chunk ({type(err).__name__}: {err})",
                type=LLMErrorType.BAD_RESPONSE,
            ) from None

    def _add(self, chunk: dict[str, Any]) -> None:
        self.model = chunk.get("model") or self.model
        usage = chunk.get("usage")
        if usage:
            self.usage = TokenUsage(
                input_tokens=usage.get("prompt_tokens") or 0,
                output_tokens=usage.get("completion_tokens") or 0,
            )
        for choice in chunk.get("choices") or ():
            if choice.get("index"):
                continue  # one choice is asked for; n > 1 is not an agent's turn
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            delta = choice.get("delta") or {}
            if content := delta.get("content"):
                self.content.append(content)
            if reasoning := _reasoning_of(delta):
                self.reasoning.append(reasoning)
            for fragment in delta.get("tool_calls") or ():
                self._add_call(fragment)

    def _add_call(self, fragment: dict[str, Any]) -> None:
        function = fragment.get("function") or {}
        name = function.get("name") or ""
        slot = self._slot(fragment.get("index"), fragment.get("id") or "", name)
        if name and name != slot.name:
            slot.name += name
        if arguments := function.get("arguments"):
            slot.arguments.append(arguments)

    def _slot(self, index: int | None, call_id: str, name: str) -> _CallSlot:
        slot: _CallSlot | None
        if index is not None:
            slot = self._by_index.get(index)
        else:
            slot = self.calls[-1] if self.calls else None
        if slot is not None and call_id and slot.id and call_id != slot.id:
            slot = None  # a new id: a new call
        elif slot is not None and index is None and not call_id and slot.arguments:
            if name and name != slot.name:
                slot = None  # a new name after arguments, with neither index nor id
        if slot is None:
            slot = _CallSlot(id=call_id)
            self.calls.append(slot)
        elif call_id and not slot.id:
            slot.id = call_id
        if index is not None:
            self._by_index[index] = slot
        return slot

    def result(self) -> LLMResult:
        """The assembled turn.

        Raises:
            ApplicationError: The stream ended before a ``finish_reason`` (retryable).
        """
        if self.finish_reason is None:
            # The stream closed before the model said it was done: a dropped connection.
            # Retrying gives a whole answer; acting on half of one would not.
            raise ApplicationError(
                "LLM stream ended before a finish_reason (truncated response)",
                type=LLMErrorType.BAD_RESPONSE,
            )
        calls = [
            ToolCall(
                id=s.id or f"call_{n}",
                name=s.name,
                arguments="".join(s.arguments) or "{}",
            )
            for n, s in enumerate(self.calls)
        ]
        return LLMResult(
            message=Message(
                role=Role.ASSISTANT,
                content="".join(self.content) or None,
                tool_calls=calls,
                reasoning="".join(self.reasoning) or None,
            ),
            usage=self.usage,
            finish_reason=self.finish_reason,
            model=self.model,
        )


def to_openai_message(message: Message, *, send_reasoning: bool = False) -> dict[str, Any]:
    """A transcript message in the Chat Completions wire shape.

    Args:
        message: The transcript message.
        send_reasoning: Include an assistant's reasoning as ``reasoning_content`` (only
            for families that want it back; others reject or ignore it).
    """
    out: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if send_reasoning and message.reasoning:
        out["reasoning_content"] = message.reasoning
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.role is Role.TOOL and message.name:
        out["name"] = message.name
    return out


def _transcript_not_found(message: str) -> ApplicationError:
    # Not retryable here: the workflow holds the transcript and resends it whole.
    return ApplicationError(message, type=LLMErrorType.TRANSCRIPT_NOT_FOUND, non_retryable=True)
