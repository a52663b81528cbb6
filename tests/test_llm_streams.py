"""Streams, options, prices and attempts of the LLM activities, as real servers send them.

The scripted server emits each stream shape real OpenAI-compatible servers use; the
activity reads them with the real ``openai`` client over real HTTP.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.lib.streaming.chat import ChatCompletionStreamState
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from duragent.activities.errors import LLMErrorType
from duragent.activities.limits import MAX_TEXT_BYTES
from duragent.activities.llm import LLMActivities, StreamAccumulator
from duragent.activities.memory import MemoryActivities
from duragent.activities.models import (
    LLMRequest,
    LLMResult,
    Message,
    ModelOptions,
    Role,
    SummarizeRequest,
    ToolCall,
)
from duragent.activities.providers import FamilyRule, ModelFamilies, Price, PriceTable
from duragent.activities.tools import ToolRegistry, default_tools
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.worker.settings import Settings, SettingsError
from duragent.workflows.models import LLMPolicy
from tests.conftest import Harness, eventually
from tests.test_agent import finish, start

WRITE = {"path": "a.txt", "content": "hello there, " * 6}
LIST = {"path": "."}
TWO_CALLS = [
    {"name": "_write_file", "arguments": WRITE, "id": "call_w"},
    {"name": "_list_files", "arguments": LIST, "id": "call_l"},
]
SHAPES = ["indexed", "no_index", "whole_no_index", "repeat_name", "reused_index"]


@pytest.fixture
async def server() -> AsyncIterator[ScriptedLLMServer]:
    # Its own server: tests here add a default script ("*") per call.
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture
async def oai(server: ScriptedLLMServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
        yield client


def activities(oai: AsyncOpenAI, **kwargs: Any) -> LLMActivities:
    return LLMActivities(oai, ToolRegistry(default_tools()), **kwargs)


async def chat(
    server: ScriptedLLMServer,
    acts: LLMActivities,
    step: dict[str, Any],
    *,
    stream: bool = True,
    model: str = "scripted",
    options: ModelOptions | None = None,
    messages: list[Message] | None = None,
    env: ActivityEnvironment | None = None,
) -> LLMResult:
    server.add_script({"name": f"s{len(server.requests)}", "match": "*", "steps": [step]})
    request = LLMRequest(
        model=model,
        messages=messages or [Message(role=Role.USER, content="hello")],
        tool_names=["_write_file", "_list_files"],
        stream=stream,
        options=options,
    )
    return await (env or ActivityEnvironment()).run(acts.chat, request)


# --- stream shapes -------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
async def test_two_tool_calls_stay_two_in_every_stream_shape(
    server: ScriptedLLMServer, oai: AsyncOpenAI, shape: str
) -> None:
    step = {"content": "two things", "tool_calls": TWO_CALLS, "stream_tool_calls": shape}
    result = await chat(server, activities(oai), step)
    assert result.message.tool_calls == [
        ToolCall(id="call_w", name="_write_file", arguments=json.dumps(WRITE)),
        ToolCall(id="call_l", name="_list_files", arguments=json.dumps(LIST)),
    ]
    assert result.message.content == "two things"
    assert result.finish_reason == "tool_calls"


async def test_the_server_really_sends_those_shapes(
    server: ScriptedLLMServer, oai: AsyncOpenAI
) -> None:
    # The shapes differ on the wire, or the test above would prove nothing.
    seen: dict[str, list[dict[str, Any]]] = {}
    for shape in SHAPES:
        server.add_script(
            {
                "name": shape,
                "match": f"[{shape}]",
                "steps": [{"tool_calls": TWO_CALLS, "stream_tool_calls": shape}],
            }
        )
        stream = await oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"[{shape}]"}], stream=True
        )
        seen[shape] = [
            tc.to_dict() async for chunk in stream for tc in chunk.choices[0].delta.tool_calls or []
        ]
    assert all("index" not in f for f in seen["no_index"] + seen["whole_no_index"])
    assert len(seen["whole_no_index"]) == 2
    assert all(f["function"]["name"] for f in seen["repeat_name"])
    assert {f["index"] for f in seen["reused_index"]} == {0}
    assert [f["index"] for f in seen["indexed"] if "id" in f] == [0, 1]


async def test_a_stream_without_ids_or_index_starts_a_call_per_new_name() -> None:
    acc = StreamAccumulator()
    for name, args in (("_write_file", '{"path": "a"}'), ("_list_files", "{}")):
        acc.add(_chunk({"tool_calls": [{"function": {"name": name, "arguments": args}}]}))
    acc.add(_chunk({}, finish_reason="tool_calls"))
    calls = acc.result().message.tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_0", "_write_file", '{"path": "a"}'),
        ("call_1", "_list_files", "{}"),
    ]


async def test_the_normal_shape_assembles_as_the_openai_package_does(
    server: ScriptedLLMServer, oai: AsyncOpenAI
) -> None:
    # Where openai's own ChatCompletionStreamState works, ours agrees with it.
    server.add_script(
        {
            "name": "normal",
            "steps": [{"content": "Let me see. " * 5, "tool_calls": TWO_CALLS}],
            "match": "*",
        }
    )
    ours, theirs = StreamAccumulator(), ChatCompletionStreamState()
    stream = await oai.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        ours.add(chunk.to_dict())  # the activity takes the chunk's JSON, as sent
        theirs.handle_chunk(chunk)
    mine, final = ours.result(), theirs.get_final_completion()
    message = final.choices[0].message
    assert mine.message.content == message.content
    assert [(c.id, c.name, c.arguments) for c in mine.message.tool_calls] == [
        (c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []
    ]
    assert final.usage is not None
    assert (mine.usage.input_tokens, mine.usage.output_tokens) == (
        final.usage.prompt_tokens,
        final.usage.completion_tokens,
    )


# --- reasoning -----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_is_kept_apart_from_the_content(
    server: ScriptedLLMServer, oai: AsyncOpenAI, stream: bool, field: str
) -> None:
    thought = "The user greets me; a short greeting back will do. " * 3
    step = {"content": "Hello!", "reasoning": thought, "reasoning_field": field}
    result = await chat(server, activities(oai), step, stream=stream)
    assert result.message.reasoning == thought
    assert result.message.content == "Hello!"


def _history() -> list[Message]:
    return [
        Message(role=Role.USER, content="hello"),
        Message(role=Role.ASSISTANT, content="Hi!", reasoning="be brief"),
        Message(role=Role.USER, content="again"),
    ]


@pytest.mark.parametrize(("model", "sent"), [("scripted", False), ("glm-4.6", True)])
async def test_reasoning_goes_back_only_to_families_that_want_it(
    server: ScriptedLLMServer, oai: AsyncOpenAI, model: str, sent: bool
) -> None:
    await chat(server, activities(oai), {"content": "ok"}, model=model, messages=_history())
    assistant = [m for m in server.requests[-1].body["messages"] if m["role"] == "assistant"]
    assert assistant[0].get("reasoning_content") == ("be brief" if sent else None)


# --- options and families ------------------------------------------------------------


async def test_model_options_reach_the_request(server: ScriptedLLMServer, oai: AsyncOpenAI) -> None:
    options = ModelOptions(
        reasoning_effort="low",
        max_completion_tokens=321,
        top_p=0.5,
        seed=7,
        stop=["END"],
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    await chat(server, activities(oai), {"content": "ok"}, options=options)
    body = server.requests[-1].body
    assert body["reasoning_effort"] == "low"
    assert body["max_completion_tokens"] == 321
    assert (body["top_p"], body["seed"], body["stop"]) == (0.5, 7, ["END"])
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "temperature" not in body  # unset options are not sent


@pytest.mark.parametrize(
    ("model", "options", "expected", "absent"),
    [
        ("o4-mini-high", None, {"model": "o4-mini", "reasoning_effort": "high"}, []),
        # the agent's own option wins over the suffix
        ("o4-mini-high", ModelOptions(reasoning_effort="low"), {"reasoning_effort": "low"}, []),
        (
            "deepseek-reasoner",
            ModelOptions(max_completion_tokens=100),
            {"model": "deepseek-reasoner", "temperature": 0.6, "max_tokens": 100},
            ["max_completion_tokens"],
        ),
        (
            "Qwen/Qwen3-32B-nothink",
            None,
            {"model": "Qwen/Qwen3-32B", "chat_template_kwargs": {"enable_thinking": False}},
            [],
        ),
        ("glm-4.6", ModelOptions(temperature=0.2), {"thinking": {"type": "enabled"}}, []),
        (
            "gemini-2.5-flash-thoughts",
            None,
            {
                "model": "gemini-2.5-flash",
                "extra_body": {"google": {"thinking_config": {"include_thoughts": True}}},
            },
            [],
        ),
        ("gpt-4o-mini", None, {"model": "gpt-4o-mini"}, ["temperature", "reasoning_effort"]),
    ],
)
async def test_family_defaults_under_the_agents_options(
    server: ScriptedLLMServer,
    oai: AsyncOpenAI,
    model: str,
    options: ModelOptions | None,
    expected: dict[str, Any],
    absent: list[str],
) -> None:
    await chat(server, activities(oai), {"content": "ok"}, model=model, options=options)
    body = server.requests[-1].body
    assert {k: body.get(k) for k in expected} == expected
    assert [k for k in absent if k in body] == []


def test_extra_body_merges_key_by_key() -> None:
    families = ModelFamilies(
        [FamilyRule(match="m", options=ModelOptions(extra_body={"a": {"x": 1, "y": 2}, "b": 1}))]
    )
    resolved = families.resolve("m", ModelOptions(extra_body={"a": {"y": 3}}), temperature=0.1)
    assert resolved.request_fields() == {
        "model": "m",
        "temperature": 0.1,
        "extra_body": {"a": {"x": 1, "y": 3}, "b": 1},
    }


def test_a_family_file_extends_the_table(tmp_path: Path) -> None:
    path = tmp_path / "families.yaml"
    path.write_text(
        '- match: "^acme-"\n'
        "  send_reasoning: true\n"
        "  options: {seed: 42, extra_body: {enable_thinking: true}}\n"
        '- match: "-high$"\n'
        "  options: {reasoning_effort: medium}\n"  # later rules win over built-in ones
    )
    settings = Settings.from_env({"DURAGENT_MODEL_FAMILIES": str(path)})
    resolved = settings.model_families.resolve("acme-1-high")
    assert resolved.name == "acme-1" and resolved.send_reasoning
    assert resolved.request_fields() == {
        "model": "acme-1",
        "seed": 42,
        "reasoning_effort": "medium",
        "extra_body": {"enable_thinking": True},
    }


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("DURAGENT_MODEL_FAMILIES", '[{"match": "("}]', "entry 0"),
        ("DURAGENT_MODEL_FAMILIES", '[{"match": "x", "optoins": {}}]', "optoins"),
        ("DURAGENT_PRICES", '{"match": "x"}', "expected a list"),
        ("DURAGENT_PRICES", '[{"match": "x", "input_per_mtok": -1, "output_per_mtok": 1}]', "0"),
    ],
)
def test_a_bad_table_file_is_a_clear_settings_error(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / "table.json"
    path.write_text(content)
    with pytest.raises(SettingsError, match=name) as err:
        Settings.from_env({name: str(path)})
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_missing_table_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"DURAGENT_PRICES.*cannot read"):
        Settings.from_env({"DURAGENT_PRICES": str(tmp_path / "nope.yaml")})


# --- prices and attempts -------------------------------------------------------------


def test_the_price_table_first_match_wins_and_unknown_models_cost_nothing() -> None:
    table = PriceTable()
    mini, full = table.price("gpt-4o-mini-2024-07-18"), table.price("openai/gpt-4o")
    assert mini is not None and (mini.input_per_mtok, mini.output_per_mtok) == (0.15, 0.60)
    assert full is not None and full.input_per_mtok == 2.50
    assert table.cost(["my-local-llama"], 10_000, 10_000) == 0.0
    # the name sent first, then the one the provider reported
    assert table.cost(["local-alias", "gpt-4o-mini"], 1_000_000, 0) == pytest.approx(0.15)


def test_a_price_file_comes_before_the_built_in_prices(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps([{"match": "gpt-4o", "input_per_mtok": 1, "output_per_mtok": 2}]))
    table = Settings.from_env({"DURAGENT_PRICES": str(path)}).prices
    assert table.cost(["gpt-4o-mini"], 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert table.cost(["gpt-4.1"], 1_000_000, 0) == pytest.approx(2.0)  # built-in still there


def _env(attempt: int) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    return env


@pytest.mark.parametrize("stream", [True, False])
async def test_the_llm_result_carries_its_cost_and_attempt(
    server: ScriptedLLMServer, oai: AsyncOpenAI, stream: bool
) -> None:
    prices = PriceTable([Price(match="^priced$", input_per_mtok=2.0, output_per_mtok=10.0)])
    step = {"content": "ok", "usage": {"prompt_tokens": 3_000, "completion_tokens": 500}}
    result = await chat(
        server, activities(oai, prices=prices), step, stream=stream, model="priced", env=_env(3)
    )
    assert result.usage.cost_usd == pytest.approx((3_000 * 2.0 + 500 * 10.0) / 1e6)
    assert result.attempt == 3
    unpriced = await chat(server, activities(oai, prices=prices), step, stream=stream)
    assert unpriced.usage.cost_usd == 0.0 and unpriced.attempt == 1


async def test_the_summary_carries_its_cost_and_attempt_and_uses_the_family(
    server: ScriptedLLMServer, oai: AsyncOpenAI
) -> None:
    server.add_script(
        {
            "name": "summary",
            "match": "*",
            "steps": [{"content": "## Decisions\n- none", "usage": {"prompt_tokens": 1_000_000}}],
        }
    )
    memory = MemoryActivities(oai)
    request = SummarizeRequest(
        model="gpt-4o-mini-high", messages=[Message(role=Role.USER, content="long story")]
    )
    result = await _env(2).run(memory.summarize, request)
    assert result.summary.startswith("## Decisions")
    assert result.usage.cost_usd == pytest.approx(0.15, rel=1e-3)  # 1M input tokens, ~0 output
    assert result.attempt == 2
    body = server.requests[-1].body
    assert (body["model"], body["reasoning_effort"]) == ("gpt-4o-mini", "high")


# --- cancellation ---------------------------------------------------------------------


async def _cancel_during_a_silent_call(harness: Harness) -> tuple[Any, list[Any]]:
    # No chunk arrives for a minute: only the activity's heartbeat timer can carry the
    # cancel to it (there is no per-chunk heartbeat any more).
    task = harness.script([{"content": "late", "faults": [{"delay_seconds": 60}]}, finish()])
    async with harness.worker():
        handle = await start(harness, task, llm_policy=LLMPolicy(heartbeat_seconds=3))
        await eventually(harness.requests, "the LLM call is in flight")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()  # long before the provider's minute is up
        events = [e.event_type async for e in handle.fetch_history_events()]
    return handle, events


async def test_a_cancel_reaches_a_call_that_waits_on_a_silent_provider(harness: Harness) -> None:
    _, events = await _cancel_during_a_silent_call(harness)
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED in events
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT not in events


async def test_a_cancel_during_an_llm_call_ends_the_run_cancelled(harness: Harness) -> None:
    handle, _ = await _cancel_during_a_silent_call(harness)
    assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED


# --- helpers -------------------------------------------------------------------------


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


async def test_oversize_reasoning_is_truncated(server: ScriptedLLMServer, oai: AsyncOpenAI) -> None:
    step = {"content": "short", "reasoning": "think " * (MAX_TEXT_BYTES // 3)}
    result = await chat(server, activities(oai), step, stream=False)
    assert result.message.reasoning is not None
    assert len(result.message.reasoning.encode()) <= MAX_TEXT_BYTES
    assert "bytes cut" in result.message.reasoning and result.message.content == "short"


@pytest.mark.parametrize(
    "chunk", [{"choices": "x"}, {"choices": [{"delta": {"tool_calls": [7]}}]}, [1, 2]]
)
def test_a_malformed_chunk_is_a_retryable_bad_response(chunk: Any) -> None:
    with pytest.raises(ApplicationError) as raised:
        StreamAccumulator().add(chunk)
    assert raised.value.type == LLMErrorType.BAD_RESPONSE
    assert not raised.value.non_retryable
    assert "malformed chunk" in str(raised.value)
