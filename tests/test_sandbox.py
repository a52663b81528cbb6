"""The shell sandbox, redaction of secrets, and failures that say what failed.

Commands run in a real bubblewrap sandbox; the agent tests run real workers (in this
process, or as processes SIGKILLed mid-command) on the session's dev server, with the
scripted LLM over real HTTP. A marker secret in the worker's environment must appear
nowhere: not in history, not in the transcript store, not in what the LLM was sent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from duragent.activities.boundary import MAX_MESSAGE_CHARS, bounded_failure
from duragent.activities.models import ToolCall, ToolRequest, ToolResult, ToolStatus
from duragent.activities.redact import REDACTED, Redactor, secrets_in_environment
from duragent.activities.tools import LocalWorkspace, ToolRegistry, default_tools
from duragent.activities.tools.activity import ToolActivities
from duragent.activities.tools.background import BackgroundCommands
from duragent.activities.tools.sandbox import SandboxMode, ShellSandbox
from duragent.worker.plugin import shell_sandbox
from duragent.worker.settings import LLMSettings, Settings, SettingsError, ShellSettings
from tests.conftest import Harness, eventually
from tests.processes import spawn_worker, worker_env
from tests.test_agent import call, finish, start, tool_messages

BWRAP = shutil.which("bwrap")


def _bwrap_runs() -> str | None:
    """Why bubblewrap cannot run here, or ``None`` when it can."""
    if BWRAP is None:
        return "bubblewrap is not installed (scripts/bootstrap.sh installs it with apt)"
    probe = subprocess.run(
        [BWRAP, "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()}"
    return None


_NO_BWRAP = _bwrap_runs()
needs_bwrap = pytest.mark.skipif(_NO_BWRAP is not None, reason=_NO_BWRAP or "")

KEY = f"sk-marker-{uuid.uuid4().hex}"
DB_PASSWORD = f"pw-marker-{uuid.uuid4().hex[:12]}"
DSN_KEY = uuid.uuid4().hex
# A value under a harmless name: no redaction list knows it, only the sandbox keeps it in.
UNLISTED = f"unlisted-marker-{uuid.uuid4().hex[:12]}"
MARKERS = (KEY, DB_PASSWORD, DSN_KEY, UNLISTED)
WORKER_SECRETS = {
    "OPENAI_API_KEY": KEY,
    "DATABASE_URL": f"postgres://app:{DB_PASSWORD}@db.internal:5432/app",
    "SENTRY_DSN": f"https://{DSN_KEY}@o1.ingest.sentry.io/42",
    "BUILD_LABEL": UNLISTED,
}


@pytest.fixture
def worker_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secrets in this process's environment: the worker's, for in-process workers."""
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)


def bwrap_sandbox(**overrides: Any) -> ShellSandbox:
    assert BWRAP is not None
    return ShellSandbox(mode=SandboxMode.BWRAP, bwrap=BWRAP, **overrides)


@pytest.fixture
def workspace(tmp_path: Path) -> LocalWorkspace:
    root = tmp_path / "ws"
    root.mkdir()
    return LocalWorkspace(root)


@pytest.fixture
def sandboxed(tmp_path: Path, workspace: LocalWorkspace) -> Iterator[ToolActivities]:
    with BackgroundCommands(tmp_path / "bg", sandbox=bwrap_sandbox()) as commands:
        yield ToolActivities(ToolRegistry(default_tools()), workspace, background=commands)


async def bash(tools: ToolActivities, command: str, **arguments: Any) -> ToolResult:
    key = f"wf:{uuid.uuid4().hex[:8]}"
    arguments = {"command": command, **arguments}
    tool_call = ToolCall(id=key[3:], name="_bash", arguments=json.dumps(arguments))
    request = ToolRequest(call=tool_call, idempotency_key=key, large_result_chars=10**9)
    return await ActivityEnvironment().run(tools.run_tool, request)


def live_pids_with(text: str) -> list[int]:
    """Host processes (zombies excluded) whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


# --- the sandbox alone -----------------------------------------------------------------


@needs_bwrap
@pytest.mark.usefixtures("worker_secrets")
async def test_the_worker_environment_and_processes_are_out_of_reach(
    sandboxed: ToolActivities,
) -> None:
    for trick in ["cat /proc/$PPID/environ", "cat /proc/*/environ", "env", "ps -ef"]:
        result = await bash(sandboxed, trick)
        assert not any(m in result.content for m in MARKERS), trick
    listed = await bash(sandboxed, "ls /proc | grep -c '^[0-9]'")
    assert int(listed.content.split()[0]) <= 5  # the sandbox's own few processes
    environment = (await bash(sandboxed, "env")).content
    assert "HOME=/workspace" in environment and "PATH=" in environment

    killed = await bash(sandboxed, "kill -9 $PPID; kill -9 -1; echo still here")
    assert "still here" in killed.content  # its PPID is the sandbox's init, not the worker
    assert os.getpid() > 0  # and this process (the worker) lives on to say so


@needs_bwrap
async def test_the_workspace_is_the_only_writable_host_tree(
    sandboxed: ToolActivities, workspace: LocalWorkspace, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "transcript.json").write_text("another agent's conversation")
    outside = f"outside-{uuid.uuid4().hex[:8]}"
    command = (
        f"echo x > ../{outside}; echo x > /{outside}; echo x > /usr/{outside}; "
        f"cat {store}/transcript.json; ls {Path.home()}; "
        f"echo x > /tmp/{outside} && echo private-tmp; echo mine > mine.txt; pwd"
    )
    result = await bash(sandboxed, command)
    assert result.content.count("Read-only file system") == 3, result.content
    assert "another agent's conversation" not in result.content
    assert "No such file or directory" in result.content  # the store and home do not exist
    assert "private-tmp" in result.content and "/workspace" in result.content
    assert (workspace.root / "mine.txt").read_text() == "mine\n"
    for place in [tmp_path / outside, Path("/") / outside, Path("/tmp") / outside]:
        assert not place.exists(), place
    # Reading system files is fine; they are bound read-only.
    assert (await bash(sandboxed, "cat ../etc/hostname")).status is ToolStatus.SUCCESS


@needs_bwrap
async def test_a_timeout_stops_everything_in_the_sandbox(
    sandboxed: ToolActivities, workspace: LocalWorkspace
) -> None:
    # setsid takes the late writer out of the process group: only the namespace ends it.
    tag = f"3.{uuid.uuid4().int % 10**6:06d}"
    command = f"setsid bash -c 'sleep {tag}; echo late > late.txt' & sleep 30"
    result = await bash(sandboxed, command, timeout_seconds=0.5)
    assert (result.status, result.error_code) == (ToolStatus.ERROR, "timeout")
    await eventually(lambda: not live_pids_with(f"sleep {tag}"), "the sandbox to end")
    assert not (workspace.root / "late.txt").exists()


@needs_bwrap
@pytest.mark.usefixtures("worker_secrets")
async def test_background_commands_are_sandboxed_too(sandboxed: ToolActivities) -> None:
    started = await bash(sandboxed, "cat /proc/*/environ; env; echo x > /escape", background=True)
    assert started.status is ToolStatus.RUNNING, started.content
    session = started.content.split("session_id ")[1].split()[0]
    request = ToolRequest(
        call=ToolCall(
            id="check",
            name="_check_background_command",
            arguments=json.dumps({"session_id": session, "wait_seconds": 20}),
        ),
        idempotency_key="wf:check",
        large_result_chars=10**9,
    )
    checked = await ActivityEnvironment().run(sandboxed.run_tool, request)
    assert "ended after" in checked.content, checked.content
    assert "HOME=/workspace" in checked.content and "Read-only file system" in checked.content
    assert not any(m in checked.content for m in MARKERS)


def test_the_sandbox_the_settings_choose() -> None:
    assert shell_sandbox(ShellSettings(sandbox=SandboxMode.NONE)).mode is SandboxMode.NONE
    chosen = shell_sandbox(ShellSettings())
    assert chosen.mode is (SandboxMode.NONE if BWRAP is None else SandboxMode.BWRAP)
    shell = ShellSettings.from_env(
        {"DURAGENT_SHELL_SANDBOX": "none", "DURAGENT_SHELL_NETWORK": "0",
         "DURAGENT_SHELL_ENV": "PIP_INDEX_URL, MISSING", "PIP_INDEX_URL": "http://mirror"}
    )  # fmt: skip
    assert (shell.sandbox, shell.network, dict(shell.env)) == (
        SandboxMode.NONE,
        False,
        {"PIP_INDEX_URL": "http://mirror"},
    )
    with pytest.raises(SettingsError, match="bwrap or none"):
        ShellSettings.from_env({"DURAGENT_SHELL_SANDBOX": "docker"})
    assert "--unshare-net" not in " ".join(
        bwrap_sandbox().argv("true", root=Path("/tmp"), cwd=Path("/tmp"))
    )
    assert "--share-net" not in bwrap_sandbox(network=False).argv(
        "true", root=Path("/tmp"), cwd=Path("/tmp")
    )


# --- redaction ---------------------------------------------------------------------------


def test_the_secrets_of_an_environment() -> None:
    found = secrets_in_environment({**WORKER_SECRETS, "HOME": "/root", "LANG": "C.UTF-8"})
    assert KEY in found and DB_PASSWORD in found and WORKER_SECRETS["SENTRY_DSN"] in found
    assert UNLISTED not in found and "/root" not in found
    assert UNLISTED in secrets_in_environment(WORKER_SECRETS, declared=["BUILD_LABEL"])
    settings = Settings.from_env({**WORKER_SECRETS, "DURAGENT_SECRET_ENV": "BUILD_LABEL"})
    assert {KEY, DB_PASSWORD, UNLISTED} <= set(settings.secrets)
    assert KEY not in repr(settings)


def test_redaction_of_text_and_models() -> None:
    quoted = 'pa"ss\\word-123'
    redactor = Redactor((KEY, quoted, "short"))
    assert redactor.redact(f"key {KEY}, short") == f"key {REDACTED}, short"
    result = ToolResult(
        call_id="c", name="_bash", status=ToolStatus.SUCCESS, content=f"{KEY} and {quoted}"
    )
    cleaned = redactor.redact_model(result)
    assert cleaned.content == f"{REDACTED} and {REDACTED}"
    assert redactor.redact_model(cleaned) is cleaned  # nothing to replace: no copy


# --- failures that fit -------------------------------------------------------------------


def test_a_failure_keeps_its_cause_within_bounds() -> None:
    def fail_deep(depth: int) -> None:
        if depth:
            fail_deep(depth - 1)
        raise ConnectionRefusedError(111, "Connection refused " + "x" * 5000)

    try:
        try:
            fail_deep(40)
        except OSError as err:
            raise ApplicationError(
                f"cannot reach the LLM endpoint, key {KEY}", type="LLMConnectionError"
            ) from err
    except ApplicationError as err:
        bounded = bounded_failure(err, Redactor((KEY,)))
    assert bounded.type == "LLMConnectionError" and not bounded.non_retryable
    assert "Connection refused" in bounded.message and "ConnectionRefusedError" in bounded.message
    assert KEY not in bounded.message and len(bounded.message) <= MAX_MESSAGE_CHARS + 50
    assert bounded.__cause__ is None
    frames = 0
    tb = bounded.__traceback__
    while tb is not None:
        frames, tb = frames + 1, tb.tb_next
    assert 0 < frames < 40  # the last frames, where it failed


async def test_a_connection_error_shows_its_cause_while_retrying_and_after(
    harness: Harness,
) -> None:
    # A closed port: a real connection error, with openai's and httpx's chain of causes.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    task = harness.script([finish()])
    policy = {"initial_interval_seconds": 1.0, "max_attempts": 3}
    async with harness.worker(LLMSettings(base_url=closed, api_key=KEY)):
        handle = await start(harness, task, llm_policy=policy)

        async def retrying_failure() -> str | None:
            pending = (await handle.describe()).raw_description.pending_activities
            if pending and pending[0].attempt >= 2 and pending[0].HasField("last_failure"):
                return str(pending[0].last_failure.message)
            return None

        async def failed_event() -> str | None:
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
                    return str(event.activity_task_failed_event_attributes.failure.message)
            return None

        while_retrying = await eventually(retrying_failure, "a retried LLM call", within=30)
        seen_by_workflow = await eventually(failed_event, "the LLM call to fail", within=30)
        await handle.terminate("test over")
    for message in [while_retrying, seen_by_workflow]:
        assert "size limit" not in message
        assert "cannot reach the LLM endpoint" in message and "ConnectError" in message
        assert KEY not in message


async def test_a_server_error_failure_is_bounded(harness: Harness) -> None:
    task = harness.script(
        [{**finish(), "faults": [{"status": 503, "message": f"upstream says {KEY} " + "y" * 8000}]}]
    )
    policy = {"initial_interval_seconds": 0.1}
    async with harness.worker(LLMSettings(base_url=harness.llm.base_url, api_key=KEY)):
        handle = await start(harness, task, llm_policy=policy)
        await handle.result()
    history = json.dumps((await handle.fetch_history()).to_json_dict())
    assert "LLM server error (503): upstream says" in history
    assert KEY not in history and "size limit" not in history


# --- an agent tries every trick ----------------------------------------------------------

TRICKS = [
    "cat /proc/$PPID/environ",
    "cat /proc/*/environ",
    "env",
    "cat ../../../etc/hostname",
    "echo owned > ../above.txt; echo owned > /above.txt",
    "ls -la {store}; cat {store}/*/* {store}/*",
    "kill -9 $PPID; kill -9 1; echo alive",
]


def all_text(root: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", errors="replace") for p in root.rglob("*") if p.is_file()
    )


@needs_bwrap
@pytest.mark.usefixtures("worker_secrets")
async def test_an_agent_trying_every_trick_leaks_nothing(harness: Harness) -> None:
    settings = harness.settings(LLMSettings(base_url=harness.llm.base_url, api_key=KEY))
    store = settings.store_dir
    assert store is not None
    tricks = [t.format(store=store) for t in TRICKS]
    background = "sleep 0.2; cat /proc/*/environ; env; kill -9 $PPID; echo bg-done"
    task = harness.script(
        [
            {"tool_calls": [call("_bash", command=t) for t in tricks]},
            {"tool_calls": [call("_bash", command=background, background=True)]},
            {"tool_calls": [call("_bash", command="sleep 1; echo next")]},
            finish(),
        ]
    )
    worker_settings = dataclasses.replace(
        settings, secrets=tuple(secrets_in_environment(os.environ))
    )
    from duragent.worker.main import agent_worker

    async with agent_worker(harness.client, worker_settings):
        handle = await start(harness, task)
        await handle.result()

    outputs = "\n".join(tool_messages(harness.requests()[-1].body))
    assert "alive" in outputs and "HOME=/workspace" in outputs  # the tricks did run
    assert outputs.count("Read-only file system") >= 1
    assert not (harness.folder(handle.id).parent / "above.txt").exists()
    assert not (harness.workspace.parent / "above.txt").exists()
    history = json.dumps((await handle.fetch_history()).to_json_dict())
    requests = json.dumps([r.body for r in harness.requests()])
    for where, text in [("history", history), ("store", all_text(store)), ("LLM", requests)]:
        for marker in MARKERS:
            assert marker not in text, f"{marker[:12]}... in the {where}"


# --- a SIGKILLed worker takes its commands with it ----------------------------------------


@pytest.mark.parametrize("mode", [SandboxMode.BWRAP, SandboxMode.NONE])
async def test_a_killed_workers_command_never_writes_its_last_line(
    harness: Harness, tmp_path: Path, mode: SandboxMode
) -> None:
    if mode is SandboxMode.BWRAP and _NO_BWRAP is not None:
        pytest.skip(_NO_BWRAP)
    tag = f"15.{uuid.uuid4().int % 10**6:06d}"
    command = f"echo started > started.txt; sleep {tag}; echo last > late.txt"
    task = harness.script([{"tool_calls": [call("_bash", command=command)]}, finish()])
    env = {**worker_env(harness), "DURAGENT_SHELL_SANDBOX": mode.value}
    harness.workspace.mkdir(parents=True, exist_ok=True)
    worker = await spawn_worker(env, tmp_path / "worker.log")
    handle = None
    try:
        handle = await start(harness, task)
        await eventually(
            lambda: (harness.folder(handle.id) / "started.txt").exists(), "the command"
        )
        # The shell (and, in the sandbox, everything in it) carries the tag on its command line.
        shells = await eventually(lambda: live_pids_with(f"sleep {tag}; echo last"), "its pid")
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        if handle is not None:
            await handle.terminate("test over")
    await eventually(lambda: not set(live_pids_with(f"sleep {tag}; echo last")) & set(shells),
                     "the command's shell to die with its worker")  # fmt: skip
    if mode is SandboxMode.BWRAP:  # the sleep too: the whole namespace is gone
        await eventually(lambda: not live_pids_with(f"sleep {tag}"), "the sandbox to end")
    assert handle is not None
    assert not (harness.folder(handle.id) / "late.txt").exists()


async def test_a_declared_secret_a_command_prints_is_redacted(harness: Harness) -> None:
    token = f"tok-marker-{uuid.uuid4().hex}"
    task = harness.script(
        [{"tool_calls": [call("_bash", command="echo t=$DEPLOY_TOKEN")]}, finish()]
    )
    settings = dataclasses.replace(
        harness.settings(),
        shell=ShellSettings(env={"DEPLOY_TOKEN": token}),
        secrets=(token,),
    )
    from duragent.worker.main import agent_worker

    async with agent_worker(harness.client, settings):
        handle = await start(harness, task)
        await handle.result()
    assert f"t={REDACTED}" in tool_messages(harness.requests()[-1].body)[0]
    history = json.dumps((await handle.fetch_history()).to_json_dict())
    assert token not in history and token not in json.dumps([r.body for r in harness.requests()])
