"""The mirror folder on disk, as a hostile command may have left it.

Every call goes through directory file descriptors opened one component at a time with
``O_NOFOLLOW``: a symlink anywhere on a path fails the call (``ELOOP``) instead of
leading out of the folder, even one a command still running swaps in between a check
and a use. Reads open regular files only (checked before the open, and again on the
open descriptor); writes go to a new file beside the target and are renamed over it, so
nothing is ever written through a link. Used by :mod:`activities.tools.mirror`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from duragent.activities.errors import ToolError
from duragent.activities.tools.workspace import ancestors, join_path, normalize_path

# Paths longer than this are skipped: no object store takes them (S3 keys end at 1,024
# bytes), and it bounds how deep a hostile command's folder tree can send the walk.
_MAX_PATH_BYTES = 1024

# A file modified this recently may be modified again within the file system's
# timestamp granularity (jiffies, or 1-2 s on some file systems), which would leave its
# mtime unchanged: see ``_settle``.
_RECENT_NS = 2_000_000_000

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after the check must not block the open.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

LocalStamp = tuple[int, int]
"""A local file's ``(size, mtime_ns)``."""

# Matches no file: recorded for a file that changed while it was read, so the next
# push reads and sends it again.
_CHANGING: LocalStamp = (-1, -1)
# What a path that is there but no regular file (a symlink, a folder) compares as.
NOT_A_FILE: LocalStamp = (-2, -2)


@dataclass
class LocalTree:
    """What a walk of the mirror folder found."""

    files: dict[str, LocalStamp] = field(default_factory=dict)
    """Regular files that can be copied."""
    others: dict[str, str] = field(default_factory=dict)
    """Paths that are there but cannot be copied, and why."""
    folders: set[str] = field(default_factory=set)
    unreadable: set[str] = field(default_factory=set)
    """Folders that could not be listed: what is below them is unknown, not deleted."""

    def stamp(self, path: str) -> LocalStamp | None:
        """The file's stamp, ``NOT_A_FILE`` for anything else there, ``None`` if absent."""
        if path in self.files:
            return self.files[path]
        if path in self.others or path in self.folders or self.hidden(path):
            return NOT_A_FILE
        return None

    def gone(self, path: str) -> bool:
        """Whether no file is here (a folder in its place counts: the file is gone)."""
        return path not in self.files and path not in self.others and not self.hidden(path)

    def hidden(self, path: str) -> bool:
        """Whether the path is below a folder that could not be listed."""
        return bool(self.unreadable) and any(
            folder in self.unreadable for folder in ancestors(path, including_self=False)
        )


class Skip(Exception):
    """A file cannot be copied; the message says why."""


class Conflict(Exception):
    """A file changed locally while it was being replaced; it is left as it is."""


# ==== walking, reading, writing ===========================================================


@contextlib.contextmanager
def opened(folder: Path) -> Iterator[int]:
    """The mirror folder as a descriptor (the folder itself must not be a link)."""
    fd = os.open(folder, _DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


def _parts(path: str) -> list[str]:
    """The components of a checked path; refuses anything that could climb out."""
    if path == ".":
        return []
    parts = path.split("/")
    if any(part in ("", ".", "..") or "\x00" in part for part in parts):
        raise ValueError(f"not a mirror path: {path!r}")
    return parts


def _open_folder(root: int, parts: Sequence[str], *, create: bool = False) -> int:
    """A descriptor of a folder below ``root``, opened one component at a time.

    ``O_NOFOLLOW`` at each step: a symlink anywhere on the way fails (``ELOOP``)
    instead of leading out, even one swapped in by a command still running.
    """
    fd = os.dup(root)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def scan(root: int, max_bytes: int) -> LocalTree:
    """Walk the mirror folder: regular files, folders, and what cannot be copied."""
    tree = LocalTree()
    pending = ["."]
    while pending:
        folder = pending.pop()
        try:
            fd = _open_folder(root, _parts(folder))
            try:
                names = os.listdir(fd)
                for name in names:
                    _classify(tree, fd, join_path(folder, name), name, max_bytes, pending)
            finally:
                os.close(fd)
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed, or replaced by a file, since it was listed
        except OSError as err:
            # Unlisted is not deleted: what is below stays in the store as it is.
            tree.unreadable.add(folder)
            tree.others[folder] = f"cannot be read ({err.strerror}); not saved in the workspace"
    return tree


def _classify(
    tree: LocalTree, fd: int, path: str, name: str, max_bytes: int, pending: list[str]
) -> None:
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError as err:  # a folder without search permission: what it holds is unknown
        tree.unreadable.add(path)
        tree.others[path] = f"cannot be read ({err.strerror}); not saved in the workspace"
        return
    mode = info.st_mode
    if why := unstorable(path):
        tree.others[path] = f"{why}; not saved in the workspace"
    elif stat.S_ISDIR(mode):
        tree.folders.add(path)
        pending.append(path)
    elif not stat.S_ISREG(mode):
        tree.others[path] = f"{_kind(mode)}, not saved in the workspace"
    elif info.st_size > max_bytes:
        tree.others[path] = too_big(info.st_size, max_bytes, "not saved in the workspace")
    else:
        tree.files[path] = (info.st_size, info.st_mtime_ns)


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _stamp_of(info: os.stat_result | None) -> LocalStamp | None:
    if info is None:
        return None
    if not stat.S_ISREG(info.st_mode):
        return NOT_A_FILE
    return (info.st_size, info.st_mtime_ns)


def write_file(
    root: int, path: str, data: bytes, mtime_ns: int, expected: LocalStamp | None
) -> LocalStamp:
    """Replace a local file by the store's version, by rename (never through a link).

    Args:
        root: The mirror folder's descriptor.
        path: A workspace path (checked again here).
        data: The content.
        mtime_ns: The store's modification time, given to the file (``0``: now).
        expected: The local stamp the file had at the walk (``None``: absent).

    Raises:
        Skip: It cannot be written here (a folder in the way, a full disk, ...).
        Conflict: The local file changed since the walk: it is left alone.
    """
    *folders, name = _parts(path)
    try:
        parent = _open_folder(root, folders, create=True)
    except OSError as err:
        raise Skip(f"cannot make its folder here ({err.strerror}); not copied here") from None
    try:
        old = _lstat(parent, name)
        if _stamp_of(old) != expected:
            raise Conflict("changed here while the workspace's version was copied; kept")
        keep_mode = stat.S_IMODE(old.st_mode) if old is not None else None
        return _replace(parent, name, data, keep_mode, mtime_ns)
    except OSError as err:
        raise Skip(f"cannot be written here ({err.strerror}); not copied here") from None
    finally:
        os.close(parent)


def _replace(parent: int, name: str, data: bytes, mode: int | None, mtime_ns: int) -> LocalStamp:
    """Write a temporary file beside ``name`` and rename it over ``name``."""
    temporary = f".duragent-pull-{secrets.token_hex(8)}"
    fd = os.open(temporary, _CREATE_FLAGS, 0o644, dir_fd=parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            if mode is not None:  # an executable the store updated stays executable
                os.chmod(fd, mode)
            if mtime_ns:
                # The store's time, not now: a command's write right after this one
                # then changes the mtime even within one tick of the file system clock.
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            written = os.fstat(fd)
        os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=parent)
        raise
    return (written.st_size, written.st_mtime_ns)


def read_file(root: int, path: str, max_bytes: int) -> tuple[bytes, LocalStamp] | None:
    """A regular file's content and stamp; ``None`` when it is gone.

    Raises:
        Skip: It is no regular file now, too large, or unreadable.
    """
    *folders, name = _parts(path)
    try:
        parent = _open_folder(root, folders)
    except OSError:  # a parent removed, or replaced by a link, since the walk
        return None
    try:
        info = _lstat(parent, name)
        if info is None:
            return None
        if not stat.S_ISREG(info.st_mode):  # checked first: a device is never opened
            raise Skip(f"{_kind(info.st_mode)}, not saved in the workspace")
        fd = os.open(name, _READ_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        return None
    except OSError as err:  # ELOOP: a link swapped in since the check; EACCES
        raise Skip(f"cannot be read ({err.strerror}); not saved in the workspace") from None
    finally:
        os.close(parent)
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Skip(f"{_kind(info.st_mode)}, not saved in the workspace")
        if info.st_size > max_bytes:
            raise Skip(too_big(info.st_size, max_bytes, "not saved in the workspace"))
        stamp = _settle(fd, info)
        data = source.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise Skip(too_big(len(data), max_bytes, "not saved in the workspace"))
        after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns) != stamp:
        stamp = _CHANGING  # written to while read: send it again next time
    return data, stamp


def _settle(fd: int, info: os.stat_result) -> LocalStamp:
    """The stamp to remember for a file about to be read and sent.

    A file written just now can be written again within the same tick of the file
    system's clock, keeping its mtime (and perhaps its size): that change would go
    unseen. Moving the mtime back by one nanosecond before reading makes any later
    write show, since it sets the clock's current time. Older files are left alone.
    """
    mtime = info.st_mtime_ns
    if mtime > time.time_ns() - _RECENT_NS:
        try:
            os.utime(fd, ns=(info.st_atime_ns, mtime - 1))
            mtime -= 1
        except OSError:  # not ours to touch: the rare race stays possible
            pass
    return (info.st_size, mtime)


def delete_files(root: int, deletions: Sequence[tuple[str, LocalStamp]]) -> list[str]:
    """Delete local files the store deleted, each only if still as it was at the walk."""
    deleted = []
    for path, expected in deletions:
        *folders, name = _parts(path)
        try:
            parent = _open_folder(root, folders)
        except OSError:
            continue
        try:
            if _stamp_of(_lstat(parent, name)) == expected:
                os.unlink(name, dir_fd=parent)
                deleted.append(path)
        except OSError:  # unreadable, or changed under us: left in place
            pass
        finally:
            os.close(parent)
    return deleted


def make_folders(root: int, folders: Sequence[str]) -> dict[str, str]:
    """Make folders the store has; returns those that could not be made, and why."""
    failed = {}
    for folder in folders:
        try:
            os.close(_open_folder(root, _parts(folder), create=True))
        except OSError as err:
            failed[folder] = f"cannot make this folder here ({err.strerror})"
    return failed


def remove_folders(root: int, folders: Sequence[str]) -> None:
    """Remove folders the store removed, deepest first, those left empty only."""
    for folder in folders:
        *parents, name = _parts(folder)
        try:
            parent = _open_folder(root, parents)
        except OSError:
            continue
        try:
            os.rmdir(name, dir_fd=parent)
        except OSError:  # not empty (new files here), or not a folder any more
            pass
        finally:
            os.close(parent)


def unstorable(path: str) -> str | None:
    """Why a path cannot be a workspace path (``None``: it can)."""
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "its name is not UTF-8"
    if size > _MAX_PATH_BYTES:
        return f"its path is over {_MAX_PATH_BYTES:,} bytes"
    try:
        same = normalize_path(path) == path
    except ToolError as err:
        return str(err)
    return None if same else "its name is not a workspace path (spaces at an end?)"


_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def _kind(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "a special file")


def too_big(size: int, limit: int, what: str) -> str:
    return f"{_size(size)}, over the limit of {_size(limit)} for a file; {what}"


def _size(count: int) -> str:
    mib = 1024 * 1024
    return f"{count / mib:,.1f} MiB" if count >= mib else f"{count:,} bytes"


def shown(path: str) -> str:
    """A path fit for a report: a name that is not UTF-8 shows its bytes escaped."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
