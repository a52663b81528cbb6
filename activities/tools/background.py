"""Background commands: shell commands that outlive the tool call that started them.

``_bash(..., background=True)`` starts a command through the worker's
:class:`BackgroundCommands` and returns at once with a ``session_id``;
``_check_background_command`` reports ``running`` with the recent output, or the exit
code and the output once it has ended. The output goes to a file in a worker-local
folder, so a chatty server does not fill the worker's memory.

What this module does, and what it leaves to the workflow:

- **In-process and per worker.** The registry lives in the worker process, which owns
  it: build it once, hand it to :class:`~activities.tools.activity.ToolActivities`,
  and :meth:`BackgroundCommands.close` it at shutdown, which stops every command still
  running (its whole process group).
- **Held by its run.** The workflow watches each command it starts with a long-running
  heartbeating activity on this worker (:meth:`BackgroundCommands.watch`), so Temporal
  sees when the worker dies: the run then tells the model ``lost``, and the command is
  gone too (it dies with its worker: bubblewrap's ``--die-with-parent``, or a
  parent-death signal). A run that closes while its command runs (it continued as new,
  or was terminated) lets go of it (:meth:`BackgroundCommands.detach`): the next run
  watches it again within :data:`DETACH_GRACE_SECONDS`, or it is stopped.
- **Lost with its worker.** A session id this worker does not know (the worker was
  restarted, or the check landed on another worker) is reported as a ``ToolError``
  with code ``lost``: the model learns the command is gone and can start it again.
- **A cancelled run's commands stop.** :meth:`BackgroundCommands.stop_run` stops
  what one workflow started; the tool activities' cleanup calls it.
- **Retries start nothing twice.** The session id is derived from the call's
  idempotency key, so an attempt retried on the same worker finds the command the
  first attempt started instead of starting another.
- **Bounded reports, unbounded log file.** Checks return at most the head and tail of
  the output; the file itself is not capped, so a command that writes without end
  should be stopped (``_stop_background_command``) or written to discard its output.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from duragent.activities.errors import ToolError
from duragent.activities.tools._process import (
    group_alive,
    read_bounded,
    read_tail,
    signal_group,
    stop_group,
    stop_group_blocking,
)
from duragent.activities.tools.sandbox import ShellSandbox

MAX_OUTPUT_CHARS = 30_000
"""Output of a finished command, head and tail kept."""
RECENT_OUTPUT_CHARS = 4_000
"""Output shown for a running command: its latest lines are what a model checks for."""
DETACH_GRACE_SECONDS = 60.0
"""How long a command whose run closed waits to be watched again (by the run that
continued it) before it is stopped: longer than a continue-as-new takes, short enough
that a terminated agent's server does not linger."""
WATCH_POLL_SECONDS = 1.0
"""How often a watch looks whether its command has ended (a Popen has no awaitable exit)."""


@dataclass(frozen=True)
class BackgroundStatus:
    """A background command as a check sees it."""

    session_id: str
    command: str
    pid: int
    running: bool
    exit_code: int | None
    """Return code once ended; negative when killed by a signal."""
    output: str
    """Recent output while running, the (bounded) whole output once ended."""
    elapsed_seconds: float
    """How long it has run, or ran (up to when it was first seen ended)."""
    already_started: bool = False
    """``True`` when :meth:`BackgroundCommands.start` found the command already running
    (a retried attempt), so it started nothing."""


@dataclass
class _Session:
    session_id: str
    key: str
    command: str
    process: subprocess.Popen[bytes]
    output: Path
    root: Path
    """The workspace folder it runs in."""
    started: float
    ended: float | None = None
    """When the shell was first seen ended (monotonic clock)."""
    group_gone: bool = False
    watchers: int = 0
    """Watch activities holding the command now."""
    reaper: asyncio.Task[None] | None = None
    """Stops the command unless a watch comes back (see ``detach``)."""


class BackgroundCommands:
    """The background commands of one worker process.

    Args:
        directory: Where output files go; a fresh temporary folder (removed on close)
            when ``None``.
        max_running: Commands that may run at once; more are refused, so a model in a
            loop cannot fork the worker to death.
        sandbox: How commands run (bubblewrap or not); foreground ``_bash`` uses the
            same one. The worker passes the one its settings chose.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        max_running: int = 16,
        sandbox: ShellSandbox | None = None,
    ) -> None:
        self.sandbox = sandbox or ShellSandbox()
        """How this worker's shell commands run."""
        self._directory = directory
        self._owns_directory = directory is None
        self._max_running = max_running
        self._sessions: dict[str, _Session] = {}

    def start(
        self,
        command: str,
        *,
        cwd: Path,
        key: str,
        stdin: str | None = None,
        root: Path | None = None,
    ) -> BackgroundStatus:
        """Start a command with ``/bin/bash -c`` in its own process group, sandboxed.

        Args:
            command: The command line.
            cwd: Working folder (already checked against the workspace).
            key: The call's idempotency key; the same key returns the same session.
            stdin: Text for standard input; none (``/dev/null``) when ``None``.
            root: The workspace root, the only tree the sandbox lets the command
                write (and its ``HOME``); ``cwd`` when ``None``.

        Raises:
            ToolError: ``too_many`` when ``max_running`` commands are running.
        """
        session_id = "bg-" + hashlib.sha256(key.encode()).hexdigest()[:16]
        if session_id in self._sessions:
            return dataclasses.replace(self.status(session_id), already_started=True)
        running = sum(1 for s in self._sessions.values() if s.process.poll() is None)
        if running >= self._max_running:
            raise ToolError(
                f"{running} background commands are running already; stop one "
                "(_stop_background_command) or wait for one to finish",
                code="too_many",
            )
        folder = self._folder()
        output = folder / f"{session_id}.log"
        process = _spawn(
            self.sandbox, command, cwd=cwd, root=root or cwd, output=output, stdin=stdin
        )
        self._sessions[session_id] = _Session(
            session_id, key, command, process, output, root or cwd, started=time.monotonic()
        )
        return self.status(session_id)

    def status(self, session_id: str) -> BackgroundStatus:
        """Where a command stands: running with recent output, or ended.

        Raises:
            ToolError: ``lost`` when this worker does not know the session.
        """
        session = self._session(session_id)
        code = session.process.poll()
        if code is not None:
            session.ended = session.ended or time.monotonic()
            self._end_leftovers(session)
            output = read_bounded(session.output, MAX_OUTPUT_CHARS)
        else:
            output = read_tail(session.output, RECENT_OUTPUT_CHARS)
        return BackgroundStatus(
            session_id=session_id,
            command=session.command,
            pid=session.process.pid,
            running=code is None,
            exit_code=code,
            output=output,
            elapsed_seconds=(session.ended or time.monotonic()) - session.started,
        )

    async def stop(self, session_id: str) -> BackgroundStatus:
        """Stop a command and everything it started (SIGTERM, then SIGKILL).

        Raises:
            ToolError: ``lost`` when this worker does not know the session.
        """
        session = self._session(session_id)
        if not session.group_gone:
            await stop_group(session.process.pid)
            session.group_gone = True
        session.process.wait()  # killed by now; this only reaps it
        return self.status(session_id)

    async def watch(
        self,
        session_id: str,
        heartbeat: Callable[[], None],
        *,
        until: Callable[[], bool] = lambda: False,
        every: float = WATCH_POLL_SECONDS,
    ) -> BackgroundStatus:
        """Hold a command until it ends (or ``until()``), heartbeating; returns its status.

        A watch that starts while the command waits to be stopped after its run closed
        (see :meth:`detach`) keeps it running.

        Raises:
            ToolError: ``lost`` when this worker does not know the session.
        """
        session = self._session(session_id)
        session.watchers += 1
        if session.reaper is not None:
            session.reaper.cancel()
            session.reaper = None
        try:
            while session.process.poll() is None and not until():
                heartbeat()
                await asyncio.sleep(every)
        finally:
            session.watchers -= 1
        return self.status(session_id)

    def detach(self, session_id: str, grace: float = DETACH_GRACE_SECONDS) -> None:
        """The run watching a command closed: stop it after ``grace`` unless watched again.

        Called when a watch is cancelled because its run is gone (continued as new, or
        terminated), not because the run asked for the command to stop.
        """
        session = self._sessions.get(session_id)
        if session is None or session.watchers > 0 or session.reaper is not None:
            return
        session.reaper = asyncio.get_running_loop().create_task(self._reap(session_id, grace))

    async def _reap(self, session_id: str, grace: float) -> None:
        await asyncio.sleep(grace)
        session = self._sessions.get(session_id)
        if session is not None and session.watchers == 0:
            session.reaper = None
            await self.stop(session_id)

    def roots_in_use(self) -> set[Path]:
        """The workspace folders running commands work in (not to be removed)."""
        return {s.root for s in self._sessions.values() if s.process.poll() is None}

    async def stop_run(self, workflow_id: str) -> list[str]:
        """Stop the commands a run started (their keys are ``workflow_id:call_id``).

        Returns:
            The session ids of the commands that were still running.
        """
        prefix = f"{workflow_id}:"
        running = [
            s.session_id
            for s in self._sessions.values()
            if s.key.startswith(prefix) and s.process.poll() is None
        ]
        for session_id in running:
            await self.stop(session_id)
        return running

    def close(self) -> None:
        """Stop every command still running and remove a temporary output folder."""
        for session in self._sessions.values():
            if session.reaper is not None:
                session.reaper.cancel()
            if not session.group_gone:
                stop_group_blocking(session.process.pid)
                session.group_gone = True
            session.process.wait()
        self._sessions.clear()
        if self._owns_directory and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __enter__(self) -> BackgroundCommands:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _session(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise ToolError(
                f"background command {session_id!r} is not known to this worker: it was "
                "lost with the worker that ran it (restarted or replaced). Start it again "
                "if you still need it.",
                code="lost",
            )
        return session

    def _end_leftovers(self, session: _Session) -> None:
        """Once the shell has ended, stop what it left running in its group."""
        if session.group_gone:
            return
        if group_alive(session.process.pid):
            # No wait here: close() sends SIGKILL to whatever ignores this.
            signal_group(session.process.pid, signal.SIGTERM)
        else:
            session.group_gone = True

    def _folder(self) -> Path:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="duragent-background-"))
        self._directory.mkdir(parents=True, exist_ok=True)
        return self._directory


def _spawn(
    sandbox: ShellSandbox,
    command: str,
    *,
    cwd: Path,
    root: Path,
    output: Path,
    stdin: str | None,
) -> subprocess.Popen[bytes]:
    stdin_file = None
    if stdin is not None:
        stdin_file = output.with_suffix(".stdin")
        stdin_file.write_text(stdin, encoding="utf-8")
    # The child keeps its own copies of these descriptors; ours close at once.
    with (
        output.open("wb") as out,
        (stdin_file or Path(os.devnull)).open("rb") as source,
    ):
        return subprocess.Popen(
            sandbox.argv(command, root=root, cwd=cwd),
            cwd=cwd,
            env=sandbox.environment(root),
            stdin=source,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=sandbox.preexec(),
        )
