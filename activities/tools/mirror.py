"""Worker-local copies of workspaces: a real folder for shell commands to run in.

A shell command needs a directory, and an object-store workspace has none. A
:class:`WorkspaceMirrors` keeps, on the worker, one folder per workspace (named by a
digest of its key) and a manifest of what it last agreed with the store: for each file,
the store's stamp (:class:`~activities.tools.workspace.Stamp`: size and ETag) and the
local one (size and ``mtime_ns``). :meth:`~WorkspaceMirrors.pull` before a command brings
the folder up to date; :meth:`~WorkspaceMirrors.push` after it sends back what the command
changed. Both are three-way merges of the store's listing, the local folder and the
manifest, so each side's changes since the last sync are told apart:

===============================  ==========================  ===========================
since the last sync              pull                        push
===============================  ==========================  ===========================
changed in the store only        downloaded                  left (the next pull)
changed here only                left (the next push)        uploaded
changed (or made) on both sides  local kept, conflict        uploaded, conflict
changed here, deleted in store   local kept, conflict        uploaded, conflict
deleted in the store only        deleted here                left (the next pull)
deleted here only                left (the next push)        deleted in the store
deleted here, changed in store   downloaded, conflict        store's kept, conflict
===============================  ==========================  ===========================

The local (the command's) version wins a conflict, and every one is reported. A file
neither side touched is never sent again, so what the agent's file tools write to the
store meanwhile, from any worker, survives a push. A pull keeps what a background
command changed and has not pushed yet. Operations on one workspace are serialised.

Cost: a pull of an unchanged workspace is one listing (on S3, one LIST per 1,000 keys)
and a walk of the local folder; it downloads what changed and nothing else. A push is one
listing, then a write per changed file (on S3 its checks, then a PUT) and a batch per
1,000 deletions; the stamps of what it wrote come from the PUTs' answers, so nothing is
read back or listed again.

Change detection trusts ``(size, mtime_ns)``, as make and rsync do. Two writes within
one tick of the file system's clock (a few ms; 1-2 s on some file systems) can share an
mtime; so a pulled file gets the store's modification time rather than the copy's, and
a file sent just after being written has its mtime moved back by 1 ns, so that any later
write shows. A tool that sets old mtimes on purpose (``touch -r``, ``cp -p``) onto a
same-size file can still hide a change.

Empty folders travel both ways (an object store keeps them as ``.duragent-folder``
markers): ``git init``'s empty ``refs/tags`` survives a copy to another worker.

Security: a command is hostile, and the worker holds secrets it must not reach. Every
local file operation (:mod:`activities.tools._mirror_disk`) goes through directory file
descriptors opened component by component with ``O_NOFOLLOW``, so no symlink is ever
followed, wherever the command put it and whenever it swapped it in. A push sends
regular files only: symlinks, FIFOs, sockets and devices are skipped and reported, so a
link to ``/etc/passwd`` or to the worker's ``~/.aws/credentials`` never reaches the
store. A pull writes only below the mirror folder (each path is a normalised workspace
path, checked again) and replaces files by rename, never writing through a link. Files
over ``max_file_bytes`` are skipped both ways, which bounds memory.

Hard links are regular files and are sent: a command can only link what it can see,
and the sandbox (:mod:`activities.tools.sandbox`) shows it none of the worker's secrets.
A folder the worker cannot list is reported and what is below it left alone in the
store (unlisted is not deleted).

What a pull did, or could not do, comes with the next push's :class:`SyncReport`: one
report per command. A skipped path is told once, not at every sync.

Not carried: file modes (a file the store brings is ``0644``, one it updates keeps its
local mode), symlinks, timestamps of uploaded files. The manifest lives in memory only,
outside the folder the command could tamper with; a folder left by an earlier process
is wiped at its first pull, never trusted. Copies stay until :meth:`~WorkspaceMirrors.close`.

The pieces, each in its own module: the manifest and the report
(:mod:`activities.tools._mirror_manifest`), the plans of a pull and a push, pure
decisions (:mod:`activities.tools._mirror_plan`), the workspace as a mirror uses it
(:mod:`activities.tools._mirror_store`) and the local folder
(:mod:`activities.tools._mirror_disk`). This module runs the steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Iterable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from duragent.activities.errors import ToolError
from duragent.activities.tools import _mirror_disk as disk
from duragent.activities.tools._mirror_manifest import (
    MAX_REPORTED,
    Entry,
    Mirror,
    SyncReport,
    Tally,
    announce,
)
from duragent.activities.tools._mirror_plan import (
    PullPlan,
    PushPlan,
    folders_to_make,
    plan_pull,
    plan_push,
)
from duragent.activities.tools._mirror_store import Store, store_of
from duragent.activities.tools.workspace import INLINE_IO_BYTES, Stamp, Workspace

DEFAULT_MAX_IDLE_SECONDS = 1_800.0
"""Half an hour: three times the longest foreground command."""
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest file copied either way; larger ones are skipped, with the reason."""

# Concurrent transfers of small files (requests in flight to the store), and how big a
# file is before it moves alone: memory stays under 16 x 8 MiB plus one large file.
_TRANSFERS = 16
_LARGE_BYTES = 8 * 1024 * 1024

_T = TypeVar("_T")
_P = ParamSpec("_P")


class WorkspaceMirrors:
    """Local copies of workspaces on this worker, one folder per workspace key.

    Operations on one key are serialised (a background command's push and a foreground
    command's pull never interleave); different keys proceed concurrently.

    Args:
        root: Where the copies live; ``None`` makes a temporary folder at the first
            pull, removed by :meth:`close`.
        max_file_bytes: Files larger than this are not copied either way.
        max_idle_seconds: A copy unused this long is removed by :meth:`drop_idle`
            (the workspace keeps the files; a later pull fetches them again). Longer
            than a foreground command may run, since one runs between pull and push.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_idle_seconds: float = DEFAULT_MAX_IDLE_SECONDS,
    ) -> None:
        self._root = root
        self._max_idle = max_idle_seconds
        self._own_root: Path | None = None
        self._max = max_file_bytes
        self._mirrors: dict[str, Mirror] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._small = asyncio.Semaphore(_TRANSFERS)
        self._large = asyncio.Semaphore(1)
        self._closed = False

    async def pull(self, workspace: Workspace, key: str) -> Path:
        """Bring the local copy of ``workspace`` up to date; returns its folder.

        What it did (and could not do) is told by the next :meth:`push`'s report.

        Args:
            workspace: The workspace, e.g. an agent's scoped ``S3Workspace``.
            key: What identifies it on this worker, e.g. ``S3Workspace.config.url``;
                the same key must always mean the same workspace.
        """
        async with self._lock(key):
            mirror = self._mirrors.get(key) or await self._create(key)
            mirror.used = time.monotonic()
            store = store_of(workspace)
            remote = await store.listing()
            tally = Tally()
            with disk.opened(mirror.folder) as root:
                local = await asyncio.to_thread(disk.scan, root, self._max)
                plan = plan_pull(remote, mirror, local, self._max)
                tally.conflicts.extend(plan.conflicts)
                await self._apply_pull(store, mirror, root, plan, tally)
            tally.skipped = announce(mirror, "pull", plan.skipped + tally.skipped)
            if mirror.pending is None:
                mirror.pending = tally
            else:
                mirror.pending.add(tally)
            return mirror.folder

    async def push(self, workspace: Workspace, key: str) -> SyncReport:
        """Send back what changed in the local copy since the last pull or push.

        With no copy of that key on this worker (no pull made one) there is nothing to
        send: the report is empty.
        """
        async with self._lock(key):
            mirror = self._mirrors.get(key)
            if mirror is None:
                return SyncReport()
            mirror.used = time.monotonic()
            store = store_of(workspace)
            remote = await store.listing()
            tally = Tally()
            with disk.opened(mirror.folder) as root:
                local = await asyncio.to_thread(disk.scan, root, self._max)
                plan = plan_push(remote, mirror, local)
                tally.conflicts.extend(plan.conflicts)
                await self._apply_push(store, mirror, root, plan, tally)
            mirror.folders = local.folders - plan.unmade
            skipped = [f"{disk.shown(p)}: {why}" for p, why in local.others.items()]
            tally.skipped = announce(mirror, "push", skipped + tally.skipped)
            report, mirror.pending = mirror.pending or Tally(), None
            report.add(tally)
            return report.report()

    async def drop_idle(self, *, keep: Collection[Path] = ()) -> list[str]:
        """Remove the copies unused for ``max_idle_seconds``.

        So a worker's disk does not grow with every agent it ever ran commands for.

        Args:
            keep: Folders still in use although idle (a background command runs there).

        Returns:
            The keys whose copies were removed.
        """
        now = time.monotonic()
        kept = {Path(k) for k in keep}
        idle = [
            key
            for key, mirror in self._mirrors.items()
            if now - mirror.used > self._max_idle
            and mirror.folder not in kept
            and not self._locks.get(key, asyncio.Lock()).locked()
        ]
        for key in idle:
            mirror = self._mirrors.pop(key)
            self._locks.pop(key, None)
            await asyncio.to_thread(shutil.rmtree, mirror.folder, ignore_errors=True)
        return idle

    def close(self) -> None:
        """Remove the local copies (the whole root when it was a temporary one)."""
        self._closed = True
        for mirror in self._mirrors.values():
            shutil.rmtree(mirror.folder, ignore_errors=True)
        self._mirrors.clear()
        if self._own_root is not None:
            shutil.rmtree(self._own_root, ignore_errors=True)

    # ---- private: the steps

    def _lock(self, key: str) -> asyncio.Lock:
        if self._closed:
            raise RuntimeError("the workspace mirrors are closed")
        return self._locks.setdefault(key, asyncio.Lock())

    async def _create(self, key: str) -> Mirror:
        """A fresh, empty folder for the key; whatever an earlier process left is wiped."""
        if self._root is None and self._own_root is None:
            self._own_root = Path(tempfile.mkdtemp(prefix="duragent-mirrors-"))
        root = self._root or self._own_root
        assert root is not None
        # A digest: any key gives a short, safe name, and no key names another's folder.
        folder = root / hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        # An earlier process's copy has no manifest here: trusting it would send its
        # stale files back as the command's changes.
        await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)
        folder.mkdir(parents=True)
        mirror = self._mirrors[key] = Mirror(folder=folder)
        return mirror

    async def _apply_pull(
        self, store: Store, mirror: Mirror, root: int, plan: PullPlan, tally: Tally
    ) -> None:
        deleted = await asyncio.to_thread(disk.delete_files, root, plan.deletions)
        tally.deleted_local += len(deleted)
        for path in plan.forget:
            mirror.files.pop(path, None)
        await _together(
            self._download(store, mirror, root, path, stamp, expected, tally)
            for path, (stamp, expected) in plan.downloads.items()
        )
        unmade = await asyncio.to_thread(disk.make_folders, root, plan.mkdirs)
        tally.skipped.extend(f"{disk.shown(f)}: {why}" for f, why in unmade.items())
        await asyncio.to_thread(disk.remove_folders, root, plan.rmdirs)
        mirror.folders = plan.remote_folders - unmade.keys()

    async def _download(
        self,
        store: Store,
        mirror: Mirror,
        root: int,
        path: str,
        stamp: Stamp,
        expected: disk.LocalStamp | None,
        tally: Tally,
    ) -> None:
        async with self._slot(stamp.size):
            try:
                data = await store.workspace.read_bytes(path)
            except ToolError as err:
                if err.code != "not_found":  # gone since the listing: the next pull sees
                    tally.skipped.append(f"{disk.shown(path)}: {err}")
                return
            try:
                if len(data) > self._max:  # grew since the listing
                    raise disk.Skip(disk.too_big(len(data), self._max, "not copied here"))
                local = await _io(
                    len(data), disk.write_file, root, path, data, stamp.mtime_ns, expected
                )
            except disk.Skip as why:
                tally.skipped.append(f"{disk.shown(path)}: {why}")
                return
            except disk.Conflict as why:
                tally.conflicts.append(f"{disk.shown(path)}: {why}")
                return
        mirror.files[path] = Entry(remote=stamp, local=local)
        tally.downloaded += 1

    async def _apply_push(
        self, store: Store, mirror: Mirror, root: int, plan: PushPlan, tally: Tally
    ) -> None:
        # Deletions first: a file the command replaced by a folder (or the reverse) must
        # be gone before its new form can be written.
        await store.delete(plan.deletions, plan.rmdirs)
        tally.deleted_remote += len(plan.deletions)
        for path in plan.forget:
            mirror.files.pop(path, None)
        uploaded: set[str] = set()
        await _together(
            self._upload(store, mirror, root, path, size, uploaded, tally)
            for path, size in plan.uploads.items()
        )
        files_after = (plan.remote.files.keys() - set(plan.deletions)) | uploaded
        for folder in folders_to_make(plan, mirror, files_after):
            try:
                await store.workspace.mkdir(folder)
            except ToolError as err:
                tally.skipped.append(f"{disk.shown(folder)}: {err}")
                plan.unmade.add(folder)

    async def _upload(
        self,
        store: Store,
        mirror: Mirror,
        root: int,
        path: str,
        size: int,
        uploaded: set[str],
        tally: Tally,
    ) -> None:
        async with self._slot(size):
            try:
                read = await _io(size, disk.read_file, root, path, self._max)
                if read is None:  # gone since the walk: the next push deletes it
                    return
                data, local = read
                remote = await store.upload(path, data)
            except (disk.Skip, ToolError) as why:
                tally.skipped.append(f"{disk.shown(path)}: {why}")
                return
        mirror.files[path] = Entry(remote=remote, local=local)
        uploaded.add(path)
        tally.uploaded += 1

    @contextlib.asynccontextmanager
    async def _slot(self, size: int) -> AsyncIterator[None]:
        """Room for one transfer: many small ones at once, large ones one at a time."""
        async with self._large if size > _LARGE_BYTES else self._small:
            yield


# ==== small helpers ========================================================================


async def _io(size: int, call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run local file I/O: on the loop when small, in a thread when large."""
    if size > INLINE_IO_BYTES:
        return await asyncio.to_thread(call, *args, **kwargs)
    return call(*args, **kwargs)


async def _together(calls: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run concurrently; the first failure cancels the rest and is raised as itself.

    As itself, not in an ``ExceptionGroup``: a store's ``ApplicationError`` must reach
    Temporal with its retry posture.
    """
    try:
        async with asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(call)
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None


__all__ = ["DEFAULT_MAX_FILE_BYTES", "MAX_REPORTED", "SyncReport", "WorkspaceMirrors"]
