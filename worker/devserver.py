"""Find or install the pinned Temporal CLI and run a real Temporal dev server.

duragent never mocks Temporal: tests, the demo and ``duragent server`` all run
``temporal server start-dev`` with SQLite persistence. That takes three steps; this
module owns the third, :mod:`duragent.worker._temporal_cli` the first two, and every
name of all three is importable from here:

1. **Find** the CLI (:func:`find_temporal_cli`): ``$TEMPORAL_CLI``, then ``temporal``
   on ``PATH``, then the per-user cache ``cache_dir()/bin/temporal`` that every clone
   on the machine shares.
2. **Install** it when missing (:func:`ensure_temporal_cli`): ``go install`` of
   :data:`PINNED_CLI_VERSION` into the cache when a Go toolchain is present, otherwise
   the Temporal SDK's own download of the same version. A file lock keeps concurrent
   processes from building twice.
3. **Run** it (:class:`DevServer`): spawn the server in its own process group on
   fixed ports, wait until it answers real gRPC calls, stop it with SIGTERM (SIGKILL
   after a grace period), and restart it on the same ports and database so tests can
   prove that runs survive a server restart.

Sync and async use share one readiness check, :meth:`DevServer.wait_ready`, a
coroutine. :meth:`DevServer.astart` awaits it on the caller's loop (use it inside
pytest-asyncio tests and fixtures); :meth:`DevServer.start` runs it with
:func:`asyncio.run` and refuses to run inside an event loop rather than block it.

Run a server in the foreground with ``python -m worker.devserver`` (see :func:`main`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import temporalio.api.operatorservice.v1 as operator_service
import temporalio.api.workflowservice.v1 as workflow_service
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.client import Client

from duragent.worker._temporal_cli import (
    _ERROR_TAIL_LINES,
    CLI_MODULE,
    PINNED_CLI_VERSION,
    DevServerError,
    cache_dir,
    cached_cli_path,
    cli_version,
    ensure_temporal_cli,
    find_temporal_cli,
)

# tests/objectstore.py runs its SeaweedFS server with these, imported from here.
from duragent.worker._temporal_cli import _file_lock as _file_lock
from duragent.worker._temporal_cli import _log_to_stderr as _log_to_stderr
from duragent.worker._temporal_cli import _run_with_heartbeat as _run_with_heartbeat

__all__ = [
    "CLI_MODULE",
    "DEV_DYNAMIC_CONFIG",
    "PINNED_CLI_VERSION",
    "DevServer",
    "DevServerError",
    "cache_dir",
    "cached_cli_path",
    "cli_version",
    "ensure_temporal_cli",
    "find_temporal_cli",
    "free_port",
    "main",
]

# Grace period for an ordinary stop; the dev server flushes SQLite on SIGTERM.
_DEFAULT_STOP_TIMEOUT = 10.0
# One readiness probe must not eat the whole start deadline if the server accepts the
# TCP connection but has not finished booting its services.
_PROBE_TIMEOUT = 5.0
_PROBE_INTERVAL = 0.1


_PR_SET_PDEATHSIG = 1  # prctl option, from <linux/prctl.h>

DEV_DYNAMIC_CONFIG: Mapping[str, object] = {
    "history.transferProcessorMaxPollRPS": 2000,
    "history.timerProcessorMaxPollRPS": 2000,
}
"""Dynamic config every :class:`DevServer` starts with, under the caller's own values.

The dev server's defaults poll the transfer and timer queues about 20 times a second:
each activity scheduled or completed waits for the next poll, so a workflow loop runs
at most ~5 agent cycles a second (a 200 ms floor per cycle, far above the engine's own
cost) on ``duragent server``, the demo and the tests alike. Measured on a 2-core
machine with a loop of 50 no-op activities: 87 ms per activity with the defaults, 24 ms
with these. A production cluster is tuned by its operators; these only lift the cap
of a single local server.
"""


# --------------------------------------------------------------------------- running


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The kernel picks it; another process could still take it before the server binds,
    a race that is harmless in practice for a test machine.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DevServer:
    """A ``temporal server start-dev`` process on 127.0.0.1 with SQLite persistence.

    Ports are fixed when the object is built (given, or picked free), so
    :attr:`address` is known before :meth:`start` and stays the same across
    :meth:`restart`. The server's output goes to a log file, never to our stdout;
    :class:`DevServerError` messages quote its tail.

    Use it as a context manager (``with DevServer() as server:``, or ``async with`` in
    async code), or call :meth:`start`/:meth:`astart` and :meth:`stop`/:meth:`astop`.

    Args:
        db_file: SQLite database. ``None`` uses a file in a temporary directory that
            :meth:`stop` deletes; :meth:`restart` keeps it.
        port: gRPC port of the frontend; ``None`` picks a free one.
        ui: Serve the web UI. When false, the server runs ``--headless``.
        ui_port: Port of the web UI; ``None`` picks a free one (the CLI's own default,
            ``port + 1000``, may be taken).
        namespace: Namespace the server creates and readiness checks.
        search_attributes: Custom search attributes to register, name to type
            (``Keyword``, ``Text``, ``Int``, ``Double``, ``Bool``, ``Datetime``,
            ``KeywordList``).
        dynamic_config: Dynamic config overrides, e.g.
            ``{"frontend.enableUpdateWorkflowExecution": True}``; values are sent as
            JSON, which the CLI parses as YAML. Applied over
            :data:`DEV_DYNAMIC_CONFIG` (the lifted queue-poll throttle): a key given
            here wins.
        extra_args: More arguments appended to ``temporal server start-dev``.
        log_level: Server log level (``debug``, ``info``, ``warn``, ``error``).
        log_file: Where the server's stdout and stderr go. ``None`` uses a file in the
            temporary directory.
        cli: The ``temporal`` binary. ``None`` calls :func:`ensure_temporal_cli` at the
            first start (which may build it).
    """

    def __init__(
        self,
        *,
        db_file: Path | None = None,
        port: int | None = None,
        ui: bool = True,
        ui_port: int | None = None,
        namespace: str = "default",
        search_attributes: Mapping[str, str] | None = None,
        dynamic_config: Mapping[str, object] | None = None,
        extra_args: Sequence[str] = (),
        log_level: str = "warn",
        log_file: Path | None = None,
        cli: Path | None = None,
    ) -> None:
        self._port = port if port is not None else free_port()
        self._ui_port = (ui_port if ui_port is not None else free_port()) if ui else None
        self._namespace = namespace
        self._search_attributes = dict(search_attributes or {})
        self._dynamic_config = {**DEV_DYNAMIC_CONFIG, **(dynamic_config or {})}
        self._extra_args = list(extra_args)
        self._log_level = log_level
        self._cli = cli
        self._db_file_arg = db_file
        self._log_file_arg = log_file
        # Created lazily and removed by stop(): holds the default db and log files.
        self._tmp_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- properties

    @property
    def address(self) -> str:
        """``host:port`` of the gRPC frontend, for ``Client.connect``."""
        return f"127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        """Port of the gRPC frontend."""
        return self._port

    @property
    def ui_url(self) -> str | None:
        """URL of the web UI, or ``None`` when running headless."""
        return None if self._ui_port is None else f"http://127.0.0.1:{self._ui_port}"

    @property
    def namespace(self) -> str:
        """Namespace the server was started with."""
        return self._namespace

    @property
    def db_file(self) -> Path:
        """SQLite database path (created on first use when it is a temporary one)."""
        return self._db_file_arg or self._scratch_dir() / "temporal.db"

    @property
    def log_file(self) -> Path:
        """File receiving the server's stdout and stderr."""
        return self._log_file_arg or self._scratch_dir() / "server.log"

    @property
    def pid(self) -> int | None:
        """Process id of the running server (the ``temporal`` CLI), or ``None``."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    # ---- lifecycle

    def command(self) -> list[str]:
        """Return the full ``temporal server start-dev`` command line.

        The program is plain ``temporal`` until the first start resolves the CLI.
        """
        cli = self._cli or Path("temporal")
        args = [
            str(cli), "server", "start-dev",
            "--ip", "127.0.0.1",
            "--port", str(self._port),
            "--db-filename", str(self.db_file),
            "--namespace", self._namespace,
            "--log-level", self._log_level,
        ]  # fmt: skip
        args += ["--headless"] if self._ui_port is None else ["--ui-port", str(self._ui_port)]
        for key, value in self._dynamic_config.items():
            args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
        for name, kind in self._search_attributes.items():
            args += ["--search-attribute", f"{name}={kind}"]
        return args + self._extra_args

    async def astart(self, ready_timeout: float = 60.0) -> None:
        """Start the server and wait, without blocking the event loop, until it answers.

        Args:
            ready_timeout: Seconds to wait for readiness (not counting a first CLI
                install). Named so, not ``timeout``, because an async ``timeout``
                parameter reads like a cancel-scope (ruff ASYNC109); this one is a
                deadline whose expiry produces a DevServerError quoting the server log.

        Raises:
            DevServerError: Already running, the process exited early, or no answer
                before the deadline.
        """
        if self._cli is None:
            # May build the CLI for minutes: keep the loop responsive meanwhile.
            self._cli = await asyncio.to_thread(ensure_temporal_cli)
        self._spawn()
        await self._ready_or_kill(ready_timeout)

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and block until it answers (sync callers only).

        Args:
            timeout: Seconds to wait for readiness (not counting a first CLI install).

        Raises:
            DevServerError: Called from inside a running event loop (use :meth:`astart`),
                already running, the process exited early, or no answer in time.
        """
        _refuse_inside_event_loop("start", "astart")
        if self._cli is None:
            self._cli = ensure_temporal_cli()
        self._spawn()
        asyncio.run(self._ready_or_kill(timeout))

    async def wait_ready(self, ready_timeout: float = 60.0) -> None:
        """Poll until the frontend serves the namespace (and its search attributes).

        A probe is a real gRPC round trip: ``Client.connect`` (which calls
        ``GetSystemInfo``), ``DescribeNamespace`` and, when search attributes were
        asked for, ``ListSearchAttributes``. An open port alone is not ready.

        Args:
            ready_timeout: Seconds before giving up.

        Raises:
            DevServerError: The process exited, or the deadline passed; the message
                quotes the server log's tail.
        """
        deadline = time.monotonic() + ready_timeout
        last_error: Exception | None = None
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise DevServerError(
                    f"temporal dev server exited early (code {code}).\n{self.log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DevServerError(
                    f"temporal dev server at {self.address} not ready after {ready_timeout:.0f} s "
                    f"(last error: {last_error}).\n{self.log_tail()}"
                )
            try:
                async with asyncio.timeout(min(remaining, _PROBE_TIMEOUT)):
                    await self._probe()
                return
            except Exception as err:  # refused, unavailable, namespace not yet there...
                last_error = err
            await asyncio.sleep(_PROBE_INTERVAL)

    async def _probe(self) -> None:
        client = await Client.connect(self.address, namespace=self._namespace)
        await client.workflow_service.describe_namespace(
            workflow_service.DescribeNamespaceRequest(namespace=self._namespace)
        )
        if self._search_attributes:
            listed = await client.operator_service.list_search_attributes(
                operator_service.ListSearchAttributesRequest(namespace=self._namespace)
            )
            missing = set(self._search_attributes) - set(listed.custom_attributes)
            if missing:
                # The CLI's --search-attribute only applies to a new database; one kept
                # from an earlier run (the demo's) gets them registered here.
                await client.operator_service.add_search_attributes(
                    operator_service.AddSearchAttributesRequest(
                        namespace=self._namespace,
                        search_attributes={
                            name: _indexed_type(self._search_attributes[name]) for name in missing
                        },
                    )
                )
                raise DevServerError(f"search attributes not registered yet: {sorted(missing)}")

    async def _ready_or_kill(self, ready_timeout: float) -> None:
        try:
            await self.wait_ready(ready_timeout)
        except BaseException:
            # Never leave a half-started server behind, even when cancelled.
            self._terminate(_DEFAULT_STOP_TIMEOUT)
            raise

    def stop(self, timeout: float = _DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the server and delete the temporary db and log, if any.

        Sends SIGTERM to the server's process group, SIGKILL after ``timeout`` seconds,
        and reaps it. Safe to call when not running.

        Args:
            timeout: Grace period in seconds before SIGKILL.
        """
        self._terminate(timeout)
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None

    async def astop(self, stop_timeout: float = _DEFAULT_STOP_TIMEOUT) -> None:
        """Async :meth:`stop`: waits for the process in a thread, not on the loop.

        Args:
            stop_timeout: Grace period in seconds before SIGKILL.
        """
        await asyncio.to_thread(self.stop, stop_timeout)

    def restart(self, timeout: float = 60.0) -> None:
        """Stop the server and start it again on the same ports and database (sync).

        Args:
            timeout: Seconds to wait for readiness after the new start.
        """
        _refuse_inside_event_loop("restart", "arestart")
        self._terminate(_DEFAULT_STOP_TIMEOUT)
        self.start(timeout)

    async def arestart(self, ready_timeout: float = 60.0) -> None:
        """Async :meth:`restart`: same ports, same database, loop never blocked.

        Args:
            ready_timeout: Seconds to wait for readiness after the new start.
        """
        await asyncio.to_thread(self._terminate, _DEFAULT_STOP_TIMEOUT)
        await self.astart(ready_timeout)

    def _spawn(self) -> None:
        if self.running:
            raise DevServerError(f"temporal dev server already running at {self.address}")
        self._proc = None  # forget an exited process: reaped by _terminate or wait_ready
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        # Append: after a restart the log still shows why the previous run ended.
        with self.log_file.open("ab") as log:
            # Own session = own process group: stop() signals the server and anything
            # it spawned, and a Ctrl-C aimed at our terminal does not reach it first.
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                # The Go server reads OTEL_* too and refuses values meant for duragent
                # (e.g. OTEL_TRACES_EXPORTER=console): the server gets none of them.
                env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            )

    def _terminate(self, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()

    def _scratch_dir(self) -> Path:
        if self._tmp_dir is None:
            self._tmp_dir = Path(tempfile.mkdtemp(prefix="duragent-devserver-"))
        return self._tmp_dir

    def log_tail(self, lines: int = _ERROR_TAIL_LINES) -> str:
        """Return the last ``lines`` lines of the server log, with a header naming the file."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError as err:
            return f"(no server log at {self.log_file}: {err})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"Server log {self.log_file} (tail):\n{tail}"

    # ---- context managers

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()


def _indexed_type(kind: str) -> IndexedValueType.ValueType:
    """``KeywordList`` -> ``INDEXED_VALUE_TYPE_KEYWORD_LIST``."""
    snake = "".join(f"_{c}" if c.isupper() else c for c in kind).lstrip("_").upper()
    return IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{snake}")


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM the server when we die.

    A test run or demo killed with SIGKILL never reaches ``stop()``; without this its
    server would live on as an orphan holding ports and files.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pgid, signum)


def _refuse_inside_event_loop(method: str, async_method: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise DevServerError(
        f"DevServer.{method}() would block the running event loop; "
        f"use `await server.{async_method}()` (or `async with DevServer() as server`)."
    )


# --------------------------------------------------------------------------- CLI


def _search_attribute(text: str) -> tuple[str, str]:
    name, sep, kind = text.partition("=")
    if not (sep and name and kind):
        raise argparse.ArgumentTypeError(f"expected NAME=TYPE, e.g. AgentStatus=Keyword: {text!r}")
    return name, kind


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m worker.devserver",
        description=f"Run a Temporal dev server (CLI {PINNED_CLI_VERSION}) in the foreground.",
    )
    parser.add_argument("--port", type=int, default=7233, help="gRPC port (default 7233)")
    parser.add_argument("--ui-port", type=int, default=8233, help="web UI port (default 8233)")
    parser.add_argument("--headless", action="store_true", help="do not serve the web UI")
    parser.add_argument(
        "--db-file",
        type=Path,
        default=None,
        help="SQLite file that keeps workflows across restarts (default: temporary)",
    )
    parser.add_argument(
        "--search-attribute",
        action="append",
        default=[],
        type=_search_attribute,
        metavar="NAME=TYPE",
        help="register a custom search attribute (repeatable)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run a dev server until SIGINT or SIGTERM; the entry point of ``duragent server``.

    Args:
        argv: Command-line arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        Process exit code: 0 after a requested stop, 1 if the server failed.
    """
    args = _parse_args(argv)
    server = DevServer(
        port=args.port,
        ui=not args.headless,
        ui_port=args.ui_port,
        db_file=args.db_file,
        search_attributes=dict(args.search_attribute),
    )
    stop_requested = threading.Event()
    # Restored in `finally`: `duragent server` may call main() inside a longer-lived process.
    previous = {
        signum: signal.signal(signum, lambda *_: stop_requested.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.start()
        print(f"Temporal dev server: {server.address} (namespace {server.namespace})")
        if server.ui_url:
            print(f"Web UI: {server.ui_url}")
        print(f"Server log: {server.log_file}. Ctrl-C to stop.", flush=True)
        # Wake up now and then to notice a server that died on its own.
        while server.running and not stop_requested.wait(timeout=1.0):
            pass
        if not stop_requested.is_set():
            _log_to_stderr(f"duragent: the dev server exited on its own.\n{server.log_tail()}")
            return 1
        return 0
    except DevServerError as err:
        _log_to_stderr(f"duragent: {err}")
        return 1
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
