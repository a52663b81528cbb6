"""``_bash`` and background commands: real processes, checked in /proc.

Nothing here sleeps to wait for a process: each wait polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from duragent.activities.models import (
    ApprovalMode,
    CleanupRequest,
    ToolCall,
    ToolRequest,
    ToolResult,
    ToolStatus,
)
from duragent.activities.tools import (
    BackgroundCommands,
    LocalWorkspace,
    MemoryWorkspace,
    ToolRegistry,
    default_tools,
)
from duragent.activities.tools import shell as shell_module
from duragent.activities.tools.activity import ToolActivities
from duragent.activities.tools.sandbox import ShellSandbox
from duragent.activities.tools.shell import MAX_OUTPUT_CHARS, bash, run_command
from tests.conftest import eventually

DEADLINE_SECONDS = 15.0


def live_members(pgid: int) -> list[int]:
    """Processes of a group that are still alive (zombies excluded), read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _, group = stat[stat.rfind(")") + 2 :].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def pids(path: Path) -> list[int]:
    """Pids a command wrote, one per line (empty until it has written them all)."""
    try:
        return [int(line) for line in path.read_text().split()]
    except (OSError, ValueError):
        return []


@pytest.fixture
def workspace(tmp_path: Path) -> LocalWorkspace:
    root = tmp_path / "ws"
    root.mkdir()
    return LocalWorkspace(root)


@pytest.fixture
def background(tmp_path: Path) -> Iterator[BackgroundCommands]:
    with BackgroundCommands(tmp_path / "background") as commands:
        yield commands


@pytest.fixture
def tools(workspace: LocalWorkspace, background: BackgroundCommands) -> ToolActivities:
    return ToolActivities(ToolRegistry(default_tools()), workspace, background=background)


def request(name: str, key: str = "wf:c", **arguments: object) -> ToolRequest:
    call = ToolCall(id=key.rsplit(":", 1)[-1], name=name, arguments=json.dumps(arguments))
    # These tests read the tool's own output, never the stub of a large result.
    return ToolRequest(call=call, idempotency_key=key, large_result_chars=10**9)


async def run(
    tools: ToolActivities, name: str, key: str = "wf:c", **arguments: object
) -> ToolResult:
    return await ActivityEnvironment().run(tools.run_tool, request(name, key, **arguments))


# --- the tool's declaration ------------------------------------------------------------


def test_bash_policy() -> None:
    spec = bash.spec()
    assert spec.approval is ApprovalMode.DANGEROUS_COMMAND
    assert spec.max_attempts == 1
    assert spec.heartbeat_seconds == 10
    assert spec.start_to_close_seconds > shell_module.MAX_TIMEOUT_SECONDS


# --- foreground -----------------------------------------------------------------------------


async def test_exit_code_and_interleaved_output(tools: ToolActivities) -> None:
    result = await run(tools, "_bash", command="echo out; echo err >&2; exit 3")
    assert result.status is ToolStatus.SUCCESS
    assert result.content == "out\nerr\n[exit code 3]"


async def test_stdin_cwd_and_no_output(tools: ToolActivities, workspace: LocalWorkspace) -> None:
    (workspace.root / "sub").mkdir()
    result = await run(tools, "_bash", command="tr a-z A-Z", stdin="hello")
    assert result.content == "HELLO\n[exit code 0]"
    result = await run(tools, "_bash", command="pwd", cwd="sub")
    assert result.content == f"{workspace.root / 'sub'}\n[exit code 0]"
    assert (await run(tools, "_bash", command="true")).content == "(no output)\n[exit code 0]"


@pytest.mark.parametrize(("cwd", "code"), [("..", "path_escape"), ("nope", "not_found")])
async def test_cwd_is_checked(tools: ToolActivities, cwd: str, code: str) -> None:
    result = await run(tools, "_bash", command="pwd", cwd=cwd)
    assert (result.status, result.error_code) == (ToolStatus.ERROR, code)


async def test_a_memory_workspace_cannot_run_commands() -> None:
    tools = ToolActivities(ToolRegistry(default_tools()), MemoryWorkspace())
    result = await run(tools, "_bash", command="ls")
    assert (result.status, result.error_code) == (ToolStatus.ERROR, "unsupported")


async def test_only_the_allowlist_reaches_the_command(
    workspace: LocalWorkspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Even without the sandbox, nothing of the worker's environment is inherited:
    # neither a known key nor a password under a name no list would know.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    monkeypatch.setenv("DATABASE_URL", "postgres://app:do-not-leak@db/app")
    monkeypatch.setenv("HARMLESS", "not passed either")
    sandbox = ShellSandbox(passthrough={"DECLARED": "visible"}, lang="en_US.UTF-8")
    with BackgroundCommands(tmp_path / "bg", sandbox=sandbox) as commands:
        tools = ToolActivities(ToolRegistry(default_tools()), workspace, background=commands)
        result = await run(tools, "_bash", command="env")
    assert "do-not-leak" not in result.content
    assert "HARMLESS" not in result.content
    assert "DECLARED=visible" in result.content
    assert f"HOME={workspace.root}" in result.content
    assert "LANG=en_US.UTF-8" in result.content


async def test_long_output_keeps_head_and_tail(tools: ToolActivities) -> None:
    result = await run(tools, "_bash", command="echo FIRST; yes line | head -n 50000; echo LAST")
    assert result.status is ToolStatus.SUCCESS
    assert result.content.startswith("FIRST\nline")
    assert result.content.endswith("LAST\n[exit code 0]")
    assert "bytes of output left out" in result.content
    assert len(result.content) < MAX_OUTPUT_CHARS + 200


async def test_timeout_kills_the_whole_process_tree(
    tools: ToolActivities, workspace: LocalWorkspace
) -> None:
    # The background sleep would outlive its shell: only a group kill stops it.
    command = "echo started; echo $$ > pids; sleep 30 & echo $! >> pids; sleep 30"
    result = await run(tools, "_bash", command=command, timeout_seconds=0.5)
    assert (result.status, result.error_code) == (ToolStatus.ERROR, "timeout")
    assert "timed out after 0.5 s" in result.content and "started" in result.content
    group, child = pids(workspace.root / "pids")
    await eventually(lambda: not live_members(group), "the process group to end")
    assert child not in live_members(group)


async def test_processes_left_behind_are_stopped_when_the_command_ends(
    tools: ToolActivities, workspace: LocalWorkspace
) -> None:
    # The sleep keeps the output pipe open after the shell exits: the command still
    # counts as ended when the shell does (the short pause makes the shell exit after
    # the tool has started waiting, when a pipe-bound wait would hang).
    command = "echo $$ > pids; sleep 30 & echo $! >> pids; sleep 0.2; echo done"
    result = await run(tools, "_bash", command=command, timeout_seconds=10)
    assert (result.status, result.content) == (ToolStatus.SUCCESS, "done\n[exit code 0]")
    group, _ = pids(workspace.root / "pids")
    await eventually(lambda: not live_members(group), "the leftover sleep to end")


async def test_input_the_command_does_not_read(tools: ToolActivities) -> None:
    result = await run(tools, "_bash", command="exit 4", stdin="x" * 1_000_000)
    assert result.content == "(no output)\n[exit code 4]"


async def test_cancellation_kills_the_process_group(
    tools: ToolActivities, workspace: LocalWorkspace
) -> None:
    env = ActivityEnvironment()
    command = "echo $$ > pids.tmp; sleep 30 & echo $! >> pids.tmp; mv pids.tmp pids; wait"
    task = asyncio.create_task(env.run(tools.run_tool, request("_bash", command=command)))
    await eventually(lambda: len(pids(workspace.root / "pids")) == 2, "the command to start")
    group, child = pids(workspace.root / "pids")
    assert set(live_members(group)) >= {group, child}

    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: not live_members(group), "the process group to end")


async def test_the_command_heartbeats_while_it_runs(
    workspace: LocalWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shell_module, "HEARTBEAT_EVERY_SECONDS", 0.01)
    beats: list[None] = []
    flag = workspace.root / "go"
    command = asyncio.create_task(
        run_command(
            "while [ ! -e go ]; do sleep 0.01; done; echo done",
            cwd=workspace.root,
            timeout_seconds=DEADLINE_SECONDS,
            heartbeat=lambda: beats.append(None),
        )
    )
    await eventually(lambda: len(beats) >= 3, "three heartbeats")
    flag.touch()
    result = await command
    assert (result.exit_code, result.output, result.timed_out) == (0, "done\n", False)


# --- background -------------------------------------------------------------------------------

SESSION = re.compile(r"session_id (bg-[0-9a-f]+)")


async def start(tools: ToolActivities, command: str, key: str = "wf:c") -> str:
    result = await run(tools, "_bash", key=key, command=command, background=True)
    assert result.status is ToolStatus.RUNNING, result.content
    assert "is running" in result.content
    match = SESSION.search(result.content)
    assert match is not None
    return match.group(1)


async def check(tools: ToolActivities, session_id: str, wait: float = 0) -> ToolResult:
    return await run(tools, "_check_background_command", session_id=session_id, wait_seconds=wait)


async def test_background_command_runs_then_ends(
    tools: ToolActivities, workspace: LocalWorkspace
) -> None:
    session = await start(
        tools, "echo started; while [ ! -e done ]; do sleep 0.02; done; echo finished; exit 3"
    )
    outputs: list[ToolResult] = []

    async def started() -> bool:
        outputs.append(await check(tools, session))
        return "started" in outputs[-1].content

    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not await started():
        assert loop.time() < deadline, "the command never printed"
    assert outputs[-1].status is ToolStatus.RUNNING and "running for" in outputs[-1].content

    (workspace.root / "done").touch()
    ended = await check(tools, session, wait=DEADLINE_SECONDS)
    assert ended.status is ToolStatus.SUCCESS
    assert "exit code 3" in ended.content
    assert "started\nfinished" in ended.content


async def test_background_start_is_idempotent_per_call(tools: ToolActivities) -> None:
    first = await start(tools, "sleep 30", key="wf:same")
    again = await run(tools, "_bash", key="wf:same", command="sleep 30", background=True)
    assert first in again.content and "already started" in again.content
    assert first != await start(tools, "sleep 30", key="wf:other")


async def test_stopping_a_background_command(
    tools: ToolActivities, workspace: LocalWorkspace
) -> None:
    session = await start(
        tools, "echo $$ > pids.tmp; sleep 30 & echo $! >> pids.tmp; mv pids.tmp pids; wait"
    )
    await eventually(lambda: len(pids(workspace.root / "pids")) == 2, "the command to start")
    group, _ = pids(workspace.root / "pids")
    stopped = await run(tools, "_stop_background_command", session_id=session)
    assert "killed by SIGTERM" in stopped.content
    await eventually(lambda: not live_members(group), "the process group to end")


async def test_close_stops_every_background_command(workspace: LocalWorkspace) -> None:
    commands = BackgroundCommands()  # a temporary output folder, removed on close
    tools = ToolActivities(ToolRegistry(default_tools()), workspace, background=commands)
    await start(tools, "echo $$ > pids.tmp; sleep 30 & echo $! >> pids.tmp; mv pids.tmp pids; wait")
    await eventually(lambda: len(pids(workspace.root / "pids")) == 2, "the command to start")
    group, _ = pids(workspace.root / "pids")
    commands.close()
    await eventually(lambda: not live_members(group), "the process group to end")


async def test_cleanup_stops_the_commands_of_one_run(
    tools: ToolActivities, workspace: LocalWorkspace
) -> None:
    mine = await start(tools, "echo $$ > mine; exec sleep 30", key="wf-a:c1")
    other = await start(tools, "echo $$ > other; exec sleep 30", key="wf-b:c1")
    await eventually(lambda: bool(pids(workspace.root / "mine")), "the first command")
    await eventually(lambda: bool(pids(workspace.root / "other")), "the second command")
    cleaned = await ActivityEnvironment().run(
        tools.cleanup, CleanupRequest(workflow_id="wf-a", reason="cancelled")
    )
    assert cleaned.released == [f"background command {mine}"]
    [group] = pids(workspace.root / "mine")
    await eventually(lambda: not live_members(group), "the first command to end")
    assert (await check(tools, other)).status is ToolStatus.RUNNING


async def test_an_unknown_session_is_lost(tools: ToolActivities) -> None:
    result = await check(tools, "bg-0123456789abcdef")
    assert (result.status, result.error_code) == (ToolStatus.ERROR, "lost")
    assert "lost with the worker" in result.content


async def test_without_background_commands_the_worker_says_so(workspace: LocalWorkspace) -> None:
    tools = ToolActivities(ToolRegistry(default_tools()), workspace)
    for result in [
        await run(tools, "_bash", command="sleep 1", background=True),
        await check(tools, "bg-x"),
    ]:
        assert (result.status, result.error_code) == (ToolStatus.ERROR, "unsupported")


async def test_too_many_background_commands(workspace: LocalWorkspace, tmp_path: Path) -> None:
    with BackgroundCommands(tmp_path / "bg", max_running=1) as commands:
        tools = ToolActivities(ToolRegistry(default_tools()), workspace, background=commands)
        await start(tools, "sleep 30", key="wf:a")
        result = await run(tools, "_bash", key="wf:b", command="sleep 30", background=True)
        assert result.error_code == "too_many"
