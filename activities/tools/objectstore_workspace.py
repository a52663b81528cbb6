"""A workspace in an S3-compatible object store: files are objects, folders are prefixes.

Each file is an ordinary object ``<prefix>/<path>`` of the bucket
(:class:`~activities.objectstore.ObjectStoreConfig` says which store and prefix), so any
S3 tool sees the agent's files as they are, and every worker of a cluster sees the same
workspace. The path rules are those of every backend
(:func:`~activities.tools.workspace.normalize_path`); an object store has no symlinks.

Folders are implied: ``src`` is a folder while some key starts with ``src/``. A folder
with nothing in it (made by ``mkdir``, or left when its last file is deleted, as on
disk) is held by a zero-byte marker object, ``<folder>/.duragent-folder``. The S3
console's convention, a ``<folder>/`` key, cannot be written here: obstore's paths
(Rust's ``object_store``) never end in ``/``. Markers are never listed, walked or read,
and their name is reserved (``invalid_path``).

What each call costs, in round trips (checks that can run together do):

===================  =====================================================
read                 1 (GET; a miss checks whether it is a folder)
write                2 (is it a folder, is a parent a file; then PUT)
append               2 (GET, PUT) — read and rewritten whole
list, walk           1 per 1,000 keys below the folder (LIST)
listing (mirror)     1 per 1,000 keys of the whole workspace (LIST)
info, exists         1 for a file (HEAD), 2 for a folder (HEAD, LIST); line counts GET
delete               2-3 (HEAD and LIST, DELETE, a marker if the folder empties)
delete_files         1 per 1,000 files (DeleteObjects)
===================  =====================================================

Not atomic: S3 has no append and no lock, so an append is a read and a whole write, and
two writers appending to one file at the same moment can lose one of the appends. The
checks before a write and the write are not atomic either. One agent's tool calls on
its own prefix do not race like that; a prefix shared by several agents can.

Failures: a missing file is a ``ToolError`` (``not_found``) as everywhere; a store that
cannot be reached or answers 5xx raises a retryable ``ApplicationError``, a refusal of
the credentials a non-retryable one
(:func:`activities.errors.object_store_error_to_application_error`), with the
credentials cut out of the message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, TypeVar

from duragent.activities.errors import ToolError, object_store_error_to_application_error
from duragent.activities.objectstore import ObjectStoreConfig
from duragent.activities.tools.workspace import (
    MAX_LINE_COUNT_BYTES,
    FileInfo,
    Listing,
    Stamp,
    ancestors,
    decode_text,
    is_hidden,
    join_path,
    normalize_path,
    text_line_count,
    tree_order,
)

# ``obstore`` is imported where it is used: a worker whose files and transcripts are
# local never loads the client (about 7 MiB of its memory).
if TYPE_CHECKING:  # obstore's result types exist in its stubs only
    from obstore import ObjectMeta, PutResult

FOLDER_MARKER = ".duragent-folder"
"""Name of the zero-byte object that keeps an empty folder in existence."""

MAX_PATH_BYTES = 900
"""Longest workspace path, in UTF-8 bytes: S3 keys end at 1,024 bytes, and the prefix
(and a folder marker's name) need their room too."""

# S3's DeleteObjects takes at most 1,000 keys per request.
_DELETE_BATCH = 1_000

# Scoped views kept per workspace: a worker's recent agents, far beyond any one's need.
_MAX_CHILDREN = 256

_T = TypeVar("_T")


class S3Workspace:
    """A workspace under a prefix of an S3-compatible bucket.

    Args:
        config: The store and prefix; the client is built once, here, and connects on
            the first call.
    """

    def __init__(self, config: ObjectStoreConfig) -> None:
        self._config = config
        self._client = config.client()
        # Views handed out by ``scoped``, kept so each agent's calls reuse one client
        # (and its connections) instead of building one per tool call.
        self._children: dict[str, S3Workspace] = {}

    @property
    def config(self) -> ObjectStoreConfig:
        """Where the files are."""
        return self._config

    def scoped(self, folder: str) -> S3Workspace:
        """The same store under ``<prefix>/<folder>`` (see the protocol).

        A prefix always exists in S3, so the view's root reads as an empty folder until
        something is written there.
        """
        key = _key(folder)
        if key == ".":
            return self
        child = self._children.get(key)
        if child is None:
            if len(self._children) >= _MAX_CHILDREN:  # bounded: drop the oldest view
                del self._children[next(iter(self._children))]
            child = self._children[key] = S3Workspace(self._config.child(key))
        return child

    async def read_text(self, path: str) -> str:
        """Read a UTF-8 text file."""
        return decode_text(path, await self.read_bytes(path))

    async def read_bytes(self, path: str) -> bytes:
        """Read a file as bytes."""
        key = _key(path)
        data = None if key == "." else await self._get(key)
        if data is None:
            if key == "." or await self._has_children(key):
                raise ToolError(f"{path!r} is a folder, not a file", code="is_directory")
            raise ToolError(f"no such file: {path!r}", code="not_found")
        return data

    async def write_text(self, path: str, content: str, *, append: bool = False) -> int:
        """Write (or append) text, creating parent folders; returns bytes written.

        Appending reads the object and writes it back whole (see the module's notes).
        """
        data = content.encode("utf-8")
        key = _key(path)
        if append and key != ".":
            old = await self._get(key)
            if old is not None:  # a file already: its parents are folders
                await self._put(key, old + data)
                return len(data)
        await self._write(path, key, data)
        return len(data)

    async def write_bytes(self, path: str, data: bytes) -> int:
        """Write bytes, creating parent folders; returns bytes written."""
        await self._write(path, _key(path), data)
        return len(data)

    async def list_dir(self, path: str) -> list[str]:
        """Entries of a folder, folders with a trailing ``/``, sorted.

        Read from every key below the folder, not from a delimiter listing's common
        prefixes: servers differ on those (SeaweedFS keeps reporting a folder whose
        last object is gone; AWS does not), and only keys are the truth here.
        """
        key = _key(path)
        below = await self._list_all(key)
        if key != "." and not below:
            if await self._is_file(key):
                raise ToolError(f"{path!r} is a file, not a folder", code="not_a_directory")
            raise ToolError(f"no such directory: {path!r}", code="not_found")
        cut = 0 if key == "." else len(key) + 1
        entries = set()
        for meta in below:
            name, sep, _ = meta["path"][cut:].partition("/")
            entries.add(name + sep)
        return sorted(entries - {FOLDER_MARKER})

    async def info(self, path: str, *, count_lines: bool = True) -> FileInfo:
        """Size, modification time, kind and (unless told not to) line count.

        A folder's modification time is that of the newest object among the first
        1,000 below it (S3 keeps none for prefixes); ``0`` for an empty root.
        """
        key = _key(path)
        # A file in one HEAD (the common case, e.g. per file of a grep); a folder, which
        # has no object of its own, costs a LIST after it.
        meta = await self._head(key)
        if meta is not None:
            lines = None
            if count_lines and meta["size"] <= MAX_LINE_COUNT_BYTES:
                data = await self._get(key)
                lines = None if data is None else text_line_count(data)
            return FileInfo(
                path=key,
                is_dir=False,
                size=meta["size"],
                mtime=meta["last_modified"].timestamp(),
                line_count=lines,
            )
        below = await self._first_page(key)
        if not below and key != ".":
            raise ToolError(f"no such file or folder: {path!r}", code="not_found")
        newest = max((o["last_modified"].timestamp() for o in below), default=0.0)
        return FileInfo(path=key, is_dir=True, size=0, mtime=newest)

    async def exists(self, path: str) -> bool:
        """Whether a file or folder exists (the path is still checked)."""
        key = _key(path)
        if key == ".":
            return True
        return await self._is_file(key) or await self._has_children(key)

    async def mkdir(self, path: str) -> None:
        """Create a folder and its parents (a marker object); an existing one is fine."""
        key = _key(path)
        if key == ".":
            return
        *parents, itself = await asyncio.gather(
            *(self._is_file(folder) for folder in ancestors(key, including_self=True))
        )
        if itself:
            raise ToolError(f"{path!r} exists and is not a folder", code="not_a_directory")
        if any(parents):
            raise ToolError(f"a parent of {path!r} is a file", code="not_a_directory")
        await self._put(join_path(key, FOLDER_MARKER), b"")

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        """Delete a file, or a folder (a non-empty one only with ``recursive``).

        The folder it was in stays, as on disk: a marker keeps it when it empties.
        """
        key = _key(path)
        if key == ".":
            raise ToolError("the workspace root cannot be deleted", code="invalid_path")
        meta, below = await asyncio.gather(self._head(key), self._first_page(key))
        if meta is not None:
            await self._delete([key])
        elif below:
            marker = join_path(key, FOLDER_MARKER)
            if not recursive and any(o["path"] != marker for o in below):
                raise ToolError(
                    f"folder {path!r} is not empty (set recursive to delete it)",
                    code="not_empty",
                )
            await self._delete([o["path"] for o in await self._list_all(key)])
        else:
            raise ToolError(f"no such file or folder: {path!r}", code="not_found")
        await self._keep_folder(key.rpartition("/")[0] or ".")

    async def walk(self, path: str = ".", *, include_hidden: bool = True) -> list[str]:
        """Files under a folder (or the file itself), as sorted workspace paths."""
        start = _key(path)
        if start == ".":
            objects = await self._list_all(start)
        else:
            meta, objects = await asyncio.gather(self._head(start), self._list_all(start))
            if meta is not None:
                return [start]
            if not objects:
                raise ToolError(f"no such file or folder: {path!r}", code="not_found")
        cut = 0 if start == "." else len(start) + 1
        files = [
            o["path"]
            for o in objects
            if _name(o["path"]) != FOLDER_MARKER
            and (include_hidden or not is_hidden(o["path"][cut:]))
        ]
        return sorted(files, key=tree_order)

    # ---- for a worker-local mirror (activities.tools.mirror): whole-workspace calls

    async def listing(self) -> Listing:
        """Every file with its stamp, and the folders a marker keeps: one LIST per 1,000 keys.

        The stamp's version is the ETag, which changes with the content (and only with
        it), else the modification time where a server lists no ETag.
        """
        files: dict[str, Stamp] = {}
        folders: set[str] = set()
        for meta in await self._list_all("."):
            path = meta["path"]
            if _name(path) == FOLDER_MARKER:
                folders.add(path.rpartition("/")[0] or ".")
            else:
                files[path] = _stamp(meta)
        folders.discard(".")  # a marker at the root (another tool's) keeps nothing
        return Listing(files=files, folders=frozenset(folders))

    async def write_stamped(self, path: str, data: bytes) -> Stamp:
        """Write bytes as :meth:`write_bytes` does; returns the stamp :meth:`listing` will show.

        The stamp comes from the PUT's answer, not a later listing: a write by someone
        else in between must show as a change, not pass for this one.
        """
        key = _key(path)
        result = await self._write(path, key, data)
        if result["e_tag"] is not None:
            return Stamp(size=len(data), version=result["e_tag"])
        meta = await self._head(key)  # a server that answers a PUT without an ETag
        return Stamp(size=len(data), version="") if meta is None else _stamp(meta)

    async def delete_files(self, paths: Sequence[str], *, folders: Sequence[str] = ()) -> None:
        """Delete files, and the markers of empty folders, one request per 1,000.

        What is already gone is no error. Unlike :meth:`delete`, no marker is added for
        a folder this leaves empty: the mirror deletes a whole tree at once and decides
        about folders itself.

        Args:
            paths: Files to delete.
            folders: Folders whose marker to delete (files below them stay).
        """
        keys = [_key(path) for path in paths]
        folder_keys = [_key(folder) for folder in folders]
        if "." in keys or "." in folder_keys:
            raise ToolError("the workspace root cannot be deleted", code="invalid_path")
        keys += [join_path(folder, FOLDER_MARKER) for folder in folder_keys]
        if keys:
            await self._delete(keys)

    # ---- private: what the public methods are made of

    async def _write(self, path: str, key: str, data: bytes) -> PutResult:
        if key == ".":
            raise ToolError(f"{path!r} is a directory", code="is_directory")
        is_folder, *parent_files = await asyncio.gather(
            self._has_children(key),
            *(self._is_file(folder) for folder in ancestors(key, including_self=False)),
        )
        if is_folder:
            raise ToolError(f"{path!r} is a directory", code="is_directory")
        if any(parent_files):
            raise ToolError(f"a parent of {path!r} is a file", code="not_a_directory")
        return await self._put(key, data)

    async def _keep_folder(self, folder: str) -> None:
        """Put a marker in a folder that has become empty (the root needs none)."""
        if folder != "." and not await self._has_children(folder):
            await self._put(join_path(folder, FOLDER_MARKER), b"")

    async def _is_file(self, key: str) -> bool:
        return await self._head(key) is not None

    async def _has_children(self, key: str) -> bool:
        return bool(await self._first_page(key))

    # ---- private: one request each, failures mapped

    async def _get(self, key: str) -> bytes | None:
        """The object's content; ``None`` when there is no such object."""
        try:
            import obstore

            result = await obstore.get_async(self._client, key)
            return bytes(await result.bytes_async())
        except FileNotFoundError:
            return None
        except Exception as err:
            raise self._failure(f"read {key}", err) from None

    async def _head(self, key: str) -> ObjectMeta | None:
        """The object's size and modification time; ``None`` when there is none."""
        if key == ".":
            return None
        try:
            import obstore

            return await obstore.head_async(self._client, key)
        except FileNotFoundError:
            return None
        except Exception as err:
            raise self._failure(f"look up {key}", err) from None

    async def _put(self, key: str, data: bytes) -> PutResult:
        # One PUT whatever the size: a multipart upload cut short leaves hidden parts
        # behind, and tool writes are bounded far below S3's 5 GB single PUT.
        import obstore

        return await self._call(
            f"write {key}", obstore.put_async(self._client, key, data, use_multipart=False)
        )

    async def _delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = list(keys[start : start + _DELETE_BATCH])
            import obstore

            await self._call(f"delete {batch[0]}", obstore.delete_async(self._client, batch))

    async def _first_page(self, key: str) -> list[ObjectMeta]:
        """The first objects below a folder (one LIST request): enough to tell it exists."""
        try:
            import obstore

            async for batch in obstore.list(self._client, _prefix(key), chunk_size=1_000):
                return list(batch)
        except Exception as err:
            raise self._failure(f"list {key}", err) from None
        return []

    async def _list_all(self, key: str) -> list[ObjectMeta]:
        """Every object below a folder, at any depth (a LIST per 1,000 keys)."""
        found: list[ObjectMeta] = []
        try:
            import obstore

            async for batch in obstore.list(self._client, _prefix(key), chunk_size=1_000):
                found.extend(batch)
        except Exception as err:
            raise self._failure(f"list {key}", err) from None
        return found

    async def _call(self, what: str, request: Awaitable[_T]) -> _T:
        try:
            return await request
        except Exception as err:
            raise self._failure(what, err) from None

    def _failure(self, what: str, err: Exception) -> Exception:
        """A ``ToolError`` for a path the store refuses, else Temporal's retry posture."""
        if isinstance(err, ValueError) and "path" in str(err).lower():
            return ToolError(f"the object store cannot name this path: {err}", code="invalid_path")
        return object_store_error_to_application_error(
            err, f"cannot {what} in {self._config.url}", secrets=self._config.secrets
        )


def _key(path: str) -> str:
    """The checked, normalised path; ``"."`` is the root. The marker name is reserved."""
    key = normalize_path(path)
    if _name(key) == FOLDER_MARKER:
        raise ToolError(
            f"{FOLDER_MARKER!r} is reserved in an object store workspace (it marks empty "
            "folders); choose another name",
            code="invalid_path",
        )
    if len(key.encode("utf-8")) > MAX_PATH_BYTES:
        raise ToolError(
            f"path is {len(key.encode('utf-8')):,} bytes; an object store workspace takes "
            f"paths up to {MAX_PATH_BYTES:,} bytes",
            code="invalid_path",
        )
    return key


def _prefix(key: str) -> str | None:
    """The listing prefix of a folder: obstore lists what is below a path (``key/``)."""
    return None if key == "." else key


def _name(key: str) -> str:
    return key.rpartition("/")[2]


def _stamp(meta: ObjectMeta) -> Stamp:
    modified = meta["last_modified"]
    return Stamp(
        size=meta["size"],
        version=meta["e_tag"] or modified.isoformat(),
        mtime_ns=int(modified.timestamp() * 1_000_000_000),
    )
