"""The plans of a mirror's pull and push: pure decisions, from three listings.

The store's listing, the local folder's and the manifest of the last sync (see the
table in :mod:`activities.tools.mirror`). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from duragent.activities.tools import _mirror_disk as disk
from duragent.activities.tools._mirror_manifest import Entry, Mirror
from duragent.activities.tools.workspace import Listing, Stamp, ancestors, tree_order


@dataclass
class PullPlan:
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
class PushPlan:
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


def plan_pull(remote: Listing, mirror: Mirror, local: disk.LocalTree, max_bytes: int) -> PullPlan:
    plan = PullPlan(remote_folders=all_folders(remote))
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
    plan: PullPlan,
    path: str,
    there: Stamp | None,
    entry: Entry | None,
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


def plan_push(remote: Listing, mirror: Mirror, local: disk.LocalTree) -> PushPlan:
    plan = PushPlan(remote=remote, local=local)
    for path in sorted(local.files.keys() | mirror.files.keys(), key=tree_order):
        _plan_push_file(plan, path, remote.files.get(path), mirror.files.get(path), local)
    # Folders deleted here that the store keeps on their own (markers, for S3);
    # folders that exist only through their files go with them.
    gone = (mirror.folders - local.folders) & remote.folders
    plan.rmdirs = _deepest_first(f for f in gone if not local.hidden(f))
    return plan


def _plan_push_file(
    plan: PushPlan, path: str, there: Stamp | None, entry: Entry | None, local: disk.LocalTree
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


def folders_to_make(plan: PushPlan, mirror: Mirror, files_after: Iterable[str]) -> list[str]:
    """Local folders the store lacks after the push (empty ones, mostly).

    Not those the store removed since the last sync: that is a change of the store's,
    for the next pull to bring here.
    """
    removed_there = mirror.folders - all_folders(plan.remote)
    kept = _folders_of(files_after, plan.remote.folders - set(plan.rmdirs))
    needed = plan.local.folders - kept - removed_there
    # Making a folder makes its parents: the deepest ones suffice.
    parents = {a for f in needed for a in ancestors(f, including_self=False)}
    return sorted(needed - parents, key=tree_order)


def all_folders(listing: Listing) -> set[str]:
    """Every folder of a listing: those on their own, and those its paths imply."""
    return _folders_of(listing.files, listing.folders)


def _folders_of(files: Iterable[str], folders: Iterable[str]) -> set[str]:
    """The folders that files and folders imply (their parents), and those folders."""
    found = {f for path in files for f in ancestors(path, including_self=False)}
    found.update(f for folder in folders for f in ancestors(folder, including_self=True))
    return found


def _deepest_first(folders: Iterable[str]) -> list[str]:
    return sorted(folders, key=lambda f: (-f.count("/"), f))
