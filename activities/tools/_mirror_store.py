"""The workspace as a mirror reads and writes it: any backend, or an object store's fast path.

Used by :mod:`activities.tools.mirror`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from duragent.activities.errors import ToolError
from duragent.activities.tools.objectstore_workspace import S3Workspace
from duragent.activities.tools.workspace import Listing, Stamp, Workspace, join_path


class Store:
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


class S3Store(Store):
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


def store_of(workspace: Workspace) -> Store:
    return S3Store(workspace) if isinstance(workspace, S3Workspace) else Store(workspace)


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)
