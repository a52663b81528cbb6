"""Content-addressed storage of transcripts, so history grows with what is new.

An LLM call needs the whole conversation, but shipping it inside every activity input
makes history grow with the square of the run's length. Instead the LLM activity keeps
the conversation here and the workflow sends only a reference plus the messages added
since (see ``LLMRequest.base_ref``).

A transcript is a chain of nodes, each named by the SHA-256 of its bytes::

    {"base": "<ref of the previous node> | null", "depth": 7, "messages": [...]}

Every ``SNAPSHOT_EVERY`` nodes a node holds the whole transcript instead of a delta, so
rebuilding one never walks a long chain; a small in-process cache makes the common case
(the same worker serving the next cycle) a single append. Nodes are immutable, so any
number of worker processes can share one directory (writes are atomic renames).

The store is pluggable: :class:`BlobStore` is the seam. :class:`LocalDirectoryStore` is
the embedded default; :class:`activities.objectstore.ObjectBlobStore` keeps the blobs in
an S3-compatible object store for a cluster (``DURAGENT_STORE=s3://...``). Its methods
are coroutines because an object store call is network I/O: a blocking one would stall
the worker's event loop, and with it every other activity and heartbeat. A reference
the store cannot resolve is not fatal: the workflow holds the transcript too and
resends it whole (see ``TranscriptNotFound`` in :mod:`activities.errors`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from duragent.activities.models import Message

SNAPSHOT_EVERY = 50
"""A full snapshot every this many nodes bounds the chain walked on a cache miss."""
CACHE_TRANSCRIPTS = 256
"""Rebuilt transcripts kept in memory (one per recently active agent, roughly)."""


class StoreMiss(KeyError):
    """The store has no blob with that reference."""


def is_ref(ref: str) -> bool:
    """Whether ``ref`` is a reference at all (64 lowercase hex digits).

    Checked before a name reaches a file path or an object key, so a crafted one
    (``../../etc/passwd``) is a miss and never a path.
    """
    return len(ref) == 64 and all(c in "0123456789abcdef" for c in ref)


class BlobStore(Protocol):
    """Immutable blobs named by the SHA-256 of their content."""

    async def put(self, data: bytes) -> str:
        """Store ``data``; returns its reference (hex SHA-256)."""
        ...

    async def get(self, ref: str) -> bytes:
        """The blob of that reference.

        Raises:
            StoreMiss: No such blob.
        """
        ...


class LocalDirectoryStore:
    """Blobs as files under a directory, shared by the worker processes of a machine.

    Its file I/O runs on the event loop, not in a thread: a node is a small file in the
    page cache, read or written in microseconds, less than the hop to a thread costs.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    async def put(self, data: bytes) -> str:
        """Store ``data`` atomically; storing the same bytes twice is a no-op."""
        ref = hashlib.sha256(data).hexdigest()
        path = self._path(ref)
        if path.exists():
            return ref
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: readers see the whole blob or none
        return ref

    async def get(self, ref: str) -> bytes:
        """The blob of that reference."""
        try:
            return self._path(ref).read_bytes()
        except FileNotFoundError:
            raise StoreMiss(ref) from None

    def _path(self, ref: str) -> Path:
        if not is_ref(ref):
            raise StoreMiss(ref)
        return self.root / ref[:2] / ref


class MemoryStore:
    """Blobs in a dict: for tests and single-process use."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    async def put(self, data: bytes) -> str:
        """Store ``data``."""
        ref = hashlib.sha256(data).hexdigest()
        self._blobs[ref] = data
        return ref

    async def get(self, ref: str) -> bytes:
        """The blob of that reference."""
        try:
            return self._blobs[ref]
        except KeyError:
            raise StoreMiss(ref) from None


class TranscriptStore:
    """Transcripts as chains of content-addressed nodes, with an in-process cache."""

    def __init__(
        self,
        blobs: BlobStore,
        *,
        snapshot_every: int = SNAPSHOT_EVERY,
        cache_size: int = CACHE_TRANSCRIPTS,
    ) -> None:
        self._blobs = blobs
        self._snapshot_every = snapshot_every
        self._cache: OrderedDict[str, tuple[int, tuple[Message, ...]]] = OrderedDict()
        self._cache_size = cache_size

    async def load(self, ref: str) -> list[Message]:
        """The whole transcript of a reference.

        Raises:
            StoreMiss: The reference (or a node it builds on) is not in the store.
        """
        return list((await self._load(ref))[1])

    async def append(self, base: str | None, messages: list[Message]) -> str:
        """Store ``base`` + ``messages``; returns the new reference.

        Raises:
            StoreMiss: ``base`` (or a node it builds on) is not in the store.
        """
        depth, prior = await self._load(base) if base else (0, ())
        full = (*prior, *messages)
        if base is None or depth + 1 >= self._snapshot_every:
            base, depth, stored = None, 0, full
        else:
            depth, stored = depth + 1, tuple(messages)
        node = _encode(base, depth, stored)
        ref = await self._blobs.put(node)
        self._remember(ref, depth, full)
        return ref

    async def _load(self, ref: str) -> tuple[int, tuple[Message, ...]]:
        cached = self._cache.get(ref)
        if cached is not None:
            self._cache.move_to_end(ref)
            return cached
        chain: list[list[Message]] = []
        cursor: str | None = ref
        depth = 0
        while cursor is not None:
            node = json.loads(await self._blobs.get(cursor))
            if not chain:
                depth = int(node["depth"])
            chain.append([Message.model_validate(m) for m in node["messages"]])
            cursor = node["base"]
        full = tuple(m for part in reversed(chain) for m in part)
        self._remember(ref, depth, full)
        return depth, full

    def _remember(self, ref: str, depth: int, messages: tuple[Message, ...]) -> None:
        self._cache[ref] = (depth, messages)
        self._cache.move_to_end(ref)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _encode(base: str | None, depth: int, messages: tuple[Message, ...]) -> bytes:
    payload = {
        "base": base,
        "depth": depth,
        "messages": [m.model_dump(mode="json") for m in messages],
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
