"""The transcript store: chains of content-addressed nodes, snapshots, a cold cache.

The ``BlobStore`` contract runs on every implementation: in memory, a local directory
and a real S3-compatible object store (SeaweedFS, see ``tests/objectstore.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from duragent.activities.models import Message, Role
from duragent.activities.objectstore import ObjectBlobStore
from duragent.activities.store import (
    BlobStore,
    LocalDirectoryStore,
    MemoryStore,
    StoreMiss,
    TranscriptStore,
)


def _entries(root: Path) -> int:
    return len(list(root.rglob("*")))


def msg(i: int) -> Message:
    return Message(role=Role.USER if i % 2 else Role.ASSISTANT, content=f"message {i}")


@pytest.fixture(
    params=[
        "memory",
        "directory",
        pytest.param("object store", marks=pytest.mark.object_store),
    ]
)
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each implementation of the contract; the object store one in a fresh bucket."""
    if request.param == "memory":
        return MemoryStore()
    if request.param == "directory":
        return LocalDirectoryStore(tmp_path)
    return ObjectBlobStore(request.getfixturevalue("s3_bucket"))


async def test_a_blob_reads_back_by_its_reference(blobs: BlobStore) -> None:
    ref = await blobs.put(b"some bytes")
    assert len(ref) == 64
    assert await blobs.get(ref) == b"some bytes"


async def test_storing_the_same_bytes_twice_gives_the_same_reference(blobs: BlobStore) -> None:
    first = await blobs.put(b"same")
    assert await blobs.put(b"same") == first
    assert await blobs.get(first) == b"same"


async def test_an_unknown_reference_is_a_miss(blobs: BlobStore) -> None:
    with pytest.raises(StoreMiss):
        await blobs.get("0" * 64)
    with pytest.raises(StoreMiss):
        await blobs.get("../../etc/passwd")  # not a reference at all


async def test_a_large_blob_roundtrips_whole(blobs: BlobStore) -> None:
    data = os.urandom(5 * 1024 * 1024 + 17)  # past a multipart chunk, not a round size
    ref = await blobs.put(data)
    assert await blobs.get(ref) == data


async def test_a_chain_rebuilds_from_a_cold_cache(blobs: BlobStore) -> None:
    writer = TranscriptStore(blobs, snapshot_every=4)
    ref = None
    for i in range(10):
        ref = await writer.append(ref, [msg(i)])
    assert ref is not None
    reader = TranscriptStore(blobs)  # another worker process: nothing cached
    assert await reader.load(ref) == [msg(i) for i in range(10)]


async def test_nodes_are_deltas_between_snapshots() -> None:
    blobs = MemoryStore()
    store = TranscriptStore(blobs, snapshot_every=3)
    refs = []
    ref = None
    for i in range(6):
        ref = await store.append(ref, [msg(i)])
        refs.append(ref)
    sizes = [len(await blobs.get(r)) for r in refs]
    # Node 0 is a snapshot (1 message); nodes 1-2 are deltas; node 3 is a snapshot of 4.
    assert sizes[1] < sizes[3] and sizes[2] < sizes[3]


async def test_the_directory_holds_each_content_once(tmp_path: Path) -> None:
    blobs = LocalDirectoryStore(tmp_path)
    assert await blobs.put(b"same") == await blobs.put(b"same")
    assert _entries(tmp_path) == 2  # one folder, one blob


async def test_a_transcript_of_an_unknown_reference_is_a_miss(tmp_path: Path) -> None:
    with pytest.raises(StoreMiss):
        await TranscriptStore(LocalDirectoryStore(tmp_path)).load("0" * 64)
