"""Find or install the pinned Temporal CLI: the first two steps of :mod:`.devserver`.

1. **Find** (:func:`find_temporal_cli`): ``$TEMPORAL_CLI``, then ``temporal`` on
   ``PATH``, then the per-user cache ``cache_dir()/bin/temporal``.
2. **Install** (:func:`ensure_temporal_cli`): ``go install`` of
   :data:`PINNED_CLI_VERSION` into the cache, or the Temporal SDK's download of the
   same version, under a file lock.

Everything public here is re-exported by :mod:`duragent.worker.devserver`; import it
from there.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

PINNED_CLI_VERSION = "v1.5.1"
"""Temporal CLI release the project is tested against (``go install`` tag and SDK download)."""

CLI_MODULE = "github.com/temporalio/cli/cmd/temporal"
"""Go package path of the ``temporal`` command."""

# A cold `go install` of the CLI compiles the whole Temporal server: minutes of silence
# unless we say something. 15 s is often enough to show life, rare enough not to spam.
_HEARTBEAT_SECONDS = 15.0
# Enough build output to show the failing package and its compiler errors.
_ERROR_TAIL_LINES = 40


class DevServerError(RuntimeError):
    """The Temporal CLI could not be found, installed, started or stopped.

    The message says what was tried and, where a process failed, ends with the tail of
    its output.
    """


def _log_to_stderr(message: str) -> None:
    """Default progress sink: stderr, so stdout stays free for a command's own output."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- finding


def cache_dir() -> Path:
    """Return the per-user cache directory shared by every duragent clone.

    ``$DURAGENT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/duragent``, else
    ``~/.cache/duragent``. The directory is not created here.
    """
    if explicit := os.environ.get("DURAGENT_CACHE_DIR"):
        return Path(explicit).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "duragent"
    return Path.home() / ".cache" / "duragent"


def cached_cli_path() -> Path:
    """Return where :func:`ensure_temporal_cli` installs the CLI: ``cache_dir()/bin/temporal``."""
    return cache_dir() / "bin" / "temporal"


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_temporal_cli() -> Path | None:
    """Locate an installed Temporal CLI without installing anything.

    Looks, in order, at ``$TEMPORAL_CLI``, ``temporal`` on ``PATH`` and
    :func:`cached_cli_path`. A ``PATH`` or ``$TEMPORAL_CLI`` binary is used whatever its
    version: that is the user's explicit choice.

    Returns:
        The path of the CLI, or ``None`` if none is installed.

    Raises:
        DevServerError: ``$TEMPORAL_CLI`` is set but is not an executable file. An
            explicit setting that is wrong must not silently fall through to another CLI.
    """
    if explicit := os.environ.get("TEMPORAL_CLI"):
        path = Path(explicit).expanduser()
        if not _is_executable(path):
            raise DevServerError(
                f"TEMPORAL_CLI={explicit!r} is not an executable file. Point it at a "
                f"`temporal` binary, or unset it to use PATH or the cache ({cached_cli_path()})."
            )
        return path
    if on_path := shutil.which("temporal"):
        return Path(on_path)
    cached = cached_cli_path()
    return cached if _is_executable(cached) else None


def cli_version(cli: Path) -> str:
    """Return the version a Temporal CLI reports, e.g. ``"1.5.1"``.

    A CLI built with ``go install`` reports ``"0.0.0-DEV"``: release builds stamp the
    version with linker flags that ``go install`` does not pass.

    Args:
        cli: Path of the ``temporal`` binary.

    Raises:
        DevServerError: The binary does not run or prints something unexpected.
    """
    try:
        done = subprocess.run(
            [str(cli), "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise DevServerError(f"cannot run {cli} --version: {err}") from err
    # Output looks like "temporal version 1.5.1 (Server 1.29.1, UI 2.42.1)".
    words = done.stdout.split()
    if len(words) < 3 or words[:2] != ["temporal", "version"]:
        raise DevServerError(f"unexpected `{cli} --version` output: {done.stdout!r}")
    return words[2]


# --------------------------------------------------------------------------- installing


def ensure_temporal_cli(*, log: Callable[[str], None] = _log_to_stderr) -> Path:
    """Return a usable Temporal CLI, installing the pinned version if none is found.

    Installs into :func:`cached_cli_path`: with ``go install`` when ``go`` is on
    ``PATH`` (the first build takes a few minutes; progress goes to ``log``), otherwise
    with the Temporal SDK's download of the same release. A cached CLI of another
    version (the pin moved) is replaced. ``<cache>/install.lock`` serialises installs
    across processes; whoever waits on it re-checks and reuses the winner's binary.

    Args:
        log: Receives one line per progress event. Defaults to stderr.

    Returns:
        Path of the ``temporal`` binary.

    Raises:
        DevServerError: Installation failed; the message ends with the build output's tail.
    """
    found = _usable_cli()
    if found is not None:
        return found
    lock_path = cache_dir() / "install.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(lock_path, log=log):
        # Another process may have installed it while we waited for the lock.
        found = _usable_cli()
        if found is not None:
            return found
        target = cached_cli_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        if shutil.which("go"):
            _go_install(target, log=log)
        else:
            _sdk_download(target, log=log)
        _version_stamp(target).write_text(PINNED_CLI_VERSION + "\n")
        return target


def _version_stamp(cli: Path) -> Path:
    return cli.with_name(cli.name + ".version")


def _usable_cli() -> Path | None:
    """Return the found CLI unless it is a cached binary stamped with another version.

    ``temporal --version`` of a ``go install`` build says ``0.0.0-DEV`` (releases set
    the version with linker flags), so the cache keeps the pin in a stamp file written
    next to the binary. A cached binary without a stamp (installed by hand or by an
    older duragent) is trusted.
    """
    found = find_temporal_cli()
    if found is None or found != cached_cli_path():
        return found
    stamp = _version_stamp(found)
    if stamp.is_file() and stamp.read_text().strip() != PINNED_CLI_VERSION:
        return None
    return found


@contextlib.contextmanager
def _file_lock(path: Path, *, log: Callable[[str], None]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; the kernel drops it if we die."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"duragent: another process is installing the Temporal CLI; waiting ({path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _go_install(target: Path, *, log: Callable[[str], None]) -> None:
    """Build the pinned CLI with ``go install`` and move it atomically to ``target``.

    Go copies its output into GOBIN non-atomically; building into a private staging
    directory and renaming means no other process ever runs a half-written binary.
    """
    package = f"{CLI_MODULE}@{PINNED_CLI_VERSION}"
    log(
        f"duragent: building Temporal CLI {PINNED_CLI_VERSION} with `go install {package}` "
        f"into {target.parent}. This takes a few minutes, once per machine."
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=target.parent) as staging:
        env = {**os.environ, "GOBIN": staging}
        # -v prints each package as it compiles: the heartbeat can show real progress.
        returncode, tail = _run_with_heartbeat(["go", "install", "-v", package], env=env, log=log)
        built = Path(staging) / "temporal"
        if returncode != 0 or not built.is_file():
            raise DevServerError(
                f"`go install {package}` failed (exit {returncode}). Last output:\n"
                + "\n".join(tail)
            )
        os.replace(built, target)
    log(f"duragent: Temporal CLI ready at {target} ({time.monotonic() - started:.0f} s)")


def _run_with_heartbeat(
    command: Sequence[str], *, env: Mapping[str, str], log: Callable[[str], None]
) -> tuple[int, list[str]]:
    """Run ``command``, logging a heartbeat with its latest line every ~15 s.

    Returns:
        The exit code and the last lines of combined stdout/stderr.
    """
    tail: collections.deque[str] = collections.deque(maxlen=_ERROR_TAIL_LINES)
    started = time.monotonic()
    with subprocess.Popen(
        list(command),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None  # set by stdout=PIPE
        # A thread drains the pipe so the heartbeat keeps its rhythm while go is silent.
        reader = threading.Thread(target=_drain, args=(proc.stdout, tail), daemon=True)
        reader.start()
        while True:
            try:
                returncode = proc.wait(timeout=_HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                latest = tail[-1] if tail else "no output yet"
                log(f"duragent: still building ({time.monotonic() - started:.0f} s): {latest}")
        reader.join()
    return returncode, list(tail)


def _drain(stream: IO[str], sink: collections.deque[str]) -> None:
    for line in stream:
        sink.append(line.rstrip())


def _sdk_download(target: Path, *, log: Callable[[str], None]) -> None:
    """Fetch the pinned CLI release the way ``WorkflowEnvironment.start_local`` does.

    The SDK offers no download-only call, so this starts (and at once stops) an
    ephemeral server with ``dev_server_download_version=PINNED_CLI_VERSION`` and a
    private ``download_dest_dir``, then moves the binary the SDK left there (its core
    names it ``temporal-<version>``) into the cache.
    """
    log(
        f"duragent: no Go toolchain; downloading Temporal CLI {PINNED_CLI_VERSION} "
        "through the Temporal SDK (needs https://temporal.download)"
    )
    with tempfile.TemporaryDirectory(prefix=".sdk-download-", dir=target.parent) as staging:
        # The SDK call is a coroutine; a private loop in a thread keeps this function
        # callable both from sync code and from code already inside an event loop.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            try:
                pool.submit(asyncio.run, _start_and_stop_sdk_server(Path(staging))).result()
            except Exception as err:
                raise DevServerError(
                    f"no Go toolchain and the SDK download of Temporal CLI "
                    f"{PINNED_CLI_VERSION} failed ({err}). Install Go (https://go.dev/dl/) "
                    "or set TEMPORAL_CLI to an existing `temporal` binary."
                ) from err
        candidates = sorted(Path(staging).glob(f"temporal-{PINNED_CLI_VERSION}*"))
        if not candidates:
            raise DevServerError(
                f"the SDK ran a dev server but left no temporal-{PINNED_CLI_VERSION} binary "
                "where expected. Install Go (https://go.dev/dl/) or set TEMPORAL_CLI."
            )
        os.replace(candidates[0], target)
    log(f"duragent: Temporal CLI ready at {target}")


async def _start_and_stop_sdk_server(download_dir: Path) -> None:
    # Imported here: the testing package is only needed on this rare path.
    from temporalio.testing import WorkflowEnvironment

    env = await WorkflowEnvironment.start_local(
        download_dest_dir=str(download_dir),
        dev_server_download_version=PINNED_CLI_VERSION,
        ui=False,
    )
    await env.shutdown()
