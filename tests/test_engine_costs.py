"""The engine's per-call savings keep its behaviour: cached tool schemas, a raw body."""

from __future__ import annotations

from typing import Any

import pytest
from openai import AsyncOpenAI
from temporalio.api.enums.v1 import EventType
from temporalio.testing import ActivityEnvironment

from duragent.activities.llm import LLMActivities, to_openai_message
from duragent.activities.models import LLMRequest, Message, ModelOptions, Role, ToolCall
from duragent.activities.tools import ToolRegistry, default_tools
from duragent.worker.client import start_agent
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.workflows.models import AgentInput, AgentStatus, LLMPolicy
from tests.conftest import Harness


def test_tool_schemas_are_built_once_per_worker() -> None:
    registry = ToolRegistry(default_tools())
    names = ["_read_file", "_task_finish", "no_such_tool"]
    first = registry.schemas(names)
    again = registry.schemas(iter(names))  # any iterable of the same names
    assert [t["function"]["name"] for t in first] == ["_read_file", "_task_finish"]
    assert all(a is b for a, b in zip(first, again, strict=True))
    other = registry.schemas(["_task_finish"])
    assert other[0] is first[1]  # one entry per tool, whatever list it is in


def test_a_changed_schema_list_does_not_change_the_next_one() -> None:
    registry = ToolRegistry(default_tools())
    first = registry.schemas(["_read_file"])
    first.clear()
    assert [t["function"]["name"] for t in registry.schemas(["_read_file"])] == ["_read_file"]


# --- the request body goes out as is, through the same client ----------------------

TRANSCRIPT = [
    Message(role=Role.USER, content="[as is] read a"),
    Message(
        role=Role.ASSISTANT,
        content=None,
        reasoning="a is the file",
        tool_calls=[ToolCall(id="c1", name="_read_file", arguments='{"path": "a"}')],
    ),
    Message(role=Role.TOOL, content="contents of a", tool_call_id="c1", name="_read_file"),
]
OPTIONS = ModelOptions(
    temperature=0.3,
    seed=7,
    stop=["END"],
    max_completion_tokens=99,
    extra_body={"top_k": 5, "chat_template_kwargs": {"enable_thinking": False}, "seed": 8},
)
TOOLS = ["_read_file", "_task_finish"]


@pytest.mark.parametrize("stream", [True, False])
async def test_the_body_is_the_one_the_client_would_have_built(stream: bool) -> None:
    step = {"content": "ok", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    script = {"name": "as-is", "match": "[as is]", "steps": [step, step]}
    # An api key on the server: a request without the bearer header is refused.
    with ScriptedLLMServer(api_key="sekrit", scripts=[script]) as server:
        async with AsyncOpenAI(base_url=server.base_url, api_key="sekrit", max_retries=0) as oai:
            registry = ToolRegistry(default_tools())
            request = LLMRequest(
                model="scripted",
                system="be brief",
                messages=TRANSCRIPT,
                tool_names=TOOLS,
                stream=stream,
                options=OPTIONS,
            )
            result = await ActivityEnvironment().run(LLMActivities(oai, registry).chat, request)
            # The same call through chat.completions.create, with its transform.
            system = Message(role=Role.SYSTEM, content="be brief")
            extra: dict[str, Any] = (
                {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
            )
            reply = await oai.chat.completions.create(
                model="scripted",
                messages=[to_openai_message(m) for m in (system, *TRANSCRIPT)],  # type: ignore[misc]
                tools=registry.schemas(TOOLS),  # type: ignore[arg-type]
                temperature=0.3,
                seed=7,
                stop=["END"],
                max_completion_tokens=99,
                extra_body=OPTIONS.extra_body,
                **extra,
            )
            if stream:
                async for _ in reply:  # type: ignore[attr-defined]
                    pass
        ours, theirs = (r.body for r in server.requests)
        statuses = [r.status for r in server.requests]

    assert statuses == [200, 200]
    assert ours == theirs
    assert ours["seed"] == 8 and ours["top_k"] == 5  # extra_body wins, as with create
    assert ("stream" in ours) is stream
    assert result.message.content == "ok"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (3, 2)


# --- the LLM heartbeat timeout: short for recovery, never too short for a slow model ---


async def test_a_model_slower_than_the_heartbeat_timeout_is_not_taken_for_dead(
    harness: Harness,
) -> None:
    policy = LLMPolicy()
    assert policy.heartbeat_seconds is not None and policy.heartbeat_seconds <= 6  # recovery
    slow = 12.0  # more than twice the heartbeat timeout, before the first byte
    assert slow > 2 * policy.heartbeat_seconds
    finish = {"name": "_task_finish", "arguments": {"message": "done"}}
    task = harness.script(
        [{"content": "thinking", "delay_seconds": slow}, {"tool_calls": [finish]}]
    )
    async with harness.worker():
        handle = await start_agent(
            harness.client, AgentInput(task=task, model="scripted"), task_queue=harness.task_queue
        )
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    assert [r.step for r in harness.requests()] == [0, 1]  # each step asked once
    events = [e async for e in handle.fetch_history_events()]
    assert not [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT]
    started = [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert started and set(started) == {1}
