"""Process groups and bounded output for shell commands.

Every command runs as the leader of its own process group (``start_new_session``), so
stopping it means signalling the group: the command and everything it started, down
to grandchildren that outlive their parent. Inside the bubblewrap sandbox the group
leader is ``bwrap`` itself: its sandboxed processes stay in its group, and when it is
killed its PID namespace ends with it, so even a command that left the group stops.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

# SIGTERM first so commands can clean up (temp files, child processes); whatever is
# still alive after this many seconds gets SIGKILL.
STOP_GRACE_SECONDS = 2.0

# How often a stopping group is checked; short enough that stopping feels immediate.
_POLL_SECONDS = 0.05


def group_alive(pgid: int) -> bool:
    """Whether a process of the group is still alive (zombies do not count).

    Zombies are ignored because an orphaned grandchild is reaped by whatever adopted
    it, which may take its time or, under a minimal init, never happen.
    """
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: a signal 0 is the best available probe
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if entry.name.isdigit():
            state = _state_and_group(entry / "stat")
            if state is not None and state[1] == pgid and state[0] != "Z":
                return True
    return False


def _state_and_group(stat_file: Path) -> tuple[str, int] | None:
    try:
        stat = stat_file.read_text()
    except OSError:  # the process ended while we looked
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0], int(fields[2])


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send a signal to a process group; ``False`` when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def stop_group(pgid: int, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM a process group, wait up to ``grace`` seconds, then SIGKILL the rest.

    SIGKILL is sent even when this coroutine is itself cancelled while waiting, so a
    cancelled caller never leaves the group behind.
    """
    if not signal_group(pgid, signal.SIGTERM):
        return
    try:
        deadline = time.monotonic() + grace
        # Polling: nothing signals "this process group is empty" (grandchildren are not
        # our children, so there is no exit event to wait on).
        while group_alive(pgid) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_POLL_SECONDS)
    finally:
        signal_group(pgid, signal.SIGKILL)


def stop_group_blocking(pgid: int, grace: float = STOP_GRACE_SECONDS) -> None:
    """:func:`stop_group` for synchronous callers (worker shutdown)."""
    if not signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
    signal_group(pgid, signal.SIGKILL)


def describe_exit(code: int) -> str:
    """``exit code 3``, or ``killed by SIGTERM`` for a negative return code."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


class OutputBuffer:
    """Keeps the head and the tail of a stream within a limit, counting the middle.

    The start of an output says what the command did, the end says how it ended; the
    middle of a long build log is what a model can best do without.
    """

    def __init__(self, limit: int) -> None:
        self._head_limit = limit // 3
        self._tail_limit = limit - self._head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0

    def feed(self, data: bytes) -> None:
        """Add a chunk of output."""
        self._total += len(data)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        self._tail += data
        if len(self._tail) > self._tail_limit:
            del self._tail[: len(self._tail) - self._tail_limit]

    def text(self) -> str:
        """The output, with a note where the middle was left out."""
        return bounded_text(bytes(self._head), bytes(self._tail), self._total)


def bounded_text(head: bytes, tail: bytes, total: int) -> str:
    """Join a head and a tail of ``total`` bytes, noting how much was left out."""
    omitted = total - len(head) - len(tail)
    if omitted <= 0:
        return (head + tail).decode("utf-8", errors="replace")
    return (
        head.decode("utf-8", errors="replace")
        + f"\n[... {omitted:,} bytes of output left out ...]\n"
        + tail.decode("utf-8", errors="replace")
    )


def read_bounded(path: Path, limit: int) -> str:
    """A file's text within ``limit`` bytes: its head and tail, the middle noted."""
    size = path.stat().st_size
    head_limit = limit // 3
    with path.open("rb") as f:
        if size <= limit:
            return f.read().decode("utf-8", errors="replace")
        head = f.read(head_limit)
        f.seek(size - (limit - head_limit))
        return bounded_text(head, f.read(), size)


def read_tail(path: Path, limit: int) -> str:
    """The last ``limit`` bytes of a file as text."""
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - limit))
        return f.read().decode("utf-8", errors="replace")
