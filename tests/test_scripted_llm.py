"""The scripted LLM server, exercised through the real ``openai`` client over HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from duragent.worker.scripted_llm import DEFAULT_MODEL, ScriptedLLMServer

API_KEY = "test-key"
SYSTEM: ChatCompletionMessageParam = {"role": "system", "content": "You are agent [demo]."}
USER: ChatCompletionMessageParam = {"role": "user", "content": "Write a.txt please."}

WRITE_ARGS = {"path": "a.txt", "content": "hello, world! " * 5}
DEMO = {
    "name": "demo",
    "match": "[demo]",
    "steps": [
        {"content": "Plain answer."},
        {
            "content": "Writing two files.",
            "tool_calls": [
                {"name": "write_file", "arguments": WRITE_ARGS},
                {"name": "read_file", "arguments": {"path": "b.txt"}, "id": "call_custom"},
            ],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 50},
        },
        {"tool_calls": [{"name": "_task_finish", "arguments": {"message": "done"}}]},
    ],
}


def assistant(content: str = "ok") -> ChatCompletionMessageParam:
    return {"role": "assistant", "content": content}


def conversation(steps_done: int, marker: str = "[demo]") -> list[ChatCompletionMessageParam]:
    """A request that has seen ``steps_done`` assistant turns."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": f"You are agent {marker}."},
        USER,
    ]
    for _ in range(steps_done):
        messages += [assistant(), {"role": "user", "content": "go on"}]
    return messages


@pytest.fixture
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(api_key=API_KEY, scripts=[DEMO]) as server:
        yield server


@pytest.fixture
async def client(llm: ScriptedLLMServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=llm.base_url, api_key=API_KEY, max_retries=0) as client:
        yield client


def http_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def root(llm: ScriptedLLMServer) -> str:
    return llm.base_url.removesuffix("/v1")


async def test_non_streaming_text(llm: ScriptedLLMServer, client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="gpt-x", messages=[SYSTEM, USER])

    choice = completion.choices[0]
    assert choice.message.content == "Plain answer."
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.model == "gpt-x"
    chars = len("You are agent [demo].") + len("Write a.txt please.")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == chars // 4
    assert completion.usage.completion_tokens == len("Plain answer.") // 4
    assert completion.usage.total_tokens == (chars + len("Plain answer.")) // 4
    [record] = llm.requests
    assert (record.script, record.step, record.attempt, record.stream) == ("demo", 0, 0, False)
    assert (record.status, record.fault) == (200, None)
    assert record.body["messages"][1]["content"] == "Write a.txt please."


async def test_streaming_tool_calls_and_usage(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-x",
        messages=conversation(1),
        stream=True,
        stream_options={"include_usage": True},
    )
    content, calls, finish, usage = "", dict[int, dict[str, str]](), None, None
    async with stream:
        async for chunk in stream:
            if not chunk.choices:
                usage = chunk.usage
                continue
            delta = chunk.choices[0].delta
            content += delta.content or ""
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                entry["name"] += call.function.name or "" if call.function else ""
                entry["arguments"] += call.function.arguments or "" if call.function else ""
            finish = chunk.choices[0].finish_reason or finish

    assert content == "Writing two files."
    assert calls[0]["id"] == "call_1_0"
    assert calls[0]["name"] == "write_file"
    assert json.loads(calls[0]["arguments"]) == WRITE_ARGS
    assert calls[1] == {"id": "call_custom", "name": "read_file", "arguments": '{"path": "b.txt"}'}
    assert finish == "tool_calls"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1000, 50, 1050)


async def test_stream_helper_assembles_the_same_completion(client: AsyncOpenAI) -> None:
    async with client.chat.completions.stream(model="m", messages=conversation(1)) as stream:
        completion = await stream.get_final_completion()

    message = completion.choices[0].message
    assert message.content == "Writing two files."
    assert [c.function.name for c in message.tool_calls or []] == ["write_file", "read_file"]
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_step_follows_assistant_messages(llm: ScriptedLLMServer, client: AsyncOpenAI) -> None:
    async def ask(steps_done: int) -> str | None:
        completion = await client.chat.completions.create(
            model="m", messages=conversation(steps_done)
        )
        message = completion.choices[0].message
        names = [c.function.name for c in message.tool_calls or [] if c.type == "function"]
        return message.content or (names[0] if names else None)

    assert await ask(0) == "Plain answer."
    assert await ask(0) == "Plain answer."  # the same request gets the same step
    assert await ask(1) == "Writing two files."
    assert await ask(2) == "_task_finish"
    assert await ask(7) == "_task_finish"  # after_last defaults to repeat_last
    assert [(r.step, r.attempt) for r in llm.requests] == [(0, 0), (0, 1), (1, 0), (2, 0), (7, 0)]
    assert llm.attempts("demo") == 5


async def test_after_last_error(llm: ScriptedLLMServer, client: AsyncOpenAI) -> None:
    steps = [{"content": "one"}]
    llm.add_script({"name": "short", "match": "[short]", "steps": steps, "after_last": "error"})

    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="m", messages=conversation(1, "[short]"))
    assert caught.value.code == "script_exhausted"


async def test_500_then_success(llm: ScriptedLLMServer, client: AsyncOpenAI) -> None:
    llm.add_script(
        {
            "name": "flaky",
            "match": "[flaky]",
            "steps": [{"content": "ok", "faults": [{"status": 500}]}],
        }
    )
    messages = conversation(0, "[flaky]")

    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="m", messages=messages)
    assert caught.value.status_code == 500
    assert caught.value.type == "server_error"
    completion = await client.chat.completions.create(model="m", messages=messages)
    assert completion.choices[0].message.content == "ok"
    assert [(r.attempt, r.status, r.fault) for r in llm.requests] == [
        (0, 500, "status"),
        (1, 200, None),
    ]


async def test_429_carries_retry_after(llm: ScriptedLLMServer, client: AsyncOpenAI) -> None:
    fault = {"status": 429, "retry_after": 2, "message": "slow down"}
    llm.add_script(
        {"name": "busy", "match": "[busy]", "steps": [{"content": "ok", "faults": [fault]}]}
    )

    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(
            model="m", messages=conversation(0, "[busy]"), stream=True
        )
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.response.headers["retry-after-ms"] == "2000"
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.message == "Error code: 429 - slow down"


async def test_wrong_key_is_401(llm: ScriptedLLMServer) -> None:
    async with AsyncOpenAI(base_url=llm.base_url, api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="m", messages=[SYSTEM, USER])
    assert caught.value.code == "invalid_api_key"
    assert caught.value.body == {
        "message": "Incorrect API key provided",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert llm.requests == []
    assert llm.attempts("demo") == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_malformed_arguments_are_sent_verbatim(
    llm: ScriptedLLMServer, client: AsyncOpenAI, stream: bool
) -> None:
    broken = '{"path": '
    call = {"name": "write_file", "arguments": broken}
    llm.add_script({"name": "broken", "match": "[broken]", "steps": [{"tool_calls": [call]}]})
    messages = conversation(0, "[broken]")

    if stream:
        async with client.chat.completions.stream(model="m", messages=messages) as events:
            completion = await events.get_final_completion()
        arguments = (completion.choices[0].message.tool_calls or [])[0].function.arguments
    else:
        plain = await client.chat.completions.create(model="m", messages=messages)
        tool_call = (plain.choices[0].message.tool_calls or [])[0]
        assert tool_call.type == "function"
        arguments = tool_call.function.arguments
    assert arguments == broken


async def test_truncated_stream_raises_then_recovers(
    llm: ScriptedLLMServer, client: AsyncOpenAI
) -> None:
    step = {"content": "a fairly long answer " * 4, "faults": [{"truncate_stream": True}]}
    llm.add_script({"name": "cut", "match": "[cut]", "steps": [step]})
    messages = conversation(0, "[cut]")

    received = ""
    with pytest.raises(openai.APIConnectionError):
        stream = await client.chat.completions.create(model="m", messages=messages, stream=True)
        async with stream:
            async for chunk in stream:
                assert chunk.choices[0].finish_reason is None
                received += chunk.choices[0].delta.content or ""
    assert 0 < len(received) < len(step["content"])
    async with client.chat.completions.stream(model="m", messages=messages) as events:
        completion = await events.get_final_completion()
    assert completion.choices[0].message.content == step["content"]


async def test_truncate_without_stream_drops_the_connection(
    llm: ScriptedLLMServer, client: AsyncOpenAI
) -> None:
    step = {"content": "ok", "faults": [{"truncate_stream": True}]}
    llm.add_script({"name": "drop", "match": "[drop]", "steps": [step]})

    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="m", messages=conversation(0, "[drop]"))
    assert llm.requests[-1].status is None


async def test_context_length_exceeded(llm: ScriptedLLMServer, client: AsyncOpenAI) -> None:
    step = {"content": "ok", "faults": [{"context_length_exceeded": True}]}
    llm.add_script({"name": "full", "match": "[full]", "steps": [step]})

    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="m", messages=conversation(0, "[full]"))
    assert caught.value.code == "context_length_exceeded"
    assert "maximum context length is" in caught.value.message


async def test_slow_fault_times_the_client_out(llm: ScriptedLLMServer, client: AsyncOpenAI) -> None:
    # 60 s is far past the client timeout; stop() must not wait for it either.
    step = {"content": "ok", "faults": [{"delay_seconds": 60}]}
    llm.add_script({"name": "slow", "match": "[slow]", "steps": [step]})
    messages = conversation(0, "[slow]")

    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="m", messages=messages, timeout=0.2)
    completion = await client.chat.completions.create(model="m", messages=messages)
    assert completion.choices[0].message.content == "ok"


async def test_no_matching_script_is_a_clear_400(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="m", messages=conversation(0, "[other]"))
    assert caught.value.code == "no_script"
    assert "No script matched" in caught.value.message
    assert "['[demo]']" in caught.value.message  # names the markers it looked for


async def test_specific_scripts_win_over_the_default(
    llm: ScriptedLLMServer, client: AsyncOpenAI
) -> None:
    llm.add_script({"name": "fallback", "steps": [{"content": "fallback"}]})
    llm.add_script({"name": "late", "match": "[late]", "steps": [{"content": "late"}]})

    async def content(marker: str) -> str | None:
        completion = await client.chat.completions.create(
            model="m", messages=conversation(0, marker)
        )
        return completion.choices[0].message.content

    assert await content("[late]") == "late"
    assert await content("[anything]") == "fallback"
    assert await content("[demo]") == "Plain answer."


async def test_models_list(llm: ScriptedLLMServer, client: AsyncOpenAI) -> None:
    llm.add_script({"name": "named", "match": "[n]", "steps": [{"content": "x", "model": "m-1"}]})

    models = await client.models.list()

    assert [m.id for m in models.data] == [DEFAULT_MODEL, "m-1"]


@pytest.mark.parametrize(
    ("script", "complaint"),
    [
        ({"name": "x", "steps": []}, "steps"),
        ({"name": "x", "steps": [{"contnet": "typo"}]}, "contnet"),
        ({"name": "x", "steps": [{"tool_calls": [{"arguments": {}}]}]}, "name"),
        ({"name": "x", "steps": [{"content": "a", "faults": [{}]}]}, "exactly one"),
        ({"name": "x", "steps": [{"content": "a", "faults": [{"status": 200}]}]}, "status"),
        ({"name": "x", "steps": [{}]}, "'content' or 'tool_calls'"),
        ({"name": "x", "steps": [{"content": "a"}], "after_last": "loop"}, "after_last"),
        ({"name": "x", "steps": [{"content": "a", "stream_tool_calls": "odd"}]}, "stream_tool"),
        ({"name": "x", "steps": [{"content": "a", "reasoning_field": "why"}]}, "reasoning_field"),
        ({"name": "demo", "steps": [{"content": "a"}]}, "already registered"),
    ],
)
def test_bad_script_is_rejected(
    llm: ScriptedLLMServer, script: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        llm.add_script(script)


def test_bad_script_rejected_by_constructor() -> None:
    with pytest.raises(ValueError, match="invalid script 'x'"):
        ScriptedLLMServer(scripts=[{"name": "x", "steps": [{"content": 3}]}])


def test_control_endpoints(llm: ScriptedLLMServer) -> None:
    assert http_json(f"{root(llm)}/healthz") == {"status": "ok"}
    script = {"name": "posted", "match": "[posted]", "steps": [{"content": "hi"}]}
    assert http_json(f"{root(llm)}/_scripts", script) == {"registered": "posted"}
    with pytest.raises(urllib.error.HTTPError) as caught:
        http_json(f"{root(llm)}/_scripts", {"name": "bad"})
    assert json.loads(caught.value.read())["error"]["code"] == "invalid_script"
    caught.value.close()
    assert http_json(f"{root(llm)}/_requests") == {"requests": []}


async def test_request_log_over_http(llm: ScriptedLLMServer, client: AsyncOpenAI) -> None:
    await client.chat.completions.create(model="m", messages=conversation(1))

    [entry] = http_json(f"{root(llm)}/_requests")["requests"]

    assert entry["script"] == "demo"
    assert entry["step"] == 1
    assert entry["status"] == 200


def test_command_line(tmp_path: Path) -> None:
    script_file = tmp_path / "scripts.json"
    script_file.write_text(json.dumps([DEMO]), encoding="utf-8")
    command = [sys.executable, "-m", "duragent.worker.scripted_llm", "--port", "0"]
    command += ["--script", str(script_file), "--api-key", API_KEY]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line.startswith("scripted LLM listening on http://127.0.0.1:")
            base_url = line.rsplit(" ", 1)[1]
            assert http_json(base_url.removesuffix("/v1") + "/healthz") == {"status": "ok"}
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0


def test_command_line_rejects_a_bad_script_file(tmp_path: Path) -> None:
    script_file = tmp_path / "bad.json"
    script_file.write_text('{"name": "x", "steps": []}', encoding="utf-8")
    command = [sys.executable, "-m", "duragent.worker.scripted_llm", "--script", str(script_file)]

    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

    assert result.returncode == 2
    assert "invalid script 'x'" in result.stderr
