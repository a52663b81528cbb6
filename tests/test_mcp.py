"""MCP tools: real MCP servers (``tests.mcp_server``) over stdio and streamable HTTP.

The worker starts the stdio servers itself, as a deployment's would; the HTTP server
is a process the test starts on a free loopback port. Agents are driven by the
scripted LLM, so each test knows which tool calls the model makes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment

from duragent.activities.errors import ToolError
from duragent.activities.models import ApprovalMode, DescribeToolsRequest
from duragent.activities.tools import ToolContext, ToolRegistry, default_tools
from duragent.activities.tools._mcp_names import name_map
from duragent.activities.tools.activity import ToolActivities
from duragent.activities.tools.mcp import McpServers
from duragent.activities.tools.mcp_config import McpServerConfig
from duragent.activities.tools.workspace import LocalWorkspace
from duragent.worker.config_file import ConfigFile
from duragent.worker.main import agent_worker
from duragent.worker.settings import Settings, SettingsError
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentResult, AgentStatus, ReplyInput
from tests.conftest import Harness, eventually
from tests.test_agent import call, finish, start, tool_messages
from tests.test_operating import decide, pending_approvals, status_is

ROOT = Path(__file__).resolve().parents[1]
SERVER = [sys.executable, "-m", "tests.mcp_server"]
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOKEN = "token-from-the-worker-env-123"


def stdio(*extra: str, **fields: Any) -> McpServerConfig:
    """A stdio server table for the test server."""
    return McpServerConfig(command=[*SERVER, "stdio", *extra], cwd=str(ROOT), **fields)


def with_mcp(
    h: Harness, servers: Mapping[str, McpServerConfig], env: Mapping[str, str] | None = None
) -> Settings:
    """The harness's worker settings with these MCP servers configured."""
    config = ConfigFile(mcp=dict(servers))
    return dataclasses.replace(h.settings(), config=config, mcp_env=dict(env or {}))


def offered(request_body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tools an LLM request offered: name -> parameters schema."""
    return {t["function"]["name"]: t["function"]["parameters"] for t in request_body["tools"]}


# --- the worker side, without a workflow -----------------------------------------------


async def test_describe_expands_mcp_entries_with_their_policies(tmp_path: Path) -> None:
    files = stdio(timeout_seconds=5, retry=2, tools={"write_note": {"approval": "always"}})
    servers = McpServers({"files": files}, {})
    registry = ToolRegistry(default_tools(), source=servers)
    servers.reserve(registry.names)
    tools = ToolActivities(registry, LocalWorkspace(tmp_path), mcp=servers)
    try:
        await servers.start()
        request = DescribeToolsRequest(
            enabled=["_read_file", "mcp:files", "mcp:files/echo", "mcp:files/nope", "mcp:web"]
        )
        described = await ActivityEnvironment().run(tools.describe_tools, request)
    finally:
        await servers.close()

    specs = {t.name: t for t in described.tools}
    assert list(specs)[:3] == ["_read_file", "echo", "add"]  # each tool once
    assert specs["write_note"].approval is ApprovalMode.ALWAYS
    assert specs["echo"].approval is ApprovalMode.NEVER
    # The call's own timeout, plus room to start the server again first.
    assert specs["echo"].start_to_close_seconds == 5 + 30
    assert specs["echo"].max_attempts == 2
    assert described.mcp_tools["echo"] == "files/echo"
    assert "_list_files" not in specs  # enabled tools only
    assert described.unknown == [
        "mcp:files/nope (no tool 'nope'; its tools: echo, add, pid, fail, broken, picture, "
        "environment, write_note)",
        "mcp:web (no MCP server 'web'; servers: files)",
    ]
    # The model sees the server's own JSON Schema.
    [schema] = registry.schemas(["echo"])
    assert schema["function"]["parameters"]["properties"]["text"]["type"] == "string"


def test_names_are_unique_fit_the_model_and_say_why_they_changed() -> None:
    names = name_map(
        {
            "alpha": ["search", "_read_file", "only.alpha", "x" * 70],
            "beta": ["search", "beta_only"],
        },
        taken=["_read_file"],
        prefixes={"beta": "b_"},
    )
    assert {n: f"{o.server}/{o.tool}" for n, o in names.by_name.items()} == {
        "alpha__search": "alpha/search",
        "alpha___read_file": "alpha/_read_file",
        "alpha__only_alpha": "alpha/only.alpha",
        names.of("alpha", "x" * 70).name: f"alpha/{'x' * 70}",  # type: ignore[union-attr]
        "b_search": "beta/search",
        "beta_only": "beta/beta_only",
    }
    assert all(TOOL_NAME.fullmatch(n) for n in names.by_name)
    assert (
        "alpha/search is offered as alpha__search: servers alpha, beta all have a tool "
        "'search'" in names.renamed
    )
    assert (
        "alpha/_read_file is offered as alpha___read_file: the worker has a tool of that "
        "name" in names.renamed
    )


# --- agents ------------------------------------------------------------------------------


async def test_an_agent_calls_mcp_tools(harness: Harness) -> None:
    task = harness.script(
        [
            {
                "tool_calls": [
                    call("echo", text="hi"),
                    call("add", a=2, b=3),
                    call("picture"),
                ]
            },
            finish(),
        ]
    )
    async with agent_worker(harness.client, with_mcp(harness, {"files": stdio()})):
        handle = await start(harness, task, tools=["mcp:files", "_task_finish"])
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    first, last = harness.requests()[0].body, harness.requests()[-1].body
    schemas = offered(first)
    assert set(schemas) == {
        "echo",
        "add",
        "pid",
        "fail",
        "broken",
        "picture",
        "environment",
        "write_note",
        "_task_finish",
    }
    assert schemas["add"]["required"] == ["a", "b"]
    echoed, added, picture = tool_messages(last)
    assert (echoed, added) == ("echo: hi", "5")
    assert picture.startswith("image (image/png, 70 bytes) attached\nimage-ref: ")
    # The image reached the model as an image part, as _read_image's do.
    parts = [p for m in last["messages"] if isinstance(m["content"], list) for p in m["content"]]
    assert any(p["type"] == "image_url" for p in parts)


async def test_mcp_errors_go_back_to_the_model(harness: Harness) -> None:
    task = harness.script(
        [
            {
                "tool_calls": [
                    call("fail", message="disk full"),
                    call("broken"),
                    call("echo", text=42),
                ]
            },
            finish("coped"),
        ]
    )
    async with agent_worker(harness.client, with_mcp(harness, {"files": stdio()})):
        handle = await start(harness, task, tools=["mcp:files", "_task_finish"])
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED and result.answer == "coped"
    assert tool_messages(harness.requests()[-1].body) == [
        "ERROR (mcp_error): files/fail reported an error: Error executing tool fail: "
        "it failed: disk full",
        "ERROR (mcp_protocol_error): files answered with an error (-32050): the server is "
        "broken inside",
        "ERROR (invalid_arguments): invalid arguments for echo: at $.text: 42 is not of "
        "type 'string'",
    ]


async def test_a_killed_stdio_server_is_started_again_between_cycles(harness: Harness) -> None:
    task = harness.script(
        [
            {"tool_calls": [call("pid")]},
            {"tool_calls": [call("_ask_user", question="Kill it now?")]},
            {"tool_calls": [call("pid")]},
            finish(),
        ]
    )
    async with agent_worker(harness.client, with_mcp(harness, {"files": stdio()})):
        handle = await start(harness, task, tools=["mcp:files/pid", "_ask_user", "_task_finish"])
        await eventually(lambda: status_is(handle, AgentStatus.WAITING_USER))
        [before] = tool_messages(harness.requests()[-1].body)
        first = int(before.removeprefix("pid "))
        os.kill(first, signal.SIGKILL)
        reply: Any = AgentWorkflow.reply  # the SDK's stubs type async updates as coroutines
        await handle.execute_update(reply, ReplyInput(answer="done"))
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    _, _, after = tool_messages(harness.requests()[-1].body)
    assert after.startswith("pid ") and int(after.removeprefix("pid ")) != first


async def test_an_mcp_tool_that_needs_approval_waits_for_a_decision(
    harness: Harness, tmp_path: Path
) -> None:
    note = tmp_path / "note.txt"
    task = harness.script(
        [{"tool_calls": [call("write_note", path=str(note), text="hello")]}, finish()]
    )
    files = stdio(tools={"write_note": {"approval": "always"}})
    async with agent_worker(harness.client, with_mcp(harness, {"files": files})):
        handle = await start(harness, task, tools=["mcp:files/write_note", "_task_finish"])
        [pending] = (await eventually(lambda: pending_approvals(handle, 1))).approvals
        assert await status_is(handle, AgentStatus.WAITING_APPROVAL)
        assert pending.tool == "write_note"
        assert not note.exists()  # nothing ran before the decision
        await decide(
            handle, call_id=pending.call_id, action="approve", fingerprint=pending.fingerprint
        )
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    assert note.read_text() == "hello"
    assert tool_messages(harness.requests()[-1].body) == ["wrote 5 characters"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@asynccontextmanager
async def serving_http(port: int) -> AsyncIterator[str]:
    """The test server over streamable HTTP on ``port``, for the block; its URL.

    It refuses any request without ``X-Test-Token: TOKEN``.
    """
    process = await asyncio.create_subprocess_exec(
        *SERVER,
        "http",
        "--port",
        str(port),
        "--token-env",
        "MCP_TEST_TOKEN",
        cwd=ROOT,
        env={**os.environ, "MCP_TEST_TOKEN": TOKEN},
    )

    async def listening() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    try:
        await eventually(listening, "the MCP HTTP server listens", within=20)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        await process.wait()


@pytest.fixture
async def http_server() -> AsyncIterator[str]:
    """The test server over streamable HTTP on a free loopback port; its URL."""
    async with serving_http(free_port()) as url:
        yield url


async def test_an_http_server_gets_a_header_from_the_worker_env(
    harness: Harness, http_server: str, tmp_path: Path
) -> None:
    config = tmp_path / "duragent.toml"
    config.write_text(
        f'[mcp.web]\nurl = "{http_server}"\nheaders_env = {{X-Test-Token = "WEB_TOKEN"}}\n'
    )
    read = Settings.from_env({"DURAGENT_CONFIG": str(config), "WEB_TOKEN": TOKEN})
    assert TOKEN in read.secrets  # a header's value is redacted from all that leaves
    task = harness.script([{"tool_calls": [call("echo", text="over http")]}, finish()])
    settings = dataclasses.replace(harness.settings(), config=read.config, mcp_env=read.mcp_env)
    async with agent_worker(harness.client, settings):
        handle = await start(harness, task, tools=["mcp:web/echo", "_task_finish"])
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    assert tool_messages(harness.requests()[-1].body) == ["echo: over http"]
    # The server does check it: without the right value it lets nobody in.
    wrong = McpServers(read.config.mcp, {"WEB_TOKEN": "not-the-token"})
    try:
        with pytest.raises(ToolError, match="cannot connect to web") as err:
            await wrong.expand(["mcp:web"])
    finally:
        await wrong.close()
    assert err.value.code == "mcp_unavailable"


async def test_a_server_down_at_start_is_listed_once_it_is_up() -> None:
    port = free_port()
    web = McpServerConfig(
        url=f"http://127.0.0.1:{port}/mcp", headers_env={"X-Test-Token": "WEB_TOKEN"}
    )
    servers = McpServers({"web": web}, {"WEB_TOKEN": TOKEN})
    try:
        await servers.start()  # nobody listens yet: the worker starts all the same
        assert servers.get("echo") is None
        async with serving_http(port):
            # A lookup lists, in the background, a server never listed before.
            tool = await eventually(lambda: servers.get("echo"), "the late server's tools")
    finally:
        await servers.close()
    assert tool.server == "web" and tool.remote_name == "echo"


async def test_colliding_tools_are_offered_with_prefixes(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    task = harness.script(
        [
            {
                "tool_calls": [
                    call("alpha__echo", text="a"),
                    call("b_echo", text="b"),
                    call("alpha___list_files"),
                    call("_list_files"),
                ]
            },
            finish(),
        ]
    )
    servers = {"alpha": stdio("--shadow"), "beta": stdio(prefix="b_")}
    caplog.set_level(logging.WARNING, logger="duragent.mcp")
    async with agent_worker(harness.client, with_mcp(harness, servers)):
        handle: WorkflowHandle[Any, AgentResult] = await start(
            harness, task, tools=["mcp:alpha", "mcp:beta/echo", "_list_files", "_task_finish"]
        )
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    names = set(offered(harness.requests()[0].body))
    assert {"alpha__echo", "b_echo", "alpha___list_files", "_list_files"} <= names
    assert "echo" not in names and all(TOOL_NAME.fullmatch(n) for n in names)
    echo_a, echo_b, shadow, own = tool_messages(harness.requests()[-1].body)
    assert (echo_a, echo_b, shadow) == ("echo: a", "echo: b", "the server's own listing")
    assert own != shadow  # the worker's own _list_files ran
    assert (
        "MCP tool beta/echo is offered as b_echo: servers alpha, beta all have a tool "
        "'echo'" in caplog.messages
    )


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[mcp.both]\ncommand = ["x"]\nurl = "http://localhost/mcp"',
            "mcp.both: give exactly one of command (argv of a stdio server) or url "
            "(a streamable HTTP server)",
        ),
        ("[mcp.none]\ntimeout_seconds = 5", "mcp.none: give exactly one of command"),
        ('[mcp.web]\nurl = "ftp://x"', "mcp.web.url: must be an http(s) URL, got 'ftp://x'"),
        (
            '[mcp.web]\nurl = "http://x"\nenv = ["A"]',
            "mcp.web: env and cwd are for a stdio command; a url server has headers_env",
        ),
        (
            '[mcp.f]\ncommand = ["x"]\nenv = ["sk-live-123"]',
            "mcp.f.env: 'sk-live-123' is not an environment variable name",
        ),
        (
            '[mcp.f]\ncommand = ["x"]\ntools = {w = {approval = "sometimes"}}',
            "mcp.f.tools.w.approval: Input should be 'never' or 'always'",
        ),
        ('[mcp.f]\ncommand = ["x"]\nretry = 0', "mcp.f.retry: Input should be greater than"),
        ('[mcp."a/b"]\ncommand = ["x"]', "mcp: server name 'a/b' must be 1-32 of letters"),
        (
            '[mcp.web]\nurl = "http://x"\nheaders_env = {Authorization = "UNSET_VAR"}',
            "mcp.web.headers_env.Authorization: UNSET_VAR is not set in the worker's environment",
        ),
    ],
)
def test_config_mistakes_are_one_clear_line(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "duragent.toml"
    path.write_text(table + "\n")
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"DURAGENT_CONFIG": str(path)})
    text = str(err.value)
    assert text.startswith("DURAGENT_CONFIG: ") and message in text
    assert "\n" not in text


async def test_a_server_gets_only_the_variables_its_table_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "duragent.toml"
    path.write_text(f'[mcp.f]\ncommand = {json.dumps(stdio().command)}\nenv = ["F_TOKEN"]\n')
    monkeypatch.setenv("WORKER_SECRET_KEY", "s" * 16)  # in the worker's own environment
    settings = Settings.from_env(
        {"DURAGENT_CONFIG": str(path), "F_TOKEN": "t" * 12, "OPENAI_API_KEY": "sk-1"}
    )
    assert settings.mcp_env == {"F_TOKEN": "t" * 12}
    servers = McpServers(settings.config.mcp, settings.mcp_env)
    try:
        [tool] = (await servers.expand(["mcp:f/environment"])).tools
        context = ToolContext(workspace=LocalWorkspace(tmp_path), call_id="c", idempotency_key="k")
        seen = str(await tool.function(tool.parse("{}"), context)).split()  # type: ignore[misc]
    finally:
        await servers.close()
    assert "F_TOKEN" in seen
    # The SDK's baseline, and what Python itself sets for the locale; nothing else.
    assert set(seen) <= {"F_TOKEN", "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LC_CTYPE"}
