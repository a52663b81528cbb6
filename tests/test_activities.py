"""Activities alone, in the SDK's ActivityEnvironment; the LLM one over real HTTP."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from duragent.activities.errors import LLMErrorType, ToolError
from duragent.activities.llm import LLMActivities
from duragent.activities.models import (
    DescribeToolsRequest,
    LLMRequest,
    LLMResult,
    Message,
    Role,
    ToolCall,
    ToolKind,
    ToolRequest,
    ToolStatus,
)
from duragent.activities.tools import LocalWorkspace, ToolContext, ToolRegistry, default_tools, tool
from duragent.activities.tools.activity import ToolActivities
from duragent.worker.scripted_llm import ScriptedLLMServer


class Shout(BaseModel):
    text: str


@tool()
async def shout(args: Shout, ctx: ToolContext) -> str:
    """Upper-case a text."""
    return args.text.upper()


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([*default_tools(), shout])


@pytest.fixture
def tools(registry: ToolRegistry, tmp_path: Path) -> ToolActivities:
    return ToolActivities(registry, LocalWorkspace(tmp_path))


async def run(
    tools: ToolActivities, name: str, arguments: str
) -> tuple[ToolStatus, str, str | None]:
    request = ToolRequest(
        call=ToolCall(id="c", name=name, arguments=arguments), idempotency_key="wf:c"
    )
    result = await ActivityEnvironment().run(tools.run_tool, request)
    return result.status, result.content, result.error_code


def test_custom_tool_schema_is_generated() -> None:
    schema = shout.openai_schema()["function"]
    assert schema["name"] == "shout"
    assert schema["description"] == "Upper-case a text."
    assert schema["parameters"]["required"] == ["text"]


def test_a_tool_parameter_needs_an_annotation() -> None:
    with pytest.raises(TypeError, match="needs a type annotation"):

        @tool()
        async def bad(args, ctx: ToolContext) -> str:  # type: ignore[no-untyped-def]
            return str(args)


def test_duplicate_tool_names_are_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        ToolRegistry([shout, shout])


async def test_describe_tools_reports_policies_and_unknown_names(tools: ToolActivities) -> None:
    described = await ActivityEnvironment().run(
        tools.describe_tools, DescribeToolsRequest(enabled=["_task_finish", "shout", "nope"])
    )
    assert [(t.name, t.kind) for t in described.tools] == [
        ("_task_finish", ToolKind.CONTROL),
        ("shout", ToolKind.ACTIVITY),
    ]
    assert described.unknown == ["nope"]


async def test_custom_tool_runs(tools: ToolActivities) -> None:
    assert await run(tools, "shout", '{"text": "hi"}') == (ToolStatus.SUCCESS, "HI", None)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('{"text": ', "not valid JSON"),
        ("{}", "text: Field required"),
        ('{"text": 3}', "text: Input should be a valid string"),
        ("[1]", "Input should be a valid dictionary"),
    ],
)
async def test_bad_arguments_are_tool_errors(
    tools: ToolActivities, arguments: str, message: str
) -> None:
    status, content, code = await run(tools, "shout", arguments)
    assert (status, code) == (ToolStatus.ERROR, "invalid_arguments")
    assert message in content


async def test_file_tools_round_trip(tools: ToolActivities, tmp_path: Path) -> None:
    assert (await run(tools, "_write_file", '{"path": "d/f.txt", "content": "1\\n2\\n3"}'))[
        0
    ] is ToolStatus.SUCCESS
    assert (
        await run(tools, "_write_file", '{"path": "d/f.txt", "content": "\\n4", "append": true}')
    )[0] is ToolStatus.SUCCESS
    assert await run(
        tools, "_read_file", '{"path": "d/f.txt", "start_line": 2, "end_line": 3}'
    ) == (
        ToolStatus.SUCCESS,
        "2\n3",
        None,
    )
    assert (await run(tools, "_list_files", "{}"))[1] == "d/"
    assert (tmp_path / "d/f.txt").read_text() == "1\n2\n3\n4"


async def test_a_missing_file_is_a_tool_error(tools: ToolActivities) -> None:
    assert await run(tools, "_read_file", '{"path": "nope.txt"}') == (
        ToolStatus.ERROR,
        "no such file: 'nope.txt'",
        "not_found",
    )


async def test_control_tools_are_not_run_by_the_activity(tools: ToolActivities) -> None:
    assert (await run(tools, "_task_finish", '{"message": "x"}'))[2] == "unknown_tool"


@pytest.mark.parametrize(
    "path", ["../outside.txt", "/etc/passwd", "a/../../x", "link/secret", "bad\x00name"]
)
def test_paths_cannot_leave_the_workspace(tmp_path: Path, path: str) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "link")
    with pytest.raises(ToolError) as err:
        LocalWorkspace(root).resolve(path)
    assert err.value.code in ("path_escape", "invalid_path")


def test_paths_inside_are_fine(tmp_path: Path) -> None:
    ws = LocalWorkspace(tmp_path)
    assert ws.resolve("a/../b.txt") == tmp_path.resolve() / "b.txt"
    assert ws.resolve(".") == tmp_path.resolve()


# --- the LLM activity, with the real openai client over HTTP ------------------------


@pytest.fixture
async def llm_server() -> AsyncIterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


async def chat(
    server: ScriptedLLMServer, script: dict[str, object], *, stream: bool = True
) -> LLMResult:
    server.add_script({"name": "s", "match": "*", **script})
    async with AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
        activities = LLMActivities(client, ToolRegistry(default_tools()))
        request = LLMRequest(
            model="scripted",
            messages=[Message(role=Role.USER, content="hello")],
            tool_names=["_read_file", "_task_finish"],
            stream=stream,
        )
        return await ActivityEnvironment().run(activities.chat, request)


@pytest.mark.parametrize("stream", [True, False])
async def test_llm_activity_returns_tool_calls_and_usage(
    llm_server: ScriptedLLMServer, stream: bool
) -> None:
    step = {
        "content": "reading",
        "tool_calls": [{"name": "_read_file", "arguments": {"path": "a"}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7},
    }
    result = await chat(llm_server, {"steps": [step]}, stream=stream)
    assert result.message.content == "reading"
    assert result.message.tool_calls == [
        ToolCall(id="call_0_0", name="_read_file", arguments='{"path": "a"}')
    ]
    assert (result.usage.input_tokens, result.usage.output_tokens) == (11, 7)
    assert result.finish_reason == "tool_calls"
    sent = llm_server.requests[0].body
    assert [t["function"]["name"] for t in sent["tools"]] == ["_read_file", "_task_finish"]


async def test_a_truncated_stream_is_a_retryable_error(llm_server: ScriptedLLMServer) -> None:
    step = {"content": "a long answer that will be cut", "faults": [{"truncate_stream": True}]}
    with pytest.raises(ApplicationError) as err:
        await chat(llm_server, {"steps": [step]})
    assert err.value.type == LLMErrorType.CONNECTION.value
    assert not err.value.non_retryable


async def test_context_length_is_not_retried(llm_server: ScriptedLLMServer) -> None:
    step = {"content": "x", "faults": [{"context_length_exceeded": True}]}
    with pytest.raises(ApplicationError) as err:
        await chat(llm_server, {"steps": [step]})
    assert err.value.type == LLMErrorType.CONTEXT_LENGTH.value and err.value.non_retryable


def test_the_client_must_not_retry_by_itself() -> None:
    with pytest.raises(ValueError, match="max_retries=0"):
        LLMActivities(AsyncOpenAI(api_key="k"), ToolRegistry([]))


async def test_a_large_result_goes_to_an_artifact(tools: ToolActivities, tmp_path: Path) -> None:
    big = "\n".join(f"line {i}" for i in range(2_000))
    (tmp_path / "big.txt").write_text(big)
    request = ToolRequest(
        call=ToolCall(id="c", name="_read_file", arguments='{"path": "big.txt"}'),
        idempotency_key="wf:c",
        large_result_chars=1_000,
    )
    result = await ActivityEnvironment().run(tools.run_tool, request)
    assert result.artifact is not None and result.artifact_chars == len(big)
    assert (tmp_path / result.artifact).read_text() == big  # readable back, in full
    assert len(result.content) < 2_500 and result.artifact in result.content
    assert "line 0" in result.content and "line 1999" in result.content  # head and tail
