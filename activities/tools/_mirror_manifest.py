"""What a workspace mirror remembers between syncs, and what it reports.

The manifest (:class:`Mirror`: the files both sides agreed on at the last sync) and the
:class:`SyncReport` of each push. Used by :mod:`activities.tools.mirror`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from duragent.activities.tools import _mirror_disk as disk
from duragent.activities.tools.workspace import Stamp

MAX_REPORTED = 50
"""Entries kept in each list of a :class:`SyncReport`; the rest are counted."""


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
class Entry:
    """A file both sides agreed on at the last sync."""

    remote: Stamp
    local: disk.LocalStamp


@dataclass
class Mirror:
    """One workspace's local copy and its manifest."""

    folder: Path
    files: dict[str, Entry] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)
    """Folders both sides had at the last sync."""
    announced: dict[str, set[str]] = field(default_factory=dict)
    """Per direction, what was skipped at the last sync (told once, not again)."""
    pending: Tally | None = None
    """What the pulls since the last push did, for the push's report."""
    used: float = 0.0
    """When it was last pulled or pushed (monotonic clock)."""


@dataclass
class Tally:
    """A report being built."""

    downloaded: int = 0
    uploaded: int = 0
    deleted_local: int = 0
    deleted_remote: int = 0
    skipped: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
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
            skipped=bounded(self.skipped),
            conflicts=bounded(self.conflicts),
        )


def announce(mirror: Mirror, direction: str, skipped: list[str]) -> list[str]:
    """What was skipped this time and not at the previous sync the same way (told once)."""
    before = mirror.announced.get(direction, set())
    mirror.announced[direction] = set(skipped)
    return [s for s in dict.fromkeys(skipped) if s not in before]


def bounded(items: list[str]) -> tuple[str, ...]:
    if len(items) <= MAX_REPORTED:
        return tuple(items)
    return (*items[:MAX_REPORTED], f"... and {len(items) - MAX_REPORTED:,} more")
