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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import tempfile
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from duragent.activities.errors import ToolError
from duragent.activities.tools import _mirror_disk as disk
from duragent.activities.tools.objectstore_workspace import S3Workspace
from duragent.activities.tools.workspace import (
    INLINE_IO_BYTES,
    Listing,
    Stamp,
    Workspace,
    ancestors,
    join_path,
    tree_order,
)

DEFAULT_MAX_IDLE_SECONDS = 1_800.0
"""Half an hour: three times the longest foreground command."""
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest file copied either way; larger ones are skipped, with the reason."""

MAX_REPORTED = 50
"""Entries kept in each list of a :class:`SyncReport`; the rest are counted."""

# Concurrent transfers of small files (requests in flight to the store), and how big a
# file is before it moves alone: memory stays under 16 x 8 MiB plus one large file.
_TRANSFERS = 16
_LARGE_BYTES = 8 * 1024 * 1024

_T = TypeVar("_T")
_P = ParamSpec("_P")


@dataclass(frozen=True)
class SyncReport:
    """What a push did, with what the pulls since the previous push did.

    One report per command, in effect: the pull before it and the push after it.
    """

    downloaded: int = 0
    """Files the pulls brought from the workspace."""
    uploaded: int = 0
    """Files the push sent to the workspace."""
    deleted_local: int = 0
    """Files the pulls deleted locally (deleted in the workspace)."""
    deleted_remote: int = 0
    """Files the push deleted in the workspace (deleted locally)."""
    skipped: tuple[str, ...] = ()
    """``"path: why"`` for what could not be copied (a symlink, a FIFO, a file over the
    size limit, a name the store refuses), each told once, not at every sync."""
    conflicts: tuple[str, ...] = ()
    """``"path: what happened"`` for files changed on both sides."""


@dataclass
class _Entry:
    """A file both sides agreed on at the last sync."""

    remote: Stamp
    local: disk.LocalStamp


@dataclass
class _Mirror:
    """One workspace's local copy and its manifest."""

    folder: Path
    files: dict[str, _Entry] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)
    """Folders both sides had at the last sync."""
    announced: dict[str, set[str]] = field(default_factory=dict)
    """Per direction, what was skipped at the last sync (told once, not again)."""
    pending: _Tally | None = None
    """What the pulls since the last push did, for the push's report."""
    used: float = 0.0
    """When it was last pulled or pushed (monotonic clock)."""


@dataclass
class _Tally:
    """A report being built."""

    downloaded: int = 0
    uploaded: int = 0
    deleted_local: int = 0
    deleted_remote: int = 0
    skipped: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def add(self, other: _Tally) -> None:
        self.downloaded += other.downloaded
        self.uploaded += other.uploaded
        self.deleted_local += other.deleted_local
        self.deleted_remote += other.deleted_remote
        self.skipped.extend(other.skipped)
        self.conflicts.extend(other.conflicts)

    def report(self) -> SyncReport:
        return SyncReport(
            downloaded=self.downloaded,
            uploaded=self.uploaded,
            deleted_local=self.deleted_local,
            deleted_remote=self.deleted_remote,
            skipped=_bounded(self.skipped),
            conflicts=_bounded(self.conflicts),
        )


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
        self._mirrors: dict[str, _Mirror] = {}
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
            store = _store_of(workspace)
            remote = await store.listing()
            tally = _Tally()
            with disk.opened(mirror.folder) as root:
                local = await asyncio.to_thread(disk.scan, root, self._max)
                plan = _plan_pull(remote, mirror, local, self._max)
                tally.conflicts.extend(plan.conflicts)
                await self._apply_pull(store, mirror, root, plan, tally)
            tally.skipped = _announce(mirror, "pull", plan.skipped + tally.skipped)
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
            store = _store_of(workspace)
            remote = await store.listing()
            tally = _Tally()
            with disk.opened(mirror.folder) as root:
                local = await asyncio.to_thread(disk.scan, root, self._max)
                plan = _plan_push(remote, mirror, local)
                tally.conflicts.extend(plan.conflicts)
                await self._apply_push(store, mirror, root, plan, tally)
            mirror.folders = local.folders - plan.unmade
            skipped = [f"{disk.shown(p)}: {why}" for p, why in local.others.items()]
            tally.skipped = _announce(mirror, "push", skipped + tally.skipped)
            report, mirror.pending = mirror.pending or _Tally(), None
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

    async def _create(self, key: str) -> _Mirror:
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
        mirror = self._mirrors[key] = _Mirror(folder=folder)
        return mirror

    async def _apply_pull(
        self, store: _Store, mirror: _Mirror, root: int, plan: _PullPlan, tally: _Tally
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
        store: _Store,
        mirror: _Mirror,
        root: int,
        path: str,
        stamp: Stamp,
        expected: disk.LocalStamp | None,
        tally: _Tally,
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
        mirror.files[path] = _Entry(remote=stamp, local=local)
        tally.downloaded += 1

    async def _apply_push(
        self, store: _Store, mirror: _Mirror, root: int, plan: _PushPlan, tally: _Tally
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
        for folder in _folders_to_make(plan, mirror, files_after):
            try:
                await store.workspace.mkdir(folder)
            except ToolError as err:
                tally.skipped.append(f"{disk.shown(folder)}: {err}")
                plan.unmade.add(folder)

    async def _upload(
        self,
        store: _Store,
        mirror: _Mirror,
        root: int,
        path: str,
        size: int,
        uploaded: set[str],
        tally: _Tally,
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
        mirror.files[path] = _Entry(remote=remote, local=local)
        uploaded.add(path)
        tally.uploaded += 1

    @contextlib.asynccontextmanager
    async def _slot(self, size: int) -> AsyncIterator[None]:
        """Room for one transfer: many small ones at once, large ones one at a time."""
        async with self._large if size > _LARGE_BYTES else self._small:
            yield


# ==== the store side =====================================================================


class _Store:
    """The workspace as a mirror uses it, through the protocol alone (any backend).

    The listing walks the folders and asks each file's ``info``: the stamp's version is
    the modification time, so it relies on the backend's clock resolution.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    async def listing(self) -> Listing:
        """Every file with its stamp, and every folder."""
        paths: list[str] = []
        folders: set[str] = set()
        pending = ["."]
        while pending:
            folder = pending.pop()
            try:
                entries = await self.workspace.list_dir(folder)
            except ToolError:  # removed while we looked
                continue
            for entry in entries:
                path = join_path(folder, entry.removesuffix("/"))
                if entry.endswith("/"):
                    folders.add(path)
                    pending.append(path)
                else:
                    paths.append(path)
        stamps = await asyncio.gather(*(self._stamp(path) for path in paths))
        files = {path: s for path, s in zip(paths, stamps, strict=True) if s is not None}
        return Listing(files=files, folders=frozenset(folders))

    async def upload(self, path: str, data: bytes) -> Stamp:
        """Write a file; returns its new stamp."""
        await self.workspace.write_bytes(path, data)
        found = await self._stamp(path)
        return found or Stamp(size=len(data), version="")

    async def delete(self, files: Sequence[str], folders: Sequence[str]) -> None:
        """Delete files, then folders (deepest first) that nothing else filled since.

        What is already gone is fine.
        """
        for path in files:
            try:
                await self.workspace.delete(path)
            except ToolError as err:
                if err.code != "not_found":
                    raise
        for folder in folders:
            with contextlib.suppress(ToolError):  # not empty: someone wrote there since
                await self.workspace.delete(folder)

    async def _stamp(self, path: str) -> Stamp | None:
        try:
            info = await self.workspace.info(path, count_lines=False)
        except ToolError:  # deleted since it was listed
            return None
        if info.is_dir:
            return None
        return Stamp(size=info.size, version=repr(info.mtime), mtime_ns=_ns(info.mtime))


class _S3Store(_Store):
    """An object store: one LIST for the listing, ETags from the PUTs, batch deletes."""

    def __init__(self, workspace: S3Workspace) -> None:
        super().__init__(workspace)
        self.s3 = workspace

    async def listing(self) -> Listing:
        """Every file with its ETag, and the marked folders: a LIST per 1,000 keys."""
        return await self.s3.listing()

    async def upload(self, path: str, data: bytes) -> Stamp:
        """Write a file; the stamp is the PUT's ETag."""
        return await self.s3.write_stamped(path, data)

    async def delete(self, files: Sequence[str], folders: Sequence[str]) -> None:
        """Delete files and folder markers, a request per 1,000; no marker is added.

        (The protocol's ``delete`` would mark each folder a deletion empties, and cost
        three requests a file.)
        """
        await self.s3.delete_files(files, folders=folders)


def _store_of(workspace: Workspace) -> _Store:
    return _S3Store(workspace) if isinstance(workspace, S3Workspace) else _Store(workspace)


# ==== the plans: pure decisions ===========================================================


@dataclass
class _PullPlan:
    remote_folders: set[str]
    downloads: dict[str, tuple[Stamp, disk.LocalStamp | None]] = field(default_factory=dict)
    """Path to the store's stamp and the local stamp it may replace (``None``: absent)."""
    deletions: list[tuple[str, disk.LocalStamp]] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)
    mkdirs: list[str] = field(default_factory=list)
    rmdirs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


@dataclass
class _PushPlan:
    remote: Listing
    local: disk.LocalTree
    uploads: dict[str, int] = field(default_factory=dict)
    """Path to its size at the walk."""
    deletions: list[str] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)
    rmdirs: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    unmade: set[str] = field(default_factory=set)
    """Local folders that could not be made in the store."""


def _plan_pull(
    remote: Listing, mirror: _Mirror, local: disk.LocalTree, max_bytes: int
) -> _PullPlan:
    plan = _PullPlan(remote_folders=_all_folders(remote))
    for path in sorted(remote.files.keys() | mirror.files.keys(), key=tree_order):
        _plan_pull_file(
            plan, path, remote.files.get(path), mirror.files.get(path), local, max_bytes
        )
    known = mirror.folders | local.folders
    plan.mkdirs = sorted(
        (f for f in plan.remote_folders - known if disk.unstorable(f) is None), key=tree_order
    )
    plan.rmdirs = _deepest_first((mirror.folders - plan.remote_folders) & local.folders)
    return plan


def _plan_pull_file(
    plan: _PullPlan,
    path: str,
    there: Stamp | None,
    entry: _Entry | None,
    local: disk.LocalTree,
    max_bytes: int,
) -> None:
    here = local.stamp(path)
    unchanged = entry is not None and here == entry.local
    if there is None:  # deleted in the store (the manifest had it)
        if unchanged and entry is not None:
            plan.deletions.append((path, entry.local))
        elif here is not None:
            plan.conflicts.append(
                f"{path}: deleted in the workspace but changed here; the local copy is kept"
            )
        plan.forget.append(path)
        return
    if entry is not None and there == entry.remote:
        return  # the store's version is the one we have: local changes are push's
    if why := disk.unstorable(path):
        plan.skipped.append(f"{path}: {why}; not copied here")
    elif there.size > max_bytes:
        plan.skipped.append(f"{path}: {disk.too_big(there.size, max_bytes, 'not copied here')}")
        if unchanged and entry is not None:  # a stale copy would mislead the command
            plan.deletions.append((path, entry.local))
            plan.forget.append(path)
    elif here is None or unchanged:
        if entry is not None and here is None:
            plan.conflicts.append(
                f"{path}: deleted here but changed in the workspace; the workspace's "
                "version is restored"
            )
        plan.downloads[path] = (there, here)
    else:
        plan.conflicts.append(
            f"{path}: changed here and in the workspace; the local copy is kept "
            "(and replaces the workspace's)"
        )


def _plan_push(remote: Listing, mirror: _Mirror, local: disk.LocalTree) -> _PushPlan:
    plan = _PushPlan(remote=remote, local=local)
    for path in sorted(local.files.keys() | mirror.files.keys(), key=tree_order):
        _plan_push_file(plan, path, remote.files.get(path), mirror.files.get(path), local)
    # Folders deleted here that the store keeps on their own (markers, for S3);
    # folders that exist only through their files go with them.
    gone = (mirror.folders - local.folders) & remote.folders
    plan.rmdirs = _deepest_first(f for f in gone if not local.hidden(f))
    return plan


def _plan_push_file(
    plan: _PushPlan, path: str, there: Stamp | None, entry: _Entry | None, local: disk.LocalTree
) -> None:
    here = local.files.get(path)
    if here is not None:
        if entry is not None and here == entry.local:
            return  # untouched here: never sent again
        if entry is None and there is not None:
            plan.conflicts.append(
                f"{path}: created here and in the workspace; this version replaced the workspace's"
            )
        elif entry is not None and there != entry.remote:
            what = "deleted" if there is None else "changed"
            plan.conflicts.append(
                f"{path}: changed here and {what} in the workspace; this version replaced it"
            )
        plan.uploads[path] = here[0]
    elif entry is not None and local.gone(path):  # deleted here, or a folder now
        if there is not None and there != entry.remote:
            plan.conflicts.append(
                f"{path}: deleted here but changed in the workspace; the workspace's "
                "version is kept"
            )
        elif there is not None:
            plan.deletions.append(path)
        plan.forget.append(path)


def _folders_to_make(plan: _PushPlan, mirror: _Mirror, files_after: Iterable[str]) -> list[str]:
    """Local folders the store lacks after the push (empty ones, mostly).

    Not those the store removed since the last sync: that is a change of the store's,
    for the next pull to bring here.
    """
    removed_there = mirror.folders - _all_folders(plan.remote)
    kept = _folders_of(files_after, plan.remote.folders - set(plan.rmdirs))
    needed = plan.local.folders - kept - removed_there
    # Making a folder makes its parents: the deepest ones suffice.
    parents = {a for f in needed for a in ancestors(f, including_self=False)}
    return sorted(needed - parents, key=tree_order)


def _all_folders(listing: Listing) -> set[str]:
    """Every folder of a listing: those on their own, and those its paths imply."""
    return _folders_of(listing.files, listing.folders)


def _folders_of(files: Iterable[str], folders: Iterable[str]) -> set[str]:
    """The folders that files and folders imply (their parents), and those folders."""
    found = {f for path in files for f in ancestors(path, including_self=False)}
    found.update(f for folder in folders for f in ancestors(folder, including_self=True))
    return found


def _deepest_first(folders: Iterable[str]) -> list[str]:
    return sorted(folders, key=lambda f: (-f.count("/"), f))


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


def _announce(mirror: _Mirror, direction: str, skipped: list[str]) -> list[str]:
    """What was skipped this time and not at the previous sync the same way (told once)."""
    before = mirror.announced.get(direction, set())
    mirror.announced[direction] = set(skipped)
    return [s for s in dict.fromkeys(skipped) if s not in before]


def _bounded(items: list[str]) -> tuple[str, ...]:
    if len(items) <= MAX_REPORTED:
        return tuple(items)
    return (*items[:MAX_REPORTED], f"... and {len(items) - MAX_REPORTED:,} more")


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


__all__ = ["DEFAULT_MAX_FILE_BYTES", "MAX_REPORTED", "SyncReport", "WorkspaceMirrors"]
