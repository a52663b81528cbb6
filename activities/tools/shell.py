"""The shell tool, ``_bash``, and the tools that follow its background commands.

A command runs with ``/bin/bash -c`` in a folder of a local workspace, or of the worker's
local copy of an object-store workspace (:mod:`activities.tools.mirror`: brought up to
date before the command, what it changed sent back after), as the leader of its own
process group, inside the worker's sandbox (:mod:`activities.tools.sandbox`:
bubblewrap, with an allowlist environment, its own process namespace and the
workspace its only writable tree). The activity heartbeats while it runs. Whatever
way the call ends (the command exits, its timeout passes, or the activity is
cancelled), the whole process group is stopped, SIGTERM then SIGKILL, before the tool
returns or re-raises: a finished call leaves no process behind. Servers and long jobs
run with ``background=True`` instead (see :mod:`activities.tools.background`).

``_bash`` is declared with ``approval=dangerous_command``: the workflow asks a person
before running a command that :func:`~activities.tools.dangerous.is_dangerous_command`
flags; that check is a convenience, the sandbox is the boundary. It runs at most once
per call (``max_attempts=1``): a command's side effects are not known to be safe to
repeat after a worker died mid-way.

All three tools are ``host_affine``: the workflow runs them on the worker that holds the
agent's shell, through that worker's own task queue, so a background command is checked
and stopped where it runs, and the local copy of an object-store workspace stays warm.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from duragent.activities.errors import ToolError
from duragent.activities.models import ApprovalMode, ToolStatus
from duragent.activities.tools._process import OutputBuffer, describe_exit, stop_group
from duragent.activities.tools.background import BackgroundCommands, BackgroundStatus
from duragent.activities.tools.objectstore_workspace import S3Workspace
from duragent.activities.tools.registry import ToolContext, ToolOutput, tool
from duragent.activities.tools.sandbox import ShellSandbox
from duragent.activities.tools.workspace import LocalWorkspace

if TYPE_CHECKING:
    from duragent.activities.tools.mirror import SyncReport

MAX_TIMEOUT_SECONDS = 600
"""Longest a foreground command may run; longer work belongs in the background."""
MAX_OUTPUT_CHARS = 30_000
"""Output returned to the model, head and tail kept (about 8k tokens)."""
MAX_CHECK_WAIT_SECONDS = 60
"""Longest ``_check_background_command`` waits for a command to end."""

# Heartbeat well within the tools' 10 s heartbeat timeout.
HEARTBEAT_EVERY_SECONDS = 3.0
# Once the group is stopped its pipe closes; a process that escaped the group
# (setsid) may hold it open, and is not waited for longer than this.
_DRAIN_SECONDS = 1.0


class BashArgs(BaseModel):
    """Arguments of ``_bash``."""

    command: str = Field(min_length=1, description="The command line, run with /bin/bash -c.")
    cwd: str = Field(".", description="Working folder, relative to the workspace root.")
    timeout_seconds: float = Field(
        60,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description=f"Stop the command after this many seconds (at most {MAX_TIMEOUT_SECONDS}).",
    )
    stdin: str | None = Field(
        None, max_length=1_000_000, description="Text to feed to the command's standard input."
    )
    background: bool = Field(
        False,
        description="Start the command in the background and return at once with a "
        "session_id (for servers and long jobs); follow it with _check_background_command.",
    )


class CheckBackgroundArgs(BaseModel):
    """Arguments of ``_check_background_command``."""

    session_id: str = Field(min_length=1, description="The session_id _bash returned.")
    wait_seconds: float = Field(
        0,
        ge=0,
        le=MAX_CHECK_WAIT_SECONDS,
        description="Wait up to this many seconds for the command to end before answering.",
    )


class StopBackgroundArgs(BaseModel):
    """Arguments of ``_stop_background_command``."""

    session_id: str = Field(min_length=1, description="The session_id _bash returned.")


@dataclass(frozen=True)
class CommandResult:
    """How a foreground command ended."""

    exit_code: int
    """Return code; negative when a signal ended it."""
    output: str
    """Standard output and error interleaved, bounded (head and tail kept)."""
    timed_out: bool


@tool(
    name="_bash",
    # Room for the longest command plus stopping it and draining its output.
    timeout=timedelta(seconds=MAX_TIMEOUT_SECONDS + 30),
    heartbeat=timedelta(seconds=10),
    max_attempts=1,
    approval=ApprovalMode.DANGEROUS_COMMAND,
    host_affine=True,
)
async def bash(args: BashArgs, ctx: ToolContext) -> str | ToolOutput:
    """Run a shell command with /bin/bash -c in the workspace; returns output and exit code.

    Output is stdout and stderr interleaved; long output keeps its head and tail. The
    command is stopped after timeout_seconds, and whatever it leaves running is stopped
    when it returns: start servers and long jobs with background=true.
    """
    commands = _background(ctx) if args.background else None
    cwd, root = await _working_folder(ctx, args.cwd)
    if commands is not None:
        started = commands.start(
            args.command, cwd=cwd, root=root, key=ctx.idempotency_key, stdin=args.stdin
        )
        return ToolOutput(
            _started_text(started), status=ToolStatus.RUNNING, background=started.session_id
        )
    result = await run_command(
        args.command,
        cwd=cwd,
        root=root,
        timeout_seconds=args.timeout_seconds,
        stdin=args.stdin,
        # Without background commands there is no sandbox to share: the default
        # (none) applies. Workers always have them; see worker.main.agent_worker.
        sandbox=ctx.background.sandbox if ctx.background is not None else ShellSandbox(),
        heartbeat=ctx.heartbeat,
    )
    synced = await sync_back(ctx)
    if result.timed_out:
        raise ToolError(
            f"timed out after {args.timeout_seconds:g} s: the command and every process it "
            f"started were stopped. Output so far:\n{result.output or '(no output)'}\n"
            f"Run it with background=true, or raise timeout_seconds (at most "
            f"{MAX_TIMEOUT_SECONDS}).",
            code="timeout",
        )
    return _with_exit(result.output, result.exit_code) + _sync_note(synced)


@tool(
    name="_check_background_command",
    timeout=timedelta(seconds=MAX_CHECK_WAIT_SECONDS + 30),
    heartbeat=timedelta(seconds=10),
    host_affine=True,
)
async def check_background_command(args: CheckBackgroundArgs, ctx: ToolContext) -> ToolOutput:
    """Check a command started with _bash(background=true).

    Says whether it is still running (with its latest output) or how it ended (exit
    code and output). wait_seconds waits for the end first.
    """
    commands = _background(ctx)
    status = commands.status(args.session_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.wait_seconds
    # Polling: a Popen has no awaitable exit, and a check waits seconds at most.
    while status.running and loop.time() < deadline:
        ctx.heartbeat()
        await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
        status = commands.status(args.session_id)
    # What the command wrote so far becomes visible to the file tools on every worker.
    synced = await sync_back(ctx)
    output = _status_output(status)
    return ToolOutput(output.content + _sync_note(synced), status=output.status)


@tool(name="_stop_background_command", timeout=timedelta(seconds=30), host_affine=True)
async def stop_background_command(args: StopBackgroundArgs, ctx: ToolContext) -> str:
    """Stop a command started with _bash(background=true), and every process it started."""
    status = await _background(ctx).stop(args.session_id)
    synced = await sync_back(ctx)
    return _status_output(status).content + _sync_note(synced)


async def run_command(
    command: str,
    *,
    cwd: Path,
    timeout_seconds: float,
    root: Path | None = None,
    stdin: str | None = None,
    sandbox: ShellSandbox | None = None,
    heartbeat: Callable[[], None] = lambda: None,
) -> CommandResult:
    """Run a command to its end or its timeout; its whole process group is then stopped.

    Cancellation (``asyncio.CancelledError``) stops the process group before it
    propagates.

    Args:
        command: The command line for ``/bin/bash -c``.
        cwd: Working folder.
        timeout_seconds: Seconds before the command is stopped.
        root: The workspace root, the only tree the sandbox lets the command write
            (and its ``HOME``); ``cwd`` when ``None``.
        stdin: Text for standard input; ``/dev/null`` when ``None``.
        sandbox: How the command runs; ``none`` (no sandbox) when ``None``.
        heartbeat: Called every few seconds while the command runs.
    """
    sandbox = sandbox or ShellSandbox()
    root = root or cwd
    loop = asyncio.get_running_loop()
    output = OutputBuffer(MAX_OUTPUT_CHARS)
    transport, protocol = await loop.subprocess_exec(
        lambda: _CommandProtocol(output),
        *sandbox.argv(command, root=root, cwd=cwd),
        cwd=cwd,
        env=sandbox.environment(root),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=sandbox.preexec(),
    )
    try:
        if stdin is not None:
            _feed(transport, stdin.encode("utf-8"))
        exited = await _wait(protocol.exited, timeout_seconds, heartbeat)
    finally:
        await _stop(transport, protocol)
    code = transport.get_returncode()
    assert code is not None  # _stop waited for the exit
    return CommandResult(exit_code=code, output=output.text(), timed_out=not exited)


class _CommandProtocol(asyncio.SubprocessProtocol):
    """Collects the output and tells when the shell exits and when its pipes close.

    A protocol rather than ``asyncio.create_subprocess_exec``: before Python 3.12,
    ``Process.wait()`` also waits for the pipes to close, so a grandchild that keeps
    stdout open would make a finished command look as if it were still running.
    """

    def __init__(self, output: OutputBuffer) -> None:
        self.output = output
        self.exited = asyncio.Event()
        """Set when the shell has exited."""
        self.closed = asyncio.Event()
        """Set when the shell has exited and every pipe is closed: all output is in."""

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        """Keep the output (stdout and stderr arrive on one pipe)."""
        self.output.feed(data.encode() if isinstance(data, str) else data)

    def process_exited(self) -> None:
        """The shell has exited (its children may live on)."""
        self.exited.set()

    def connection_lost(self, exc: Exception | None) -> None:
        """The shell has exited and its pipes are closed."""
        self.closed.set()


async def _wait(exited: asyncio.Event, seconds: float, heartbeat: Callable[[], None]) -> bool:
    """Wait for the shell to exit, heartbeating; ``False`` when ``seconds`` passed first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not exited.is_set():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        await _wait_for_event(exited, min(HEARTBEAT_EVERY_SECONDS, remaining))
        heartbeat()
    return True


async def _stop(transport: asyncio.SubprocessTransport, protocol: _CommandProtocol) -> None:
    """Stop the command's group (all of it, or what it left running), then drain."""
    try:
        await stop_group(transport.get_pid())
        # SIGKILL has been sent: the exit and the end of the output follow at once,
        # unless a process escaped the group (setsid) and holds the pipe open.
        await _wait_for_event(protocol.exited, _DRAIN_SECONDS)
        await _wait_for_event(protocol.closed, _DRAIN_SECONDS)
    finally:
        transport.close()  # closes the pipes; kills the shell if it is somehow still up


async def _wait_for_event(event: asyncio.Event, seconds: float) -> None:
    """Wait until the event is set or ``seconds`` pass, whichever comes first."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=seconds)
    finally:
        waiter.cancel()


def _feed(transport: asyncio.SubprocessTransport, data: bytes) -> None:
    """Queue the input and close stdin once it is written.

    The pipe transport buffers what the command has not read yet; a command that
    exits without reading it just closes the pipe, which is not an error here.
    """
    pipe = transport.get_pipe_transport(0)
    assert isinstance(pipe, asyncio.WriteTransport)
    pipe.write(data)
    pipe.close()


def _with_exit(output: str, code: int) -> str:
    text = output or "(no output)\n"
    return f"{text}{'' if text.endswith(chr(10)) else chr(10)}[{describe_exit(code)}]"


async def _working_folder(ctx: ToolContext, cwd: str) -> tuple[Path, Path]:
    """The command's folder and the workspace root (the agent's folder, when scoped).

    A command needs a real directory: a local workspace's own, or this worker's copy of
    an object-store workspace, brought up to date first (changes go back after the
    command, see :func:`sync_back`).
    """
    workspace = ctx.workspace
    if isinstance(workspace, LocalWorkspace):
        # The agent's folder (the root of its scoped view, bound alone into the sandbox)
        # may not exist before its first write; a command runs there all the same.
        workspace.root.mkdir(parents=True, exist_ok=True)
        local = workspace
    elif ctx.mirrors is not None and isinstance(workspace, S3Workspace):
        running = ctx.background.roots_in_use() if ctx.background is not None else set()
        await ctx.mirrors.drop_idle(keep=running)
        local = LocalWorkspace(await ctx.mirrors.pull(workspace, mirror_key(workspace)))
    else:
        where = (
            f"an object store ({workspace.config.url})"
            if isinstance(workspace, S3Workspace)
            else f"a {type(workspace).__name__}"
        )
        raise ToolError(
            f"shell commands need a local folder, and this worker's workspace is {where} "
            "with no local copy for commands. Use the file tools (_read_file, _write_file, "
            "_list_files, _workspace_grep) instead.",
            code="unsupported",
        )
    folder = local.resolve(cwd)
    if not folder.is_dir():
        raise ToolError(f"no such folder for cwd: {cwd!r}", code="not_found")
    return folder, local.root


async def sync_back(ctx: ToolContext) -> SyncReport | None:
    """Send what commands changed in a local copy back to the object store, if any."""
    if not isinstance(ctx.workspace, S3Workspace) or ctx.mirrors is None:
        return None
    return await ctx.mirrors.push(ctx.workspace, mirror_key(ctx.workspace))


def mirror_key(workspace: S3Workspace) -> str:
    """Which local copy a workspace has: its store and prefix (one agent's folder)."""
    return workspace.config.url


def _sync_note(report: SyncReport | None) -> str:
    """A line for the model when files could not go back as they are."""
    if report is None or not (report.skipped or report.conflicts):
        return ""
    notes = [*report.skipped, *report.conflicts][:10]
    return "\n[workspace sync: " + "; ".join(notes) + "]"


def _background(ctx: ToolContext) -> BackgroundCommands:
    if ctx.background is None:
        raise ToolError(
            "background commands are not enabled on this worker; run the command in the foreground",
            code="unsupported",
        )
    return ctx.background


def _started_text(status: BackgroundStatus) -> str:
    verb = "was already started" if status.already_started else "started"
    state = "is running"
    if status.exit_code is not None:
        state = f"has already ended ({describe_exit(status.exit_code)})"
    return (
        f"{verb} in the background: session_id {status.session_id} (pid {status.pid}); the "
        f"command {state}. Check it with _check_background_command, stop it with "
        "_stop_background_command."
    )


def _status_output(status: BackgroundStatus) -> ToolOutput:
    elapsed = f"{status.elapsed_seconds:.0f} s"
    if status.running or status.exit_code is None:
        return ToolOutput(
            f"session {status.session_id}: running for {elapsed} (pid {status.pid}).\n"
            f"recent output:\n{status.output or '(no output yet)'}",
            status=ToolStatus.RUNNING,
        )
    return ToolOutput(
        f"session {status.session_id}: ended after {elapsed}, "
        f"{describe_exit(status.exit_code)}.\noutput:\n{status.output or '(no output)'}"
    )
